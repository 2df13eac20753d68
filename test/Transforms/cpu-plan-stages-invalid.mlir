// RUN: attn-opt %s -split-input-file --attn-cpu-plan-stages -verify-diagnostics

// The plan is made on tensors, where a stage's init operand is an SSA value.
func.func @buffers(%s: memref<16x16xf32>) {
  // expected-error @+1 {{CPU stage planning expects a stage on tensors; run it before bufferization}}
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      outs(%s : memref<16x16xf32>) attrs = {attn.cpu_stage = "score"} {
  ^bb0(%x: f32):
    linalg.yield %x : f32
  }
  return
}
