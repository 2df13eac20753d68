func.func @online_padded_fill(%q: tensor<1x1x5x16xf32>, %k: tensor<1x1x128x16xf32>, %v: tensor<1x1x128x16xf32>)
    -> (tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>) {
  %zero = arith.constant 0.0 : f32
  %neginf = arith.constant 0xFF800000 : f32
  %e4 = tensor.empty() : tensor<1x1x5x16xf32>
  %e3 = tensor.empty() : tensor<1x1x5xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e4 : tensor<1x1x5x16xf32>) -> tensor<1x1x5x16xf32>
  %m = linalg.fill ins(%neginf : f32) outs(%e3 : tensor<1x1x5xf32>) -> tensor<1x1x5xf32>
  %l = linalg.fill ins(%zero : f32) outs(%e3 : tensor<1x1x5xf32>) -> tensor<1x1x5xf32>
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %v : tensor<1x1x5x16xf32>, tensor<1x1x128x16xf32>, tensor<1x1x128x16xf32>)
      outs(%acc, %m, %l : tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>)
      -> tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>
  return %a, %b, %c : tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>
}
