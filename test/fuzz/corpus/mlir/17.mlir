func.func @lse(%q: tensor<1x4x16x8xf16>, %k: tensor<1x2x32x8xf16>, %v: tensor<1x2x32x8xf16>,
               %out: tensor<1x4x16x8xf16>, %lse: tensor<1x4x16xf32>) -> (tensor<1x4x16x8xf16>, tensor<1x4x16xf32>) {
  %o, %l = attn.attention {mask_kind = #attn.causal<bottom_right>, scale = 0.5 : f32}
      ins(%q, %k, %v : tensor<1x4x16x8xf16>, tensor<1x2x32x8xf16>, tensor<1x2x32x8xf16>)
      outs(%out, %lse : tensor<1x4x16x8xf16>, tensor<1x4x16xf32>) -> tensor<1x4x16x8xf16>, tensor<1x4x16xf32>
  return %o, %l : tensor<1x4x16x8xf16>, tensor<1x4x16xf32>
}
