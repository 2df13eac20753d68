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
