func.func @kv_lens(%q: tensor<3x1x64x16xf32>, %k: tensor<3x1x128x16xf32>,
                   %v: tensor<3x1x128x16xf32>, %lens: tensor<3xi32>) -> tensor<3x1x64x16xf32> {
  %init = tensor.empty() : tensor<3x1x64x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<3x1x64x16xf32>, tensor<3x1x128x16xf32>, tensor<3x1x128x16xf32>)
         kv_lens(%lens : tensor<3xi32>)
         outs(%init : tensor<3x1x64x16xf32>) -> tensor<3x1x64x16xf32>
  return %o : tensor<3x1x64x16xf32>
}
