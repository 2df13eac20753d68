// RUN: attn-opt %s -split-input-file --attn-decompose-online-attention -verify-diagnostics

func.func @dynamic_heads(%q: tensor<1x?x16x8xf32>, %k: tensor<1x?x16x8xf32>,
                         %acc: tensor<1x?x16x8xf32>, %m: tensor<1x?x16xf32>)
    -> (tensor<1x?x16x8xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>) {
  // expected-error @+1 {{needs static q_heads and kv_heads to split GQA groups}}
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %k : tensor<1x?x16x8xf32>, tensor<1x?x16x8xf32>, tensor<1x?x16x8xf32>)
      outs(%acc, %m, %m : tensor<1x?x16x8xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>)
      -> tensor<1x?x16x8xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>
  return %a, %b, %c : tensor<1x?x16x8xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>
}

// -----

// A bufferized op once gave invalid IR (linalg on tensors built from
// memrefs): diagnosed instead.
func.func @bufferized(%q: memref<1x1x16x8xf32>, %acc: memref<1x1x16x8xf32>, %m: memref<1x1x16xf32>) {
  // expected-error @+1 {{decomposition needs tensor operands (run it before bufferization)}}
  attn.online_attention
      ins(%q, %q, %q : memref<1x1x16x8xf32>, memref<1x1x16x8xf32>, memref<1x1x16x8xf32>)
      outs(%acc, %m, %m : memref<1x1x16x8xf32>, memref<1x1x16xf32>, memref<1x1x16xf32>)
  return
}
