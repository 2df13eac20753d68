// RUN: attn-opt %s -split-input-file -verify-diagnostics

// Every verifier message of attn.attention, attn.online_attention and the
// mask-kind attributes.

func.func @query_rank(%q: tensor<8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'query' must be a rank-4 tensor [batch, q_heads, q_len, head_dim], got rank 3}}
  %r = attn.attention ins(%q, %k, %v : tensor<8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @key_rank(%q: tensor<1x8x16x4xf32>, %k: tensor<8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'key' must be a rank-4 tensor [batch, kv_heads, kv_len, head_dim], got rank 3}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @value_rank(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4x1xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'value' must be a rank-4 tensor [batch, kv_heads, kv_len, v_head_dim], got rank 5}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4x1xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @query_elt(%q: tensor<1x8x16x4xi32>, %k: tensor<1x8x16x4xi32>, %v: tensor<1x8x16x4xi32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'query' element type must be f32, f16 or bf16, got 'i32'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xi32>, tensor<1x8x16x4xi32>, tensor<1x8x16x4xi32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @key_elt(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf16>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'key' element type 'f16' does not match 'query' element type 'f32'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf16>, tensor<1x8x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @value_elt(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xbf16>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'value' element type 'bf16' does not match 'query' element type 'f32'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xbf16>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @key_batch(%q: tensor<1x8x16x4xf32>, %k: tensor<2x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'key' batch 2 does not match 'query' batch 1}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<2x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @value_batch(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<3x8x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'value' batch 3 does not match 'query' batch 1}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<3x8x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @key_head_dim(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x8xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'key' head_dim 8 does not match 'query' head_dim 4}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x8xf32>, tensor<1x8x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @value_heads(%q: tensor<1x8x16x4xf32>, %k: tensor<1x4x16x4xf32>, %v: tensor<1x2x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'value' kv_heads 2 does not match 'key' kv_heads 4}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x4x16x4xf32>, tensor<1x2x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @value_kv_len(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x32x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'value' kv_len 32 does not match 'key' kv_len 16}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x32x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @zero_kv_heads(%q: tensor<1x8x16x4xf32>, %k: tensor<1x0x16x4xf32>, %v: tensor<1x0x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'key' must have at least one head}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x0x16x4xf32>, tensor<1x0x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @gqa(%q: tensor<1x6x16x4xf32>, %k: tensor<1x4x16x4xf32>, %v: tensor<1x4x16x4xf32>, %o: tensor<1x6x16x4xf32>) {
  // expected-error @+1 {{'query' heads (6) must be a multiple of 'key' heads (4)}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x6x16x4xf32>, tensor<1x4x16x4xf32>, tensor<1x4x16x4xf32>)
      outs(%o : tensor<1x6x16x4xf32>) -> tensor<1x6x16x4xf32>
  return
}

// -----

func.func @mask_elt(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %m: tensor<1x1x16x16xf32>) {
  // expected-error @+1 {{'mask' element type must be i1 (true keeps the key), got 'f32'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>) mask(%m : tensor<1x1x16x16xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @mask_rank(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %m: tensor<16x16xi1>) {
  // expected-error @+1 {{'mask' must be a rank-4 tensor [batch|1, q_heads|1, q_len|1, kv_len], got rank 2}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>) mask(%m : tensor<16x16xi1>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @mask_shape(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %m: tensor<1x4x16x16xi1>) {
  // expected-error @+1 {{'mask' shape [1, 4, 16, 16] does not broadcast to [batch, q_heads, q_len, kv_len] = [1, 8, 16, 16]}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>) mask(%m : tensor<1x4x16x16xi1>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @bias_elt(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %m: tensor<1x1x16x16xi1>) {
  // expected-error @+1 {{'bias' element type must be f32, f16 or bf16, got 'i1'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>) bias(%m : tensor<1x1x16x16xi1>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @bias_shape(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %m: tensor<1x1x16x8xf32>) {
  // expected-error @+1 {{'bias' shape [1, 1, 16, 8] does not broadcast to [batch, q_heads, q_len, kv_len] = [1, 8, 16, 16]}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>) bias(%m : tensor<1x1x16x8xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @kv_lens_type(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %n: tensor<1xf32>) {
  // expected-error @+1 {{'kv_lens' must be a rank-1 i32 or i64 tensor [batch], got 'tensor<1xf32>'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>) kv_lens(%n : tensor<1xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @kv_lens_batch(%q: tensor<2x8x16x4xf32>, %k: tensor<2x8x16x4xf32>, %v: tensor<2x8x16x4xf32>, %o: tensor<2x8x16x4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{'kv_lens' batch 3 does not match 'query' batch 2}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x8x16x4xf32>, tensor<2x8x16x4xf32>, tensor<2x8x16x4xf32>) kv_lens(%n : tensor<3xi64>)
      outs(%o : tensor<2x8x16x4xf32>) -> tensor<2x8x16x4xf32>
  return
}

// -----

func.func @scale(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'scale' must be finite, got INF}}
  %r = attn.attention {scale = 0x7F800000 : f32} ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @offsets(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %i: index) {
  // expected-error @+1 {{expects 0, 2 (q_offset, kv_offset) or 4 (b_offset, h_offset, q_offset, kv_offset) offsets, got 1}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>) offsets(%i)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @out_elt(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xi32>) {
  // expected-error @+1 {{'output' element type must be f32, f16 or bf16, got 'i32'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%o : tensor<1x8x16x4xi32>) -> tensor<1x8x16x4xi32>
  return
}

// -----

func.func @out_shape(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x2xf32>, %o: tensor<1x8x16x4xf32>) {
  // expected-error @+1 {{'output' shape [1, 8, 16, 4] does not match the expected [1, 8, 16, 2]}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x2xf32>)
      outs(%o : tensor<1x8x16x4xf32>) -> tensor<1x8x16x4xf32>
  return
}

// -----

func.func @lse_elt(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %l: tensor<1x8x16xf16>) {
  // expected-error @+1 {{'lse' element type must be f32, got 'f16'}}
  %r:2 = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%o, %l : tensor<1x8x16x4xf32>, tensor<1x8x16xf16>) -> tensor<1x8x16x4xf32>, tensor<1x8x16xf16>
  return
}

// -----

func.func @lse_shape(%q: tensor<1x8x16x4xf32>, %k: tensor<1x8x16x4xf32>, %v: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %l: tensor<1x8x8xf32>) {
  // expected-error @+1 {{'lse' shape [1, 8, 8] does not match the expected [1, 8, 16]}}
  %r:2 = attn.attention ins(%q, %k, %v : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%o, %l : tensor<1x8x16x4xf32>, tensor<1x8x8xf32>) -> tensor<1x8x16x4xf32>, tensor<1x8x8xf32>
  return
}

// -----

func.func @three_outs(%q: tensor<1x8x16x4xf32>, %o: tensor<1x8x16x4xf32>, %l: tensor<1x8x16xf32>) {
  // expected-error @+1 {{expects 1 or 2 outs (output and optional log-sum-exp), got 3}}
  %r:3 = attn.attention ins(%q, %q, %q : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%o, %l, %l : tensor<1x8x16x4xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16x4xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf32>
  return
}

// -----

func.func @online_outs(%q: tensor<1x8x16x4xf32>, %a: tensor<1x8x16x4xf32>, %m: tensor<1x8x16xf32>) {
  // expected-error @+1 {{expects 3 outs (acc, max, sum), got 2}}
  %r:2 = attn.online_attention ins(%q, %q, %q : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%a, %m : tensor<1x8x16x4xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16x4xf32>, tensor<1x8x16xf32>
  return
}

// -----

func.func @online_acc_elt(%q: tensor<1x8x16x4xf16>, %a: tensor<1x8x16x4xf16>, %m: tensor<1x8x16xf32>) {
  // expected-error @+1 {{'acc' element type must be f32, got 'f16'}}
  %r:3 = attn.online_attention ins(%q, %q, %q : tensor<1x8x16x4xf16>, tensor<1x8x16x4xf16>, tensor<1x8x16x4xf16>)
      outs(%a, %m, %m : tensor<1x8x16x4xf16>, tensor<1x8x16xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16x4xf16>, tensor<1x8x16xf32>, tensor<1x8x16xf32>
  return
}

// -----

func.func @online_acc_shape(%q: tensor<1x8x16x4xf32>, %a: tensor<1x8x8x4xf32>, %m: tensor<1x8x16xf32>) {
  // expected-error @+1 {{'acc' shape [1, 8, 8, 4] does not match the expected [1, 8, 16, 4]}}
  %r:3 = attn.online_attention ins(%q, %q, %q : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%a, %m, %m : tensor<1x8x8x4xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf32>) -> tensor<1x8x8x4xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf32>
  return
}

// -----

func.func @online_max_shape(%q: tensor<1x8x16x4xf32>, %a: tensor<1x8x16x4xf32>, %m: tensor<1x8x16xf32>, %bad: tensor<1x8x4xf32>) {
  // expected-error @+1 {{'max' shape [1, 8, 4] does not match the expected [1, 8, 16]}}
  %r:3 = attn.online_attention ins(%q, %q, %q : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%a, %bad, %m : tensor<1x8x16x4xf32>, tensor<1x8x4xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16x4xf32>, tensor<1x8x4xf32>, tensor<1x8x16xf32>
  return
}

// -----

func.func @online_sum_elt(%q: tensor<1x8x16x4xf32>, %a: tensor<1x8x16x4xf32>, %m: tensor<1x8x16xf32>, %bad: tensor<1x8x16xf16>) {
  // expected-error @+1 {{'sum' element type must be f32, got 'f16'}}
  %r:3 = attn.online_attention ins(%q, %q, %q : tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>, tensor<1x8x16x4xf32>)
      outs(%a, %m, %bad : tensor<1x8x16x4xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf16>) -> tensor<1x8x16x4xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf16>
  return
}

// -----

func.func @window_bounds(%q: tensor<1x1x4x4xf32>, %o: tensor<1x1x4x4xf32>) {
  // expected-error @+1 {{sliding_window bounds must be >= 0, got left = -1, right = 0}}
  %r = attn.attention {mask_kind = #attn.sliding_window<left = -1, right = 0>} ins(%q, %q, %q : tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>)
      outs(%o : tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
  return
}

// -----

func.func @capture_element(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %cs: tensor<8xcomplex<f32>>, %x: f32) {
  // expected-error @+1 {{capture #0 must be a ranked tensor of integer, index or float elements, got 'tensor<8xcomplex<f32>>'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      captures(%cs : tensor<8xcomplex<f32>>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %a: tensor<8xcomplex<f32>>):
      %t = arith.constant true
      attn.yield %t : i1
    }
  return
}

// -----

func.func @captures_unread(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %cs: tensor<8xcomplex<f32>>, %x: f32) {
  // expected-error @+1 {{has captures but no score_mod or mask_mod region to read them}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      captures(%c : tensor<8xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return
}

// -----

func.func @score_mod_args(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %cs: tensor<8xcomplex<f32>>, %x: f32) {
  // expected-error @+1 {{'score_mod' block arguments must be (f32, index, index, index, index, tensor<8xf32>): the leading scalars, then one per capture}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      captures(%c : tensor<8xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      attn.yield %s : f32
    }
  return
}

// -----

func.func @mask_mod_args(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %cs: tensor<8xcomplex<f32>>, %x: f32) {
  // expected-error @+1 {{'mask_mod' block arguments must be (index, index, index, index): the leading scalars, then one per capture}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    mask_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index):
      %t = arith.constant true
      attn.yield %t : i1
    }
  return
}

// -----

func.func @score_mod_yield_type(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %cs: tensor<8xcomplex<f32>>, %x: f32) {
  // expected-error @+1 {{'score_mod' must yield 'f32', got 'i1'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      %t = arith.constant true
      attn.yield %t : i1
    }
  return
}

// -----

func.func @mask_mod_yield_type(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %cs: tensor<8xcomplex<f32>>, %x: f32) {
  // expected-error @+1 {{'mask_mod' must yield 'i1', got 'f32'}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %z = arith.constant 0.0 : f32
      attn.yield %z : f32
    }
  return
}

// -----

func.func @score_mod_terminator(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %cs: tensor<8xcomplex<f32>>, %x: f32) {
  // expected-error @+1 {{'score_mod' must end in attn.yield}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      llvm.unreachable
    }
  return
}

// -----

func.func @score_mod_blocks(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %cs: tensor<8xcomplex<f32>>, %x: f32) {
  // expected-error @+1 {{'score_mod' must have one block}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      cf.br ^bb1
    ^bb1:
      attn.yield %s : f32
    }
  return
}

// -----

// The op is isolated from above: a region reads the op's values only
// through captures.
func.func @score_mod_outside_value(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %x: f32) {
  // expected-note @+1 {{required by region isolation constraints}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      // expected-error @+1 {{'arith.addf' op using value defined outside the region}}
      %y = arith.addf %s, %x : f32
      attn.yield %y : f32
    }
  return
}

