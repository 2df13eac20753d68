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
