// RUN: attn-opt %s -split-input-file --attn-cpu-lower-online-attention -verify-diagnostics

func.func @tensors(%q: tensor<1x1x16x16xf32>, %acc: tensor<1x1x16x16xf32>, %m: tensor<1x1x16xf32>)
    -> (tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>) {
  // expected-error @+1 {{CPU lowering expects a bufferized op (memref operands)}}
  %a, %b, %c = attn.online_attention
      ins(%q, %q, %q : tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>)
      outs(%acc, %m, %m : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
  return %a, %b, %c : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
}

// -----

func.func @dynamic(%q: memref<1x1x?x16xf32>, %acc: memref<1x1x?x16xf32>, %m: memref<1x1x?xf32>) {
  // expected-error @+1 {{CPU lowering needs a tile with static sizes}}
  attn.online_attention
      ins(%q, %q, %q : memref<1x1x?x16xf32>, memref<1x1x?x16xf32>, memref<1x1x?x16xf32>)
      outs(%acc, %m, %m : memref<1x1x?x16xf32>, memref<1x1x?xf32>, memref<1x1x?xf32>)
  return
}

// -----

func.func @parallel(%q: memref<1x1x16x16xf32>, %acc: memref<1x1x16x16xf32>, %m: memref<1x1x16xf32>) {
  scf.forall (%i) in (2) {
    // expected-error @+1 {{CPU lowering does not support tiles inside parallel loops; run attn-cpu-distribute-workgroups}}
    attn.online_attention
        ins(%q, %q, %q : memref<1x1x16x16xf32>, memref<1x1x16x16xf32>, memref<1x1x16x16xf32>)
        outs(%acc, %m, %m : memref<1x1x16x16xf32>, memref<1x1x16xf32>, memref<1x1x16xf32>)
  }
  return
}

// -----

// vector-width=0 raised SIGFPE and -16 exhausted memory.
// RUN: not attn-opt %s -split-input-file --attn-cpu-lower-online-attention=vector-width=0 2>&1 | FileCheck %s --check-prefix=WIDTH
// WIDTH: CPU lowering supports vector widths of 8 (AVX2) and 16 (AVX-512) f32 lanes, got 0
// RUN: not attn-opt %s -split-input-file --attn-cpu-lower-online-attention=vector-width=-16 2>&1 | FileCheck %s --check-prefix=NEGWIDTH
// NEGWIDTH: CPU lowering supports vector widths of 8 (AVX2) and 16 (AVX-512) f32 lanes, got -16
func.func @scratch(%q: memref<1x1x1024x16xf32>, %k: memref<1x1x1024x16xf32>, %acc: memref<1x1x1024x16xf32>, %m: memref<1x1x1024xf32>) {
  // expected-error @+1 {{CPU lowering: a tile of 1x1x1024 queries and 1024 keys needs 4263936 bytes of stack scratch, more than the 4194304 allowed; use smaller tile sizes}}
  attn.online_attention
      ins(%q, %k, %k : memref<1x1x1024x16xf32>, memref<1x1x1024x16xf32>, memref<1x1x1024x16xf32>)
      outs(%acc, %m, %m : memref<1x1x1024x16xf32>, memref<1x1x1024xf32>, memref<1x1x1024xf32>)
  return
}
