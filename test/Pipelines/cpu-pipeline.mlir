// RUN: attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,64,64 lower-to-llvm=0" | FileCheck %s --check-prefix=BUF
// RUN: attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,64,64" | FileCheck %s --check-prefix=LLVM

// A kernel entry as the runtime builds it. After bufferization, the only
// buffers are [64, 64] tiles on the stack, allocated once at the entry: the
// 512 x 512 score matrix never exists, and nothing is allocated in a loop.
// BUF-LABEL: func.func @attn_kernel
// BUF-NOT:     memref<{{.*}}512x512
// BUF-DAG:     memref.alloca() {alignment = 64 : i64} : memref<1x1x1x64x64xf32>
// BUF-NOT:     memref.alloc(
// BUF:         scf.for %[[WG:.+]] = %{{.+}} to %{{.+}} step
// BUF-NOT:       memref.alloca
// BUF-NOT:       memref.alloc(
// BUF:           scf.for
// BUF-NOT:       memref.alloca
// BUF-NOT:       memref.alloc(
// BUF:         return

// LLVM-LABEL: llvm.func @attn_kernel
// LLVM:       llvm.func @_mlir_ciface_attn_kernel
// LLVM-NOT:   memref.
// LLVM-NOT:   scf.
// LLVM-NOT:   linalg.
func.func @attn_kernel(%q: memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>>,
                       %k: memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>>,
                       %v: memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>>,
                       %o: memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>>,
                       %begin: index {attn.workgroup_begin}, %end: index {attn.workgroup_end})
    attributes {llvm.emit_c_interface} {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x512x64xf32>
  %kt = bufferization.to_tensor %k restrict : memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x512x64xf32>
  %vt = bufferization.to_tensor %v restrict : memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x512x64xf32>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x512x64xf32>
  %r = attn.attention {mask_kind = #attn.causal}
         ins(%qt, %kt, %vt : tensor<1x2x512x64xf32>, tensor<1x2x512x64xf32>, tensor<1x2x512x64xf32>)
         outs(%ot : tensor<1x2x512x64xf32>) -> tensor<1x2x512x64xf32>
  bufferization.materialize_in_destination %r in restrict writable %o
      : (tensor<1x2x512x64xf32>, memref<1x2x512x64xf32, strided<[?, ?, ?, 1]>>) -> ()
  return
}
