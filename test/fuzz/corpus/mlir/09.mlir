func.func @online_padded_state(%q: tensor<1x1x5x16xf32>, %k: tensor<1x1x128x16xf32>, %v: tensor<1x1x128x16xf32>,
                  %acc: tensor<1x1x5x16xf32>, %m: tensor<1x1x5xf32>, %l: tensor<1x1x5xf32>)
    -> (tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>) {
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %v : tensor<1x1x5x16xf32>, tensor<1x1x128x16xf32>, tensor<1x1x128x16xf32>)
      outs(%acc, %m, %l : tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>)
      -> tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>
  return %a, %b, %c : tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>
}
