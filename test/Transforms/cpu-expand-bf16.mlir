// attn-cpu-expand-bf16 leaves no f32 -> bf16 truncation for LLVM (which
// would call compiler-rt's __truncsfbf2 without AVX512-BF16), and the
// expansion rounds to nearest even and keeps NaN, run through mlir-runner.
// RUN: attn-opt %s --attn-cpu-expand-bf16 | FileCheck %s
// RUN: attn-opt %s --attn-cpu-expand-bf16 --convert-vector-to-scf --convert-scf-to-cf --convert-vector-to-llvm --convert-to-llvm --reconcile-unrealized-casts | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils -shared-libs=%mlir_c_runner_utils | FileCheck %s --check-prefix=VALUES

// CHECK-LABEL: func.func @round_trip
// CHECK-NOT: arith.truncf
// CHECK-NOT: arith.extf
// CHECK: arith.trunci {{.*}} : vector<8xi32> to vector<8xi16>
// CHECK: arith.bitcast {{.*}} : vector<8xi16> to vector<8xbf16>
func.func @round_trip(%x: vector<8xf32>) -> vector<8xf32> {
  %b = arith.truncf %x : vector<8xf32> to vector<8xbf16>
  %y = arith.extf %b : vector<8xbf16> to vector<8xf32>
  return %y : vector<8xf32>
}

// CHECK-LABEL: func.func @scalar
// CHECK-NOT: arith.truncf
func.func @scalar(%x: f32) -> bf16 {
  %b = arith.truncf %x : f32 to bf16
  return %b : bf16
}

// A stored bf16 value is stored as its i16 bits: LLVM's optimiser would
// otherwise turn the expansion's integer select into a select of bf16, which
// the x86 backend narrows through __truncsfbf2 (seen on dynamic-length
// decode kernels).
// CHECK-LABEL: llvm.func @store_bits
// CHECK-SAME: (%[[BITS:.+]]: vector<8xi16>, %[[V:.+]]: vector<8xbf16>, %[[P:.+]]: !llvm.ptr)
// CHECK: llvm.store %[[BITS]], %[[P]] : vector<8xi16>, !llvm.ptr
// CHECK: %[[C:.+]] = llvm.bitcast %[[V]] : vector<8xbf16> to vector<8xi16>
// CHECK: llvm.store %[[C]], %[[P]] : vector<8xi16>, !llvm.ptr
// CHECK: llvm.store {{.*}} : i16, !llvm.ptr
// CHECK-NOT: llvm.store {{.*}}bf16
llvm.func @store_bits(%bits: vector<8xi16>, %v: vector<8xbf16>, %p: !llvm.ptr) {
  %b = llvm.bitcast %bits : vector<8xi16> to vector<8xbf16>
  llvm.store %b, %p : vector<8xbf16>, !llvm.ptr
  llvm.store %v, %p : vector<8xbf16>, !llvm.ptr
  %zero = llvm.mlir.constant(0.0 : bf16) : bf16
  llvm.store %zero, %p : bf16, !llvm.ptr
  llvm.return
}

// Ties to even (1 + 2^-8 -> 1, 1 + 3 * 2^-8 -> 1 + 2^-6), NaN kept, the
// infinities, overflow past bf16's largest finite value to inf, rounding up
// into the next binade (1.99951171875 -> 2), a value exactly representable.
// VALUES: ( 1, 1, 1.01562, nan, inf, -inf, inf, 2, -0.5, 3.38953e+38, 0, 0, 0, 0, 0, 0 )
func.func @main() {
  %x = arith.constant dense<[1.0, 1.00390625, 1.01171875, 0x7FC00001,
                             0x7F800000, 0xFF800000, 3.4e38, 1.99951171875,
                             -0.5, 3.38953139e38, 0.0, 0.0, 0.0, 0.0, 0.0,
                             0.0]> : vector<16xf32>
  %y = func.call @round_trip16(%x) : (vector<16xf32>) -> vector<16xf32>
  vector.print %y : vector<16xf32>
  return
}
func.func @round_trip16(%x: vector<16xf32>) -> vector<16xf32> {
  %b = arith.truncf %x : vector<16xf32> to vector<16xbf16>
  %y = arith.extf %b : vector<16xbf16> to vector<16xf32>
  return %y : vector<16xf32>
}
