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
// BADCPU: error: cpu: unknown CPU target 'pentium' (known: host, generic, x86-64-v3

// A kernel entry as the runtime builds it.
//
// Before any vector code, each tile of the key loop is linalg stages on
// tensors (attn-cpu-decompose-online-attention): the scaled, transposed
// query once per query block, then per key block the Q K^T contraction, the
// elementwise score stage (the band test, only for a block that straddles
// the diagonal), the row statistics and the P V contraction.
// RUN: attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,64,64 lower-to-llvm=0 cpu=generic" --mlir-print-ir-after=attn-cpu-decompose-online-attention -o /dev/null 2>&1 | FileCheck %s --check-prefix=STAGES
// STAGES-LABEL: func.func @attn_kernel
// STAGES-NOT:     vector.
// STAGES:         %[[QT:.+]] = linalg.generic {{.+}} attrs = {{.+}}attn.cpu_stage = "query"
// STAGES:         scf.for %{{.+}} = %c0 to %{{.+}} step %c64 iter_args
// STAGES:           %[[QTH:.+]] = tensor.extract_slice %[[QT]]
// STAGES:           %[[S:.+]] = linalg.generic {{.+}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%{{.+}}, %[[QTH]] : tensor<64x64xf32>, tensor<64x64xf32>) {{.+}}attn.cpu_scheme = "fma", attn.cpu_stage = "scores"
// STAGES:           %[[SM:.+]] = scf.if %{{.+}} -> (tensor<64x64xf32>) {
// STAGES-NEXT:        scf.yield %[[S]]
// STAGES-NEXT:      } else {
// STAGES-NEXT:        linalg.generic {{.+}}outs(%[[S]] : tensor<64x64xf32>) {{.+}}attn.cpu_stage = "score"
// STAGES:               linalg.index
// STAGES:               arith.cmpi sle
// STAGES:               arith.select
// STAGES:           %[[MAX:.+]] = linalg.generic {{.+}}iterator_types = ["reduction", "parallel"]} ins(%[[SM]], {{.+}}attn.cpu_stage = "max"
// STAGES:           %[[ALPHA:.+]]:3 = linalg.generic {{.+}}ins(%[[MAX]] : {{.+}}attn.cpu_stage = "alpha"
// STAGES:           %[[P:.+]]:2 = linalg.generic {{.+}}ins(%[[ALPHA]]#0, {{.+}}outs(%[[SM]], %[[ALPHA]]#2 : {{.+}}attn.cpu_stage = "exp_sum"
// STAGES:           math.exp
// STAGES:           %[[ACC:.+]] = linalg.generic {{.+}}ins(%[[ALPHA]]#1 : {{.+}}attn.cpu_stage = "rescale"
// STAGES:           linalg.generic {{.+}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[P]]#0, {{.+}}outs(%[[ACC]] : {{.+}}attn.cpu_scheme = "fma", attn.cpu_stage = "pv"
// STAGES:         scf.forall.in_parallel

// After bufferization each stage becomes its microkernel
// (attn-cpu-lower-stages). The only buffers are 64 x 64 tiles on the stack,
// allocated once at the entry: the 512 x 512 score matrix never exists, and
// nothing is allocated in a loop.
// VEC-LABEL: func.func @attn_kernel
// VEC-NOT:     memref<{{.*}}512x512
// VEC-DAG:     %[[ST:.+]] = memref.alloca() {alignment = 64 : i64} : memref<64x64xf32>
// VEC-DAG:     %[[QT:.+]] = memref.alloca() {alignment = 64 : i64} : memref<1x1x64x64xf32>
// VEC-NOT:     memref.alloc(
// VEC:         scf.for %{{.+}} = %{{.+}} to %{{.+}} step
// The query stage (loops) before the key loop.
// VEC:           linalg.generic {{.+}}outs(%[[QT]] : {{.+}}attn.cpu_stage = "query"
// VEC:           scf.for %{{.+}} = %c0 to %{{.+}} step %c64 {
// VEC:             %[[QTH:.+]] = memref.subview %[[QT]]
// S^T = K Q^T in register blocks of 6 keys x 4 vectors of 16 queries: the
// key loop of the block carries the accumulators.
// VEC:             scf.for %{{.+}} = %c0 to %c60 step %c6 {
// VEC:               scf.for %{{.+}} = %c0 to %c64 step %c1 iter_args(%[[ACC0:[a-z0-9_]+]] = %{{.+}}, {{.+}}) -> (vector<16xf32>,
// VEC:                 vector.load %[[QTH]]
// VEC:                 %[[KB:.+]] = vector.broadcast
// VEC:                 vector.fma %[[KB]], %{{.+}}, %[[ACC0]] : vector<16xf32>
// VEC:               vector.store %{{.+}}, %[[ST]]
// Blocks inside the band skip the score stage; the diagonal block tests
// the band per element, vectorized from the stage's region (i32 lanes).
// VEC:             %[[INSIDE:.+]] = arith.cmpi sle, %{{.+}} : index
// VEC:             scf.if %[[INSIDE]] {
// VEC-NEXT:        } else {
// VEC:               vector.load %[[ST]]
// VEC:               arith.cmpi sle, %{{.+}} : vector<16xi32>
// VEC:               arith.select %{{.+}} : vector<16xi1>, vector<16xf32>
// VEC:               vector.store %{{.+}}, %[[ST]]
// VEC:             }
// The running max in pairs of keys, alpha, exp and the row sum, lane-wise.
// VEC:             scf.for %{{.+}} step %c2 iter_args(%[[RM:.+]] = %{{.+}}, %{{.+}} = %{{.+}}) -> (vector<16xf32>, vector<16xf32>)
// VEC:               %[[GT:.+]] = arith.cmpf ogt, %[[SC:.+]], %[[RM]] : vector<16xf32>
// VEC:               arith.select %[[GT]], %[[SC]], %[[RM]]
// VEC:             arith.maximumf {{.+}} : vector<16xf32>
// VEC:             math.exp {{.+}} : vector<16xf32>
// VEC:             math.exp {{.+}} : vector<16xf32>
// P V with the rescaling folded into the accumulator loads, guarded per row
// where the block straddles the diagonal.
// VEC:             arith.mulf {{.+}} : vector<16xf32>
// VEC:             vector.fma
// VEC-NOT:         attn.cpu_stage
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
