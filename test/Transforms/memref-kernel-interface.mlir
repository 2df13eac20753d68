// RUN: attn-opt %s -split-input-file --attn-memref-kernel-interface | FileCheck %s
// RUN: attn-opt %s -split-input-file --attn-memref-kernel-interface --attn-memref-kernel-interface | FileCheck %s

// Tensor arguments become strided memrefs read by to_tensor; each tensor
// result a trailing memref written by materialize_in_destination.
// CHECK-LABEL: func.func @attention
// CHECK-SAME:    (%[[Q:.+]]: memref<1x8x256x64xbf16, strided<[?, ?, ?, 1]>>, %[[K:.+]]: memref<1x2x256x64xbf16, strided<[?, ?, ?, 1]>>, %[[V:.+]]: memref<1x2x256x64xbf16, strided<[?, ?, ?, 1]>>, %[[LENS:.+]]: memref<1xi32, strided<[1]>>, %[[O:.+]]: memref<1x8x256x64xbf16, strided<[?, ?, ?, 1]>>, %[[L:.+]]: memref<1x8x256xf32, strided<[?, ?, 1]>>)
// CHECK-NOT:     ->
// CHECK-DAG:     %[[QT:.+]] = bufferization.to_tensor %[[Q]] restrict
// CHECK-DAG:     %[[KT:.+]] = bufferization.to_tensor %[[K]] restrict
// CHECK-DAG:     %[[VT:.+]] = bufferization.to_tensor %[[V]] restrict
// CHECK-DAG:     %[[LT:.+]] = bufferization.to_tensor %[[LENS]] restrict
// CHECK:         %[[R:.+]]:2 = attn.attention {{.+}} ins(%[[QT]], %[[KT]], %[[VT]] : {{.+}}) kv_lens(%[[LT]] : tensor<1xi32>)
// CHECK:         bufferization.materialize_in_destination %[[R]]#0 in restrict writable %[[O]]
// CHECK:         bufferization.materialize_in_destination %[[R]]#1 in restrict writable %[[L]]
// CHECK:         return{{$}}
func.func @attention(%q: tensor<1x8x256x64xbf16>, %k: tensor<1x2x256x64xbf16>,
                     %v: tensor<1x2x256x64xbf16>, %lens: tensor<1xi32>)
    -> (tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>) {
  %o = tensor.empty() : tensor<1x8x256x64xbf16>
  %l = tensor.empty() : tensor<1x8x256xf32>
  %out, %lse = attn.attention {mask_kind = #attn.causal<bottom_right>}
      ins(%q, %k, %v : tensor<1x8x256x64xbf16>, tensor<1x2x256x64xbf16>,
                       tensor<1x2x256x64xbf16>)
      kv_lens(%lens : tensor<1xi32>)
      outs(%o, %l : tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>)
      -> tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>
  return %out, %lse : tensor<1x8x256x64xbf16>, tensor<1x8x256xf32>
}

// -----

// Functions on memrefs (the runtime's kernel modules), private functions
// and declarations are left alone; non-tensor results stay results.
// CHECK-LABEL: func.func @already_memrefs
// CHECK-SAME:    (%{{.+}}: memref<4xf32>)
// CHECK-LABEL: func.func private @helper
// CHECK-SAME:    (%{{.+}}: tensor<4xf32>) -> tensor<4xf32>
// CHECK-LABEL: func.func @mixed
// CHECK-SAME:    (%[[A:.+]]: memref<4xf32, strided<[1]>>, %[[N:.+]]: index, %[[OUT:.+]]: memref<4xf32, strided<[1]>>) -> index
// CHECK:         %[[AT:.+]] = bufferization.to_tensor %[[A]] restrict
// CHECK:         %[[S:.+]] = arith.addf %[[AT]], %[[AT]]
// CHECK:         bufferization.materialize_in_destination %[[S]] in restrict writable %[[OUT]]
// CHECK:         return %[[N]] : index
func.func @already_memrefs(%m: memref<4xf32>) {
  return
}
func.func private @helper(%t: tensor<4xf32>) -> tensor<4xf32> {
  return %t : tensor<4xf32>
}
func.func @mixed(%a: tensor<4xf32>, %n: index) -> (index, tensor<4xf32>) {
  %s = arith.addf %a, %a : tensor<4xf32>
  return %n, %s : index, tensor<4xf32>
}
