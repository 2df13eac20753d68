// RUN: attn-opt %S/../../examples/attention.mlir --attn-cuda-pipeline="chip=sm_80 emit=kernel" | FileCheck %s --check-prefix=KERNEL
// RUN: attn-opt %S/../../examples/attention.mlir --attn-cuda-pipeline="chip=sm_90" | FileCheck %s --check-prefix=ISA
// RUN: attn-opt %s -split-input-file --attn-cuda-pipeline="chip=sm_90" -verify-diagnostics

// The README's tensor-form function (examples/attention.mlir) through the
// CUDA pipeline: the kernel interface first (memref arguments, the two
// results as trailing memrefs), then the usual kernel.
// KERNEL-LABEL: func.func @attention
// KERNEL-SAME:    (%{{.+}}: memref<1x32x128x128xbf16, strided<[?, ?, ?, 1]>>, %{{.+}}: memref<1x8x4096x128xbf16, strided<[?, ?, ?, 1]>>, %{{.+}}: memref<1x8x4096x128xbf16, strided<[?, ?, ?, 1]>>, %{{.+}}: memref<1xi32, strided<[1]>>, %{{.+}}: memref<1x32x128x128xbf16, strided<[?, ?, ?, 1]>>, %{{.+}}: memref<1x32x128xf32, strided<[?, ?, 1]>>)
// KERNEL:         gpu.launch
// KERNEL:           nvvm.mma.sync
// KERNEL-NOT:     attn.
// KERNEL-NOT:     bufferization.materialize_in_destination
// ISA: gpu.binary @attention_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, {{.*}}assembly = "{{.*}}.target sm_90{{.*}}mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32

// What the CUDA kernels do not support yet is diagnosed, not miscompiled.
func.func @masked(%q: tensor<1x2x64x64xf16>, %m: tensor<1x1x64x64xi1>)
    -> tensor<1x2x64x64xf16> {
  %o = tensor.empty() : tensor<1x2x64x64xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: tensor masks and biases are not supported by the CUDA kernels}}
  %r = attn.attention
      ins(%q, %q, %q : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>,
                       tensor<1x2x64x64xf16>)
      mask(%m : tensor<1x1x64x64xi1>)
      outs(%o : tensor<1x2x64x64xf16>) -> tensor<1x2x64x64xf16>
  return %r : tensor<1x2x64x64xf16>
}
