// RUN: attn-opt %s --attn-cpu-approximate-math | FileCheck %s
// RUN: attn-opt %s --attn-cpu-approximate-math="avx512=true" | FileCheck %s --check-prefix=AVX512

// exp becomes a polynomial with integer exponent reconstruction; other math
// ops are left alone.
// CHECK-LABEL: func.func @exp
// CHECK-NOT:     math.exp
// CHECK:         math.fma
// CHECK:         arith.shli
// CHECK:         math.log

// With avx512, exp of vector<16xf32>: clamp (NaN kept), k = roundeven(x
// log2 e), two-constant reduction, the Cephes polynomial, then vscalefps;
// exp of other types keeps the generic expansion.
// AVX512-LABEL: func.func @exp
// AVX512-NOT:     math.exp
// AVX512:         %[[LO:.+]] = arith.cmpf olt, %{{.+}}, %{{.+}} : vector<16xf32>
// AVX512:         arith.cmpf ogt
// AVX512:         %[[K:.+]] = math.roundeven %{{.+}} : vector<16xf32>
// AVX512-COUNT-7: math.fma
// AVX512:         %[[ER:.+]] = arith.addf
// AVX512:         x86vector.avx512.mask.scalef %[[ER]], %[[K]], %[[ER]], %{{.+}}, %{{.+}} : vector<16xf32>
// AVX512:         math.log
// AVX512:         arith.shli {{.+}} : vector<8xi32>
func.func @exp(%x: vector<16xf32>, %y: f32, %z: vector<8xf32>) -> (vector<16xf32>, f32, vector<8xf32>) {
  %e = math.exp %x : vector<16xf32>
  %l = math.log %y : f32
  %e8 = math.exp %z : vector<8xf32>
  return %e, %l, %e8 : vector<16xf32>, f32, vector<8xf32>
}

// tanh (soft-capping in a score_mod) becomes MLIR's rational approximation,
// so that a JIT-compiled kernel needs no libm tanhf.
// CHECK-LABEL: func.func @tanh
// CHECK-NOT:     math.tanh
// CHECK:         arith.divf {{.+}} : vector<8xf32>
// CHECK:         return
func.func @tanh(%x: vector<8xf32>) -> vector<8xf32> {
  %t = math.tanh %x : vector<8xf32>
  return %t : vector<8xf32>
}
