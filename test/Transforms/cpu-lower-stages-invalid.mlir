// RUN: attn-opt %s -split-input-file --attn-cpu-lower-stages -verify-diagnostics

func.func @tensors(%s: tensor<16x16xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{CPU stage lowering expects a bufferized stage (memref operands); run it after bufferization}}
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      outs(%s : tensor<16x16xf32>) attrs = {attn.cpu_stage = "score"} {
  ^bb0(%x: f32):
    linalg.yield %x : f32
  } -> tensor<16x16xf32>
  return %r : tensor<16x16xf32>
}

// -----

func.func @parallel(%s: memref<16x16xf32>) {
  scf.forall (%i) in (2) {
    // expected-error @+1 {{CPU lowering does not support tiles inside parallel loops; run attn-cpu-distribute-workgroups}}
    linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
        outs(%s : memref<16x16xf32>) attrs = {attn.cpu_stage = "score"} {
    ^bb0(%x: f32):
      linalg.yield %x : f32
    }
  }
  return
}

// -----

// RUN: not attn-opt %s -split-input-file --attn-cpu-lower-stages=vector-width=4 2>&1 | FileCheck %s --check-prefix=WIDTH
// WIDTH: CPU lowering supports vector widths of 8 (AVX2) and 16 (AVX-512) f32 lanes, got 4
func.func @width() {
  return
}
