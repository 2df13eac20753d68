func.func @gqa(%q: tensor<1x8x64x16xf32>, %k: tensor<1x2x64x16xf32>,
               %v: tensor<1x2x64x16xf32>) -> tensor<1x8x64x16xf32> {
  %init = tensor.empty() : tensor<1x8x64x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x8x64x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
         outs(%init : tensor<1x8x64x16xf32>) -> tensor<1x8x64x16xf32>
  return %o : tensor<1x8x64x16xf32>
}
