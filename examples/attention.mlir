// Causal GQA attention on tensors (bf16, 8 query heads on 2 key/value heads,
// 256 queries and keys of head_dim 64) with its log-sum-exp: the function
// form both pipelines take.
//
//   build/bin/attn-opt examples/attention.mlir --attn-cpu-pipeline
//   build/bin/attn-opt examples/attention.mlir --attn-cuda-pipeline="chip=sm_90"
func.func @attention(%q: tensor<1x8x256x64xbf16>, %k: tensor<1x2x256x64xbf16>,
                     %v: tensor<1x2x256x64xbf16>)
    -> (tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>) {
  %o = tensor.empty() : tensor<1x8x256x64xbf16>
  %l = tensor.empty() : tensor<1x8x256xf32>
  %out, %lse = attn.attention {mask_kind = #attn.causal}
      ins(%q, %k, %v : tensor<1x8x256x64xbf16>, tensor<1x2x256x64xbf16>,
                       tensor<1x2x256x64xbf16>)
      outs(%o, %l : tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>)
      -> tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>
  return %out, %lse : tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>
}
