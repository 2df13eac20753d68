// RUN: attn-opt %s --allow-unregistered-dialect --attn-cpu-hoist-static-allocations | FileCheck %s

// Static buffers in loops and under scf.if move to the entry block; buffers
// with dynamic sizes and buffers inside scf.forall stay.
// CHECK-LABEL: func.func @hoist
// CHECK-NEXT:    %[[A:.+]] = memref.alloca() : memref<4x4xf32>
// CHECK-NEXT:    %[[B:.+]] = memref.alloc() : memref<16xf32>
// CHECK:         scf.for
// CHECK:           scf.if
// CHECK-NOT:         memref.alloc
// CHECK:             "test.use"(%[[B]])
// CHECK:           "test.use"(%[[A]])
// CHECK:           memref.alloc(%{{.+}}) : memref<?xf32>
// CHECK:         scf.forall
// CHECK-NEXT:      memref.alloca() : memref<8xf32>
func.func @hoist(%n: index, %c: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %n step %c1 {
    scf.if %c {
      %b = memref.alloc() : memref<16xf32>
      "test.use"(%b) : (memref<16xf32>) -> ()
    }
    %a = memref.alloca() : memref<4x4xf32>
    "test.use"(%a) : (memref<4x4xf32>) -> ()
    %d = memref.alloc(%i) : memref<?xf32>
    "test.use"(%d) : (memref<?xf32>) -> ()
  }
  scf.forall (%j) in (4) {
    %p = memref.alloca() : memref<8xf32>
    "test.use"(%p) : (memref<8xf32>) -> ()
  }
  return
}
