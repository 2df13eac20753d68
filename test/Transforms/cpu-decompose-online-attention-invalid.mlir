// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention -verify-diagnostics

func.func @buffers(%q: memref<1x1x16x16xf32>, %acc: memref<1x1x16x16xf32>, %m: memref<1x1x16xf32>) {
  // expected-error @+1 {{CPU decomposition expects a tile on tensors (run it before bufferization)}}
  attn.online_attention
      ins(%q, %q, %q : memref<1x1x16x16xf32>, memref<1x1x16x16xf32>, memref<1x1x16x16xf32>)
      outs(%acc, %m, %m : memref<1x1x16x16xf32>, memref<1x1x16xf32>, memref<1x1x16xf32>)
  return
}

// -----

func.func @dynamic(%q: tensor<1x1x?x16xf32>, %acc: tensor<1x1x?x16xf32>, %m: tensor<1x1x?xf32>)
    -> tensor<1x1x?x16xf32> {
  // expected-error @+1 {{CPU lowering needs a tile with static sizes}}
  %a, %b, %c = attn.online_attention
      ins(%q, %q, %q : tensor<1x1x?x16xf32>, tensor<1x1x?x16xf32>, tensor<1x1x?x16xf32>)
      outs(%acc, %m, %m : tensor<1x1x?x16xf32>, tensor<1x1x?xf32>, tensor<1x1x?xf32>)
      -> tensor<1x1x?x16xf32>, tensor<1x1x?xf32>, tensor<1x1x?xf32>
  return %a : tensor<1x1x?x16xf32>
}

// -----

// vector-width=0 raised SIGFPE and -16 exhausted memory.
// RUN: not attn-opt %s -split-input-file --attn-cpu-decompose-online-attention=vector-width=0 2>&1 | FileCheck %s --check-prefix=WIDTH
// WIDTH: CPU lowering supports vector widths of 8 (AVX2) and 16 (AVX-512) f32 lanes, got 0
// RUN: not attn-opt %s -split-input-file --attn-cpu-decompose-online-attention=vector-width=-16 2>&1 | FileCheck %s --check-prefix=NEGWIDTH
// NEGWIDTH: CPU lowering supports vector widths of 8 (AVX2) and 16 (AVX-512) f32 lanes, got -16
func.func @scratch(%q: tensor<1x1x1024x16xf32>, %k: tensor<1x1x1024x16xf32>, %acc: tensor<1x1x1024x16xf32>,
                   %m: tensor<1x1x1024xf32>) -> tensor<1x1x1024x16xf32> {
  // expected-error @+1 {{CPU lowering: a tile of 1x1x1024 queries and 1024 keys needs 4263936 bytes of stack scratch, more than the 4194304 allowed; use smaller tile sizes}}
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %k : tensor<1x1x1024x16xf32>, tensor<1x1x1024x16xf32>, tensor<1x1x1024x16xf32>)
      outs(%acc, %m, %m : tensor<1x1x1024x16xf32>, tensor<1x1x1024xf32>, tensor<1x1x1024xf32>)
      -> tensor<1x1x1024x16xf32>, tensor<1x1x1024xf32>, tensor<1x1x1024xf32>
  return %a : tensor<1x1x1024x16xf32>
}
