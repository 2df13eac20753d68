func.func @mask_kinds(%q: tensor<1x1x8x16xf32>, %k: tensor<1x1x8x16xf32>,
                      %v: tensor<1x1x8x16xf32>, %init: tensor<1x1x8x16xf32>)
    -> (tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>) {
  %a = attn.attention {mask_kind = #attn.causal<top_left>}
         ins(%q, %k, %v : tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>)
         outs(%init : tensor<1x1x8x16xf32>) -> tensor<1x1x8x16xf32>
  %b = attn.attention {mask_kind = #attn.sliding_window<left = 4, right = 0>}
         ins(%q, %k, %v : tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>)
         outs(%init : tensor<1x1x8x16xf32>) -> tensor<1x1x8x16xf32>
  %c = attn.attention {mask_kind = #attn.sliding_window<left = 2, right = 3, align = bottom_right>}
         ins(%q, %k, %v : tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>)
         outs(%init : tensor<1x1x8x16xf32>) -> tensor<1x1x8x16xf32>
  return %a, %b, %c : tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>
}
