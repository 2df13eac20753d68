// score_mod / mask_mod regions are lowered on the CPU (reference, linalg
// stages and vector code: test/Integration/CPU/mod-regions-run.mlir). The
// CUDA lowering does not take them yet, and an op with regions is never
// bufferized (its regions read captures as tensors): each says so, one
// error and a non-zero exit, rather than dropping the regions.
// RUN: not attn-opt %s --attn-tile-attention="target=cuda" 2>&1 | FileCheck %s --check-prefix=CUDA
// RUN: not attn-opt %s --attn-cuda-pipeline 2>&1 | FileCheck %s --check-prefix=CUDA
// RUN: not attn-opt %s --attn-convert-to-online-attention --one-shot-bufferize 2>&1 | FileCheck %s --check-prefix=BUFFER
// CUDA: error: 'attn.attention' op with a score_mod or mask_mod region is not supported by the CUDA lowering yet
// BUFFER: error: 'attn.online_attention' op with a score_mod or mask_mod region is not supported by bufferization yet

func.func @softcap(%q: tensor<1x2x32x16xf32>, %k: tensor<1x2x32x16xf32>, %v: tensor<1x2x32x16xf32>,
                   %o: tensor<1x2x32x16xf32>) -> tensor<1x2x32x16xf32> {
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>)
      outs(%o : tensor<1x2x32x16xf32>) -> tensor<1x2x32x16xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      %cap = arith.constant 30.0 : f32
      %x = arith.divf %s, %cap : f32
      %t = math.tanh %x : f32
      %y = arith.mulf %t, %cap : f32
      attn.yield %y : f32
    }
  return %r : tensor<1x2x32x16xf32>
}
