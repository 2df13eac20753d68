// Each CPU target level pins its lowering, whatever the host: f32 lanes,
// the exp's vscalefps (AVX-512 levels), bf16 dot products (AVX512-BF16), and
// no f32 -> bf16 truncation left for LLVM where the level has no
// AVX512-BF16 (LLVM would call compiler-rt's __truncsfbf2 there).
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=x86-64-v3" | FileCheck %s --check-prefix=V3
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=x86-64-v4" | FileCheck %s --check-prefix=V4
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=x86-64-v4-bf16" | FileCheck %s --check-prefix=BF16
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=x86-64-v4-amx" | FileCheck %s --check-prefix=AMX
// RUN: not attn-opt %s --attn-cpu-pipeline="cpu=x86-64-v5" 2>&1 | FileCheck %s --check-prefix=BAD

// V3-LABEL: llvm.func @bf16
// V3-NOT: vector<16xf32>
// V3-NOT: llvm.x86.avx512
// V3-NOT: llvm.fptrunc
// V3: llvm.intr.fmuladd{{.*}}vector<8xf32>
// V3-NOT: llvm.fptrunc
// V3-NOT: llvm.x86.avx512
// V3-LABEL: llvm.func @f32
// V3-NOT: vector<16xf32>
// V3: llvm.intr.fmuladd{{.*}}vector<8xf32>

// V4-LABEL: llvm.func @bf16
// V4-NOT: llvm.fptrunc
// V4-NOT: avx512bf16
// V4: llvm.x86.avx512.mask.scalef.ps.512
// V4-NOT: llvm.fptrunc
// V4-NOT: avx512bf16
// V4-LABEL: llvm.func @f32
// V4: llvm.intr.fmuladd{{.*}}vector<16xf32>

// BF16-LABEL: llvm.func @bf16
// BF16-DAG: llvm.x86.avx512bf16.dpbf16ps.512
// BF16-DAG: llvm.fptrunc {{.*}} : f32 to bf16
// BF16-LABEL: llvm.func @f32

// AMX-LABEL: llvm.func @bf16
// AMX: llvm.x86.tdpbf16ps
// AMX-LABEL: llvm.func @f32

// BAD: cpu: unknown CPU target 'x86-64-v5' (known: host, generic, x86-64-v3, x86-64-v4, x86-64-v4-bf16, x86-64-v4-amx)

func.func @bf16(%q: tensor<1x2x64x64xbf16>, %k: tensor<1x2x64x64xbf16>, %v: tensor<1x2x64x64xbf16>, %o: tensor<1x2x64x64xbf16>) -> tensor<1x2x64x64xbf16> {
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x64x64xbf16>, tensor<1x2x64x64xbf16>, tensor<1x2x64x64xbf16>)
         outs(%o : tensor<1x2x64x64xbf16>) -> tensor<1x2x64x64xbf16>
  return %r : tensor<1x2x64x64xbf16>
}

func.func @f32(%q: tensor<1x2x64x64xf32>, %o: tensor<1x2x64x64xf32>) -> tensor<1x2x64x64xf32> {
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x64x64xf32>, tensor<1x2x64x64xf32>, tensor<1x2x64x64xf32>)
         outs(%o : tensor<1x2x64x64xf32>) -> tensor<1x2x64x64xf32>
  return %r : tensor<1x2x64x64xf32>
}
