func.func @mha(%q: tensor<2x4x128x64xf32>, %k: tensor<2x4x256x64xf32>,
               %v: tensor<2x4x256x64xf32>) -> tensor<2x4x128x64xf32> {
  %init = tensor.empty() : tensor<2x4x128x64xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<2x4x128x64xf32>, tensor<2x4x256x64xf32>, tensor<2x4x256x64xf32>)
         outs(%init : tensor<2x4x128x64xf32>) -> tensor<2x4x128x64xf32>
  return %o : tensor<2x4x128x64xf32>
}
