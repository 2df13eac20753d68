// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=2,3,32,64" -verify-diagnostics
// RUN: not attn-opt %s --attn-tile-attention="tile-sizes=1,1,32" 2>&1 | FileCheck %s --check-prefix=OPTION

// OPTION: attn-tile-attention: tile-sizes must be 4 positive integers (batch, heads, query, key)

func.func @heads(%q: tensor<2x8x64x16xf32>, %o: tensor<2x8x64x16xf32>) -> tensor<2x8x64x16xf32> {
  // expected-error @+1 {{head tile size 3 does not divide q_heads 8}}
  %r = attn.attention ins(%q, %q, %q : tensor<2x8x64x16xf32>, tensor<2x8x64x16xf32>, tensor<2x8x64x16xf32>)
         outs(%o : tensor<2x8x64x16xf32>) -> tensor<2x8x64x16xf32>
  return %r : tensor<2x8x64x16xf32>
}

// -----

func.func @groups(%q: tensor<2x12x64x16xf32>, %k: tensor<2x3x64x16xf32>, %o: tensor<2x12x64x16xf32>) -> tensor<2x12x64x16xf32> {
  // expected-error @+1 {{head tile size 3 splits GQA groups of 4 unevenly}}
  %r = attn.attention ins(%q, %k, %k : tensor<2x12x64x16xf32>, tensor<2x3x64x16xf32>, tensor<2x3x64x16xf32>)
         outs(%o : tensor<2x12x64x16xf32>) -> tensor<2x12x64x16xf32>
  return %r : tensor<2x12x64x16xf32>
}

// -----

func.func @batch(%q: tensor<3x6x64x16xf32>, %o: tensor<3x6x64x16xf32>) -> tensor<3x6x64x16xf32> {
  // expected-error @+1 {{batch tile size 2 does not divide the batch size}}
  %r = attn.attention ins(%q, %q, %q : tensor<3x6x64x16xf32>, tensor<3x6x64x16xf32>, tensor<3x6x64x16xf32>)
         outs(%o : tensor<3x6x64x16xf32>) -> tensor<3x6x64x16xf32>
  return %r : tensor<3x6x64x16xf32>
}

// -----

func.func @dynamic_heads(%q: tensor<2x?x64x16xf32>, %o: tensor<2x?x64x16xf32>) -> tensor<2x?x64x16xf32> {
  // expected-error @+1 {{tiling needs static q_heads and kv_heads}}
  %r = attn.attention ins(%q, %q, %q : tensor<2x?x64x16xf32>, tensor<2x?x64x16xf32>, tensor<2x?x64x16xf32>)
         outs(%o : tensor<2x?x64x16xf32>) -> tensor<2x?x64x16xf32>
  return %r : tensor<2x?x64x16xf32>
}

// -----

func.func @dynamic_head_dim(%q: tensor<2x6x64x?xf32>, %o: tensor<2x6x64x?xf32>) -> tensor<2x6x64x?xf32> {
  // expected-error @+1 {{tiling needs static head_dim and v_head_dim}}
  %r = attn.attention ins(%q, %q, %q : tensor<2x6x64x?xf32>, tensor<2x6x64x?xf32>, tensor<2x6x64x?xf32>)
         outs(%o : tensor<2x6x64x?xf32>) -> tensor<2x6x64x?xf32>
  return %r : tensor<2x6x64x?xf32>
}

// -----

// A zero-size sequence once produced invalid IR (a zero-trip forall of
// zero-size tiles): diagnosed instead.
func.func @empty(%q: tensor<2x6x0x16xf32>, %k: tensor<2x6x8x16xf32>, %o: tensor<2x6x0x16xf32>) -> tensor<2x6x0x16xf32> {
  // expected-error @+1 {{tiling needs non-empty operands (a static size is 0)}}
  %r = attn.attention ins(%q, %k, %k : tensor<2x6x0x16xf32>, tensor<2x6x8x16xf32>, tensor<2x6x8x16xf32>)
         outs(%o : tensor<2x6x0x16xf32>) -> tensor<2x6x0x16xf32>
  return %r : tensor<2x6x0x16xf32>
}

// -----

func.func @bufferized(%q: memref<2x6x64x16xf32>, %acc: memref<2x6x64x16xf32>, %m: memref<2x6x64xf32>) {
  // expected-error @+1 {{tiling needs tensor operands (run it before bufferization)}}
  attn.online_attention
      ins(%q, %q, %q : memref<2x6x64x16xf32>, memref<2x6x64x16xf32>, memref<2x6x64x16xf32>)
      outs(%acc, %m, %m : memref<2x6x64x16xf32>, memref<2x6x64xf32>, memref<2x6x64xf32>)
  return
}
