// RUN: attn-opt %s --attn-cuda-pipeline="tile-sizes=1,1,64,64 chip=sm_80 emit=kernel" | FileCheck %s --check-prefix=KERNEL
// RUN: attn-opt %s --attn-cuda-pipeline="tile-sizes=1,1,64,64 chip=sm_80 emit=nvvm" | FileCheck %s --check-prefix=NVVM
// RUN: attn-opt %s --attn-cuda-pipeline="tile-sizes=1,1,64,64 chip=sm_90" | FileCheck %s --check-prefix=ISA

// The runtime's kernel module for a causal f16 spec.

// After attn-cuda-lower-attention: a gpu.launch in the function.
// KERNEL-LABEL: func.func @attn_kernel
// KERNEL:         gpu.launch
// KERNEL:           nvgpu.mma.sync
// KERNEL-NOT:     attn.

// Outlined: the kernel's only parameters are the four memrefs (constants
// and sizes were sunk into the launch before outlining); the gpu.module is
// in the NVVM / LLVM dialects with the launch bounds for ptxas.
// NVVM-LABEL: func.func @attn_kernel
// NVVM-SAME:    (%[[Q:.+]]: memref<{{.+}}>, %[[K:.+]]: memref<{{.+}}>, %[[V:.+]]: memref<{{.+}}>, %[[O:.+]]: memref<{{.+}}>)
// NVVM:         gpu.launch_func @attn_kernel_kernel::@attn_kernel_kernel blocks in (%c4, %c1, %c4) threads in (%c128, %c1, %c1) dynamic_shared_memory_size %c36864_i32 args(%{{[a-z0-9]+}} : memref<{{[^)]+}}>, %{{[a-z0-9]+}} : memref<{{[^)]+}}>, %{{[a-z0-9]+}} : memref<{{[^)]+}}>, %{{[a-z0-9]+}} : memref<{{[^)]+}}>)
// NVVM:       gpu.module @attn_kernel_kernel [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
// NVVM:         llvm.mlir.global internal @__dynamic_shmem__0() {addr_space = 3 : i32, alignment = 16 : i64}
// NVVM:         llvm.func @attn_kernel_kernel({{.+}}) attributes {gpu.kernel, gpu.known_block_size = array<i32: 128, 1, 1>, {{.*}}nvvm.kernel, nvvm.maxntid = array<i32: 128, 1, 1>}
// NVVM:           nvvm.cp.async.shared.global {{.+}}, 16, cache =  cg, %{{.+}} : !llvm.ptr<3>, !llvm.ptr<1>, i32
// NVVM:           nvvm.cp.async.commit.group
// NVVM:           nvvm.cp.async.wait.group 1
// NVVM:           nvvm.barrier
// NVVM:           nvvm.ldmatrix
// NVVM:           nvvm.mma.sync
// NVVM:           nvvm.shfl.sync bfly
// NVVM:           llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"
// NVVM-NOT:       __nv_

// gpu-module-to-binary with format=isa: PTX text in the gpu.binary.
// ISA: gpu.binary @attn_kernel_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, {{.*}}assembly = "{{.*}}.target sm_90{{.*}}mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
func.func @attn_kernel(%q: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>,
                       %k: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>,
                       %v: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>,
                       %o: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>) attributes {llvm.emit_c_interface} {
  %qt = bufferization.to_tensor %q restrict : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x4x256x64xf16>
  %kt = bufferization.to_tensor %k restrict : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x4x256x64xf16>
  %vt = bufferization.to_tensor %v restrict : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x4x256x64xf16>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x4x256x64xf16>
  %r = attn.attention {mask_kind = #attn.causal, scale = 0.125 : f32}
         ins(%qt, %kt, %vt : tensor<1x4x256x64xf16>, tensor<1x4x256x64xf16>, tensor<1x4x256x64xf16>)
         outs(%ot : tensor<1x4x256x64xf16>) -> tensor<1x4x256x64xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x4x256x64xf16>, memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}
