// RUN: attn-opt %s --attn-cpu-lower-copies | FileCheck %s

// CHECK-LABEL: func.func @copy
// CHECK-SAME:    %[[A:.+]]: memref<4x?xf32, strided<[?, 1], offset: ?>>, %[[B:.+]]: memref<4x?xf32>
// CHECK:         linalg.copy ins(%[[A]] : memref<4x?xf32, strided<[?, 1], offset: ?>>) outs(%[[B]] : memref<4x?xf32>)
// CHECK-NOT:     memref.copy
func.func @copy(%a: memref<4x?xf32, strided<[?, 1], offset: ?>>, %b: memref<4x?xf32>) {
  memref.copy %a, %b : memref<4x?xf32, strided<[?, 1], offset: ?>> to memref<4x?xf32>
  return
}
