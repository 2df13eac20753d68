// Given tile sizes get the check the runtime makes (verifyTileSizes): the
// same message from attn-opt and from a CompileOptions.
// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,1,2048,64 target=cuda" -verify-diagnostics
// RUN: not attn-opt %s --attn-tile-attention="tile-sizes=1,8,1024,1024 target=cpu" 2>&1 | FileCheck %s --check-prefix=SCRATCH
// RUN: attn-opt %s --attn-tile-attention="tile-sizes=1,8,1024,1024 target=cuda" | FileCheck %s --check-prefix=CUDA

// SCRATCH: error: 'attn.attention' op attn-tile-attention: tile sizes 1,8,1024,1024 need {{[0-9]+}} bytes of stack scratch per workgroup, more than the 4194304 the CPU code generator allows
// The CUDA kernels have no stack scratch: the same sizes tile (their
// lowering checks its own shared-memory limits).
// CUDA: scf.forall
func.func @big(%q: tensor<1x8x2048x64xf32>) -> tensor<1x8x2048x64xf32> {
  %o = tensor.empty() : tensor<1x8x2048x64xf32>
  // expected-error @+1 {{attn-tile-attention: query and key tile sizes must be at most 1024 (batch and heads below 2^31), got 1,1,2048,64}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x8x2048x64xf32>, tensor<1x8x2048x64xf32>, tensor<1x8x2048x64xf32>)
      outs(%o : tensor<1x8x2048x64xf32>) -> tensor<1x8x2048x64xf32>
  return %r : tensor<1x8x2048x64xf32>
}
