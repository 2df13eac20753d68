func.func @window(%q: tensor<1x1x512x16xf32>, %k: tensor<1x1x512x16xf32>,
                  %v: tensor<1x1x512x16xf32>) -> tensor<1x1x512x16xf32> {
  %init = tensor.empty() : tensor<1x1x512x16xf32>
  %o = attn.attention {mask_kind = #attn.sliding_window<left = 100, right = 0>}
         ins(%q, %k, %v : tensor<1x1x512x16xf32>, tensor<1x1x512x16xf32>, tensor<1x1x512x16xf32>)
         outs(%init : tensor<1x1x512x16xf32>) -> tensor<1x1x512x16xf32>
  return %o : tensor<1x1x512x16xf32>
}
