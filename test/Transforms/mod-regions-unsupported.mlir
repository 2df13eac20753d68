// score_mod / mask_mod regions are part of the dialect; a pass that does not
// lower them yet says so (one error, non-zero exit) rather than dropping them
// (convert-attn-to-linalg, the reference, takes them:
// test/Integration/CPU/mod-regions-run.mlir).
// RUN: not attn-opt %s --attn-tile-attention="tile-sizes=1,1,16,16" 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not attn-opt %s --attn-convert-to-online-attention 2>&1 | FileCheck %s --check-prefix=ONLINE
// RUN: not attn-opt %s --attn-cpu-pipeline="cpu=generic" 2>&1 | FileCheck %s --check-prefix=TILE
// TILE: error: 'attn.attention' op with a score_mod or mask_mod region is not supported by attn-tile-attention yet
// ONLINE: error: 'attn.attention' op with a score_mod or mask_mod region is not supported by attn-convert-to-online-attention yet

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
