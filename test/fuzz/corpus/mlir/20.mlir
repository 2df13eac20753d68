func.func @bf16_mask(%q: tensor<2x2x8x16xbf16>, %k: tensor<2x2x8x16xbf16>, %v: tensor<2x2x8x16xbf16>,
                     %mask: tensor<2x1x1x8xi1>,
                     %acc: tensor<2x2x8x16xf32>, %m: tensor<2x2x8xf32>, %l: tensor<2x2x8xf32>)
    -> (tensor<2x2x8x16xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>) {
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %v : tensor<2x2x8x16xbf16>, tensor<2x2x8x16xbf16>, tensor<2x2x8x16xbf16>)
      mask(%mask : tensor<2x1x1x8xi1>)
      outs(%acc, %m, %l : tensor<2x2x8x16xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>)
      -> tensor<2x2x8x16xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>
  return %a, %b, %c : tensor<2x2x8x16xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>
}
