func.func @tile(%q: tensor<1x4x16x8xf32>, %k: tensor<1x2x32x8xf32>, %v: tensor<1x2x32x4xf32>,
                %acc: tensor<1x4x16x4xf32>, %m: tensor<1x4x16xf32>, %l: tensor<1x4x16xf32>,
                %q0: index, %k0: index, %n: index, %lens: tensor<1xi32>)
    -> (tensor<1x4x16x4xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>) {
  %a, %b, %c = attn.online_attention {mask_kind = #attn.causal, scale = 0.25 : f32}
      ins(%q, %k, %v : tensor<1x4x16x8xf32>, tensor<1x2x32x8xf32>, tensor<1x2x32x4xf32>)
      kv_lens(%lens : tensor<1xi32>) offsets(%q0, %k0) kv_bound(%n)
      outs(%acc, %m, %l : tensor<1x4x16x4xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>)
      -> tensor<1x4x16x4xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>
  return %a, %b, %c : tensor<1x4x16x4xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>
}
