// RUN: attn-opt %s -split-input-file --attn-cpu-lower-stages | FileCheck %s
// RUN: attn-opt %s -split-input-file --attn-cpu-lower-stages=remarks=1 -o /dev/null 2>&1 | FileCheck %s --check-prefix=REMARK

// attn-cpu-lower-stages follows the plan attn-cpu-plan-stages made on
// tensors, and only where the bufferized stage still bears it out.

// A stage without a plan is left to loops.
// REMARK: remark: stage 'score': left to loops: no plan: attn-cpu-plan-stages decides a stage's lowering on tensors
// CHECK-LABEL: func.func @unplanned
// CHECK:         linalg.generic
func.func @unplanned(%s: memref<16x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      outs(%s : memref<16x16xf32>) attrs = {attn.cpu_stage = "score"} {
  ^bb0(%x: f32):
    %y = arith.mulf %x, %x : f32
    linalg.yield %y : f32
  }
  return
}

// -----

// A stage whose body no longer computes what was planned (a rescale
// planned, an elementwise square found) is left to loops.
// REMARK: remark: stage 'rescale': left to loops: its body no longer computes what was planned on tensors ('rescale')
// CHECK-LABEL: func.func @stale_plan
// CHECK:         linalg.generic
func.func @stale_plan(%s: memref<16x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      outs(%s : memref<16x16xf32>) attrs = {attn.cpu_stage = "rescale", attn.cpu_kernel = "rescale"} {
  ^bb0(%x: f32):
    %y = arith.mulf %x, %x : f32
    linalg.yield %y : f32
  }
  return
}

// -----

// A fill marked as folded whose buffer another op reads before the
// contraction (IR edited after the plan) is not folded: the contraction is
// left to loops and the fill stays.
// REMARK: remark: stage 'scores': left to loops: no zero fill of its output was folded into it on tensors
// CHECK-LABEL: func.func @fill_read_between
// CHECK:         linalg.fill
// CHECK:         memref.copy
// CHECK:         linalg.generic
func.func @fill_read_between(%k: memref<32x16xf32>, %qt: memref<16x16xf32>, %s: memref<32x16xf32>, %t: memref<32x16xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill {attn.cpu_folded_into = "scores_lanes"} ins(%zero : f32) outs(%s : memref<32x16xf32>)
  memref.copy %s, %t : memref<32x16xf32> to memref<32x16xf32>
  linalg.generic {indexing_maps = [affine_map<(j, m, d) -> (j, d)>, affine_map<(j, m, d) -> (d, m)>, affine_map<(j, m, d) -> (j, m)>],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%k, %qt : memref<32x16xf32>, memref<16x16xf32>) outs(%s : memref<32x16xf32>)
      attrs = {attn.cpu_stage = "scores", attn.cpu_kernel = "scores_lanes"} {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  }
  return
}
