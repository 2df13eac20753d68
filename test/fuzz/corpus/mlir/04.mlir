func.func @ragged(%q: tensor<1x1x100x16xf32>, %k: tensor<1x1x?x16xf32>,
                  %v: tensor<1x1x?x16xf32>) -> tensor<1x1x100x16xf32> {
  %init = tensor.empty() : tensor<1x1x100x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x1x100x16xf32>, tensor<1x1x?x16xf32>, tensor<1x1x?x16xf32>)
         outs(%init : tensor<1x1x100x16xf32>) -> tensor<1x1x100x16xf32>
  return %o : tensor<1x1x100x16xf32>
}