// -----

func.func @score_mod_side_effect(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %c: tensor<8xf32>, %x: f32) {
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      // expected-error @+1 {{'memref.alloc' op is not allowed in 'score_mod' (arith, math and tensor.extract of a capture only)}}
      %m = memref.alloc() : memref<4xf32>
      attn.yield %s : f32
    }
  return
}

// -----

// A region reads tensors only through captures (a table built inside it is
// not one).
func.func @score_mod_extract_local(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>) {
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      %t = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
      // expected-error @+1 {{'tensor.extract' op in 'score_mod' may only read a capture (a block argument)}}
      %y = tensor.extract %t[%h] : tensor<2xf32>
      attn.yield %y : f32
    }
  return
}

// -----

// Four offsets carry the batch and head positions that only a region reads.
func.func @four_offsets_without_region(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %o: tensor<1x2x8x4xf32>, %i: index) {
  // expected-error @+1 {{expects 4 offsets (b_offset, h_offset, q_offset, kv_offset) only with a score_mod or mask_mod region, which reads them}}
  %r = attn.attention ins(%q, %k, %v : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
      offsets(%i, %i, %i, %i)
      outs(%o : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return
}

// -----

// Captures stay tensors: an op with regions is decomposed into linalg on
// tensors, never bufferized.
func.func @capture_memref(%q: memref<1x1x16x8xf32>, %k: memref<1x1x16x8xf32>, %v: memref<1x1x16x8xf32>,
                          %acc: memref<1x1x16x8xf32>, %m: memref<1x1x16xf32>, %l: memref<1x1x16xf32>, %c: memref<8xf32>) {
  // expected-error @+1 {{capture #0 must be a ranked tensor of integer, index or float elements, got 'memref<8xf32>'}}
  attn.online_attention ins(%q, %k, %v : memref<1x1x16x8xf32>, memref<1x1x16x8xf32>, memref<1x1x16x8xf32>)
      captures(%c : memref<8xf32>)
      outs(%acc, %m, %l : memref<1x1x16x8xf32>, memref<1x1x16xf32>, memref<1x1x16xf32>)
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %a: memref<8xf32>):
      %t = arith.constant true
      attn.yield %t : i1
    }
  return
}

// -----

// The same rules hold on the tile-level op.
func.func @online_mask_mod_yield(%q: tensor<1x1x16x8xf32>, %k: tensor<1x1x16x8xf32>, %v: tensor<1x1x16x8xf32>,
                                 %acc: tensor<1x1x16x8xf32>, %m: tensor<1x1x16xf32>, %l: tensor<1x1x16xf32>) {
  // expected-error @+1 {{'mask_mod' must yield 'i1', got 'index'}}
  %a, %mm, %ll = attn.online_attention ins(%q, %k, %v : tensor<1x1x16x8xf32>, tensor<1x1x16x8xf32>, tensor<1x1x16x8xf32>)
      outs(%acc, %m, %l : tensor<1x1x16x8xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x8xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      attn.yield %i : index
    }
  return
}

// -----

func.func @yield_outside() {
  %t = arith.constant true
  // expected-error @+1 {{'attn.yield' op expects parent op to be one of 'attn.attention, attn.online_attention'}}
  attn.yield %t : i1
}
