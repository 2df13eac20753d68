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
  // expected-error @+1 {{expects 0 or 2 offsets (q_offset, kv_offset), got 1}}
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
