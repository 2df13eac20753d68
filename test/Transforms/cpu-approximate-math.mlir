// RUN: attn-opt %s --attn-cpu-approximate-math | FileCheck %s

// exp becomes a polynomial with integer exponent reconstruction; other math
// ops are left alone.
// CHECK-LABEL: func.func @exp
// CHECK-NOT:     math.exp
// CHECK:         math.fma
// CHECK:         arith.shli
// CHECK:         math.log
func.func @exp(%x: vector<16xf32>, %y: f32) -> (vector<16xf32>, f32) {
  %e = math.exp %x : vector<16xf32>
  %l = math.log %y : f32
  return %e, %l : vector<16xf32>, f32
}
