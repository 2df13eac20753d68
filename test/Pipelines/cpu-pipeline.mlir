// RUN: attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,64,64 lower-to-llvm=0 cpu=generic" | FileCheck %s --check-prefix=VEC
// RUN: attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,64,64 lower-to-llvm=0 codegen=linalg cpu=generic" | FileCheck %s --check-prefix=LINALG
// RUN: attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,64,64 cpu=generic" | FileCheck %s --check-prefix=LLVM
// The target description: generic has no AVX-512 code; an explicit option
// overrides the description (cpu=host, the default, reads the running CPU).
// RUN: attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,64,64 cpu=generic" | FileCheck %s --check-prefix=GENERIC
// RUN: attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,64,64 cpu=generic avx512=1" | FileCheck %s --check-prefix=AVX512
// RUN: not attn-opt %s --attn-cpu-pipeline="cpu=pentium" 2>&1 | FileCheck %s --check-prefix=BADCPU
// GENERIC-NOT: scalef
// AVX512: llvm.x86.avx512.mask.scalef.ps.512
// BADCPU: for the --cpu option: Cannot find option named 'pentium'!

// A kernel entry as the runtime builds it. The only buffers are 64 x 64
// tiles on the stack, allocated once at the entry: the 512 x 512 score
// matrix never exists, and nothing is allocated in a loop.
// VEC-LABEL: func.func @attn_kernel
// VEC-NOT:     memref<{{.*}}512x512
// VEC-DAG:     %[[ST:.+]] = memref.alloca() {alignment = 64 : i64} : memref<64x64xf32>
// VEC-DAG:     %[[QT:.+]] = memref.alloca() {alignment = 64 : i64} : memref<1x1x64x64xf32>
// VEC-NOT:     memref.alloc(
// VEC:         scf.for %{{.+}} = %{{.+}} to %{{.+}} step
// The scaled, transposed query: once per query block, before the key loop.
// VEC:           memref.store %{{.+}}, %[[QT]]
// VEC:           scf.for %{{.+}} = %c0 to %{{.+}} step %c64 {
// S^T = K Q^T in 6 x 4 register blocks of vector<16xf32> (24 accumulators).
// VEC:             scf.for {{.+}} -> ({{(vector<16xf32>, ){23}v}}ector<16xf32>)
// VEC:               vector.load %[[QT]]
// VEC:               vector.broadcast
// VEC:               vector.fma
// VEC:             vector.store %{{.+}}, %[[ST]]
// Blocks inside the band skip the per-element test; the diagonal block
// masks per element.
// VEC:             %[[INSIDE:.+]] = arith.cmpi sle, %{{.+}} : index
// VEC:             scf.if %[[INSIDE]]
// VEC-NOT:           vector<16xi32>
// VEC:             } else {
// VEC:               arith.cmpi sle, %{{.+}} : vector<16xi32>
// VEC:               arith.select %{{.+}} : vector<16xi1>, vector<16xf32>
// VEC:             }
// VEC:             arith.maximumf {{.+}} : vector<16xf32>
// VEC:             math.exp {{.+}} : vector<16xf32>
// P V, guarded per row where the block straddles the diagonal.
// VEC:             vector.fma
// VEC:         return
// VEC-NOT:     memref.alloca
// VEC-NOT:     memref.alloc(

// LINALG-LABEL: func.func @attn_kernel
// LINALG-NOT:     memref<{{.*}}512x512
// LINALG-DAG:     memref.alloca() {alignment = 64 : i64} : memref<1x1x1x64x64xf32>
// LINALG-NOT:     memref.alloc(
// LINALG:         scf.for %{{.+}} = %{{.+}} to %{{.+}} step
// LINALG-NOT:       memref.alloca
// LINALG-NOT:       memref.alloc(
// LINALG:           scf.for
// LINALG:             linalg.generic
// LINALG-NOT:       memref.alloca
// LINALG-NOT:       memref.alloc(
// LINALG:         return

// LLVM-LABEL: llvm.func @attn_kernel
// LLVM:       llvm.intr.fmuladd
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
