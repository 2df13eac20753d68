func.func @online(%q: tensor<1x2x16x16xf32>, %k: tensor<1x1x32x16xf32>, %v: tensor<1x1x32x8xf32>,
                  %acc: tensor<1x2x16x8xf32>, %m: tensor<1x2x16xf32>, %l: tensor<1x2x16xf32>,
                  %q0: index, %k0: index, %n: index)
    -> (tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>) {
  %a, %b, %c = attn.online_attention {mask_kind = #attn.causal, scale = 0.25 : f32}
      ins(%q, %k, %v : tensor<1x2x16x16xf32>, tensor<1x1x32x16xf32>, tensor<1x1x32x8xf32>)
      offsets(%q0, %k0) kv_bound(%n)
      outs(%acc, %m, %l : tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>)
      -> tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>
  return %a, %b, %c : tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>
}
