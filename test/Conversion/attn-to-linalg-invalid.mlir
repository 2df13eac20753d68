// RUN: attn-opt %s --convert-attn-to-linalg -verify-diagnostics

func.func @dynamic_heads(%q: tensor<1x?x16x8xf32>, %o: tensor<1x?x16x8xf32>) -> tensor<1x?x16x8xf32> {
  // expected-error @+1 {{needs static q_heads and kv_heads to split GQA groups}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x?x16x8xf32>, tensor<1x?x16x8xf32>, tensor<1x?x16x8xf32>)
         outs(%o : tensor<1x?x16x8xf32>) -> tensor<1x?x16x8xf32>
  return %r : tensor<1x?x16x8xf32>
}
