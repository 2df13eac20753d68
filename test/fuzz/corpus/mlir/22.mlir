// Causal GQA attention on tensors (bf16, 32 query heads on 8 key/value
// heads, 128 new queries against 4096 keys of head_dim 128, bottom-right
// aligned, per-batch key lengths) with its log-sum-exp: the function form
// both pipelines take.
//
//   build/bin/attn-opt examples/attention.mlir --attn-cpu-pipeline
//   build/bin/attn-opt examples/attention.mlir --attn-cuda-pipeline="chip=sm_90"
func.func @attention(%q: tensor<1x32x128x128xbf16>, %k: tensor<1x8x4096x128xbf16>,
                     %v: tensor<1x8x4096x128xbf16>, %lens: tensor<1xi32>)
    -> (tensor<1x32x128x128xbf16>, tensor<1x32x128xf32>) {
  %o = tensor.empty() : tensor<1x32x128x128xbf16>
  %l = tensor.empty() : tensor<1x32x128xf32>
  %out, %lse = attn.attention {mask_kind = #attn.causal<bottom_right>, scale = 0.125 : f32}
      ins(%q, %k, %v : tensor<1x32x128x128xbf16>, tensor<1x8x4096x128xbf16>, tensor<1x8x4096x128xbf16>)
      kv_lens(%lens : tensor<1xi32>)
      outs(%o, %l : tensor<1x32x128x128xbf16>, tensor<1x32x128xf32>)
      -> tensor<1x32x128x128xbf16>, tensor<1x32x128xf32>
  return %out, %lse : tensor<1x32x128x128xbf16>, tensor<1x32x128xf32>
}
