func.func @gqa_causal_lse(%q: tensor<1x8x16x64xf32>, %k: tensor<1x2x256x64xf32>,
                          %v: tensor<1x2x256x32xf32>) -> (tensor<1x8x16x32xf32>, tensor<1x8x16xf32>) {
  %o0 = tensor.empty() : tensor<1x8x16x32xf32>
  %l0 = tensor.empty() : tensor<1x8x16xf32>
  %o, %l = attn.attention {mask_kind = #attn.causal<bottom_right>, scale = 0.125 : f32}
         ins(%q, %k, %v : tensor<1x8x16x64xf32>, tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>)
         outs(%o0, %l0 : tensor<1x8x16x32xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16x32xf32>, tensor<1x8x16xf32>
  return %o, %l : tensor<1x8x16x32xf32>, tensor<1x8x16xf32>
}
