// score_mod / mask_mod run through every CPU lowering and checked against
// an independent f64 evaluation of the same definitions
// (check-mod-regions.py, plain Python) on B=2, Hq=4, Hkv=2 (GQA), Sq=7,
// Sk=9 (odd lengths), D=8: softcapping, ALiBi with per-head slopes as a
// capture, document masking with document ids as a capture, a mask_mod that
// hides every key of rows 0..2 (output 0, log-sum-exp -inf), ALiBi plus a
// batch-dependent bias under the built-in causal mask intersected with
// document masking, and ALiBi under bottom-right causal (q_idx stays the
// row of the whole op in tiles whose q_offset absorbed the shift).
// The unfused reference (convert-attn-to-linalg):
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=generic reference=1" | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils -shared-libs=%mlir_c_runner_utils > %t.ref
// RUN: %python %S/check-mod-regions.py %t.ref
// The flash path with linalg stages (codegen=linalg), tiles of 1 batch,
// 2 heads, 4 rows and 4 keys: padded query and key tiles, a GQA split:
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=x86-64-v3 codegen=linalg tile-sizes=1,2,4,4" | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils -shared-libs=%mlir_c_runner_utils > %t.linalg
// RUN: %python %S/check-mod-regions.py %t.linalg
// The vector code (the regions vectorized in the score stage), AVX2 and
// the host's highest level, with the compiler's tile sizes and with small
// padded ones:
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=x86-64-v3" | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils -shared-libs=%mlir_c_runner_utils > %t.v3
// RUN: %python %S/check-mod-regions.py %t.v3
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=x86-64-v3 tile-sizes=1,2,4,4" | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils -shared-libs=%mlir_c_runner_utils > %t.v3small
// RUN: %python %S/check-mod-regions.py %t.v3small
// RUN: attn-opt %s --attn-cpu-pipeline="cpu=host tile-sizes=2,4,16,16" | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils -shared-libs=%mlir_c_runner_utils > %t.host
// RUN: %python %S/check-mod-regions.py %t.host

!q = tensor<2x4x7x8xf32>
!kv = tensor<2x2x9x8xf32>
!lse = tensor<2x4x7xf32>

// x[b, h, s, d] = sin(0.37 * (((b * H + h) * S + s) * D + d) + phase)
func.func @input_q(%phase: f32) -> !q {
  %e = tensor.empty() : !q
  %r = linalg.generic {indexing_maps = [affine_map<(b, h, s, d) -> (b, h, s, d)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%e : !q) {
  ^bb0(%o: f32):
    %b = linalg.index 0 : index
    %h = linalg.index 1 : index
    %s = linalg.index 2 : index
    %d = linalg.index 3 : index
    %c4 = arith.constant 4 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %t0 = arith.muli %b, %c4 : index
    %t1 = arith.addi %t0, %h : index
    %t2 = arith.muli %t1, %c7 : index
    %t3 = arith.addi %t2, %s : index
    %t4 = arith.muli %t3, %c8 : index
    %lin = arith.addi %t4, %d : index
    %li = arith.index_cast %lin : index to i64
    %lf = arith.sitofp %li : i64 to f32
    %k = arith.constant 0.37 : f32
    %x = arith.mulf %lf, %k : f32
    %y = arith.addf %x, %phase : f32
    %z = math.sin %y : f32
    linalg.yield %z : f32
  } -> !q
  return %r : !q
}

func.func @input_kv(%phase: f32) -> !kv {
  %e = tensor.empty() : !kv
  %r = linalg.generic {indexing_maps = [affine_map<(b, h, s, d) -> (b, h, s, d)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%e : !kv) {
  ^bb0(%o: f32):
    %b = linalg.index 0 : index
    %h = linalg.index 1 : index
    %s = linalg.index 2 : index
    %d = linalg.index 3 : index
    %c2 = arith.constant 2 : index
    %c9 = arith.constant 9 : index
    %c8 = arith.constant 8 : index
    %t0 = arith.muli %b, %c2 : index
    %t1 = arith.addi %t0, %h : index
    %t2 = arith.muli %t1, %c9 : index
    %t3 = arith.addi %t2, %s : index
    %t4 = arith.muli %t3, %c8 : index
    %lin = arith.addi %t4, %d : index
    %li = arith.index_cast %lin : index to i64
    %lf = arith.sitofp %li : i64 to f32
    %k = arith.constant 0.37 : f32
    %x = arith.mulf %lf, %k : f32
    %y = arith.addf %x, %phase : f32
    %z = math.sin %y : f32
    linalg.yield %z : f32
  } -> !kv
  return %r : !kv
}

// s = 1.5 * tanh(s / 1.5)
func.func @softcap(%q: !q, %k: !kv, %v: !kv) -> (!q, !lse) {
  %o = tensor.empty() : !q
  %l = tensor.empty() : !lse
  %r:2 = attn.attention ins(%q, %k, %v : !q, !kv, !kv) outs(%o, %l : !q, !lse) -> !q, !lse
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      %cap = arith.constant 1.5 : f32
      %x = arith.divf %s, %cap : f32
      %t = math.tanh %x : f32
      %y = arith.mulf %t, %cap : f32
      attn.yield %y : f32
    }
  return %r#0, %r#1 : !q, !lse
}

// s + slopes[h] * (kv_idx - q_idx)
func.func @alibi(%q: !q, %k: !kv, %v: !kv, %slopes: tensor<4xf32>) -> (!q, !lse) {
  %o = tensor.empty() : !q
  %l = tensor.empty() : !lse
  %r:2 = attn.attention ins(%q, %k, %v : !q, !kv, !kv) captures(%slopes : tensor<4xf32>)
      outs(%o, %l : !q, !lse) -> !q, !lse
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %sl: tensor<4xf32>):
      %slope = tensor.extract %sl[%h] : tensor<4xf32>
      %rel = arith.subi %j, %i : index
      %r64 = arith.index_cast %rel : index to i64
      %rf = arith.sitofp %r64 : i64 to f32
      %bias = arith.mulf %slope, %rf : f32
      %y = arith.addf %s, %bias : f32
      attn.yield %y : f32
    }
  return %r#0, %r#1 : !q, !lse
}

// doc[q_idx] == doc[kv_idx]
func.func @document(%q: !q, %k: !kv, %v: !kv, %doc: tensor<9xi32>) -> (!q, !lse) {
  %o = tensor.empty() : !q
  %l = tensor.empty() : !lse
  %r:2 = attn.attention ins(%q, %k, %v : !q, !kv, !kv) captures(%doc : tensor<9xi32>)
      outs(%o, %l : !q, !lse) -> !q, !lse
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %d: tensor<9xi32>):
      %di = tensor.extract %d[%i] : tensor<9xi32>
      %dj = tensor.extract %d[%j] : tensor<9xi32>
      %same = arith.cmpi eq, %di, %dj : i32
      attn.yield %same : i1
    }
  return %r#0, %r#1 : !q, !lse
}

// kv_idx + 3 <= q_idx: rows 0..2 see no key.
func.func @empty_rows(%q: !q, %k: !kv, %v: !kv) -> (!q, !lse) {
  %o = tensor.empty() : !q
  %l = tensor.empty() : !lse
  %r:2 = attn.attention ins(%q, %k, %v : !q, !kv, !kv) outs(%o, %l : !q, !lse) -> !q, !lse
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c3 = arith.constant 3 : index
      %j3 = arith.addi %j, %c3 : index
      %keep = arith.cmpi sle, %j3, %i : index
      attn.yield %keep : i1
    }
  return %r#0, %r#1 : !q, !lse
}

// s + slopes[h] * (kv_idx - q_idx) + 0.25 * b, causal (built in) and the
// document mask.
func.func @combined(%q: !q, %k: !kv, %v: !kv, %slopes: tensor<4xf32>, %doc: tensor<9xi32>) -> (!q, !lse) {
  %o = tensor.empty() : !q
  %l = tensor.empty() : !lse
  %r:2 = attn.attention {mask_kind = #attn.causal} ins(%q, %k, %v : !q, !kv, !kv)
      captures(%slopes, %doc : tensor<4xf32>, tensor<9xi32>)
      outs(%o, %l : !q, !lse) -> !q, !lse
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %sl: tensor<4xf32>, %d: tensor<9xi32>):
      %slope = tensor.extract %sl[%h] : tensor<4xf32>
      %rel = arith.subi %j, %i : index
      %r64 = arith.index_cast %rel : index to i64
      %rf = arith.sitofp %r64 : i64 to f32
      %bias = arith.mulf %slope, %rf : f32
      %y = arith.addf %s, %bias : f32
      %b64 = arith.index_cast %b : index to i64
      %bf = arith.sitofp %b64 : i64 to f32
      %quarter = arith.constant 0.25 : f32
      %bb = arith.mulf %bf, %quarter : f32
      %z = arith.addf %y, %bb : f32
      attn.yield %z : f32
    } mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %sl: tensor<4xf32>, %d: tensor<9xi32>):
      %di = tensor.extract %d[%i] : tensor<9xi32>
      %dj = tensor.extract %d[%j] : tensor<9xi32>
      %same = arith.cmpi eq, %di, %dj : i32
      attn.yield %same : i1
    }
  return %r#0, %r#1 : !q, !lse
}

// s + slopes[h] * (kv_idx - q_idx), bottom-right causal (row i keeps
// keys j <= i + Sk - Sq).
func.func @alibi_bottom_right(%q: !q, %k: !kv, %v: !kv, %slopes: tensor<4xf32>) -> (!q, !lse) {
  %o = tensor.empty() : !q
  %l = tensor.empty() : !lse
  %r:2 = attn.attention {mask_kind = #attn.causal<bottom_right>} ins(%q, %k, %v : !q, !kv, !kv)
      captures(%slopes : tensor<4xf32>)
      outs(%o, %l : !q, !lse) -> !q, !lse
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %sl: tensor<4xf32>):
      %slope = tensor.extract %sl[%h] : tensor<4xf32>
      %rel = arith.subi %j, %i : index
      %r64 = arith.index_cast %rel : index to i64
      %rf = arith.sitofp %r64 : i64 to f32
      %bias = arith.mulf %slope, %rf : f32
      %y = arith.addf %s, %bias : f32
      attn.yield %y : f32
    }
  return %r#0, %r#1 : !q, !lse
}

func.func private @printMemrefF32(tensor<*xf32>)

func.func @print(%o: !q, %l: !lse) {
  %ou = tensor.cast %o : !q to tensor<*xf32>
  %lu = tensor.cast %l : !lse to tensor<*xf32>
  call @printMemrefF32(%ou) : (tensor<*xf32>) -> ()
  call @printMemrefF32(%lu) : (tensor<*xf32>) -> ()
  return
}

func.func @main() {
  %p0 = arith.constant 0.0 : f32
  %p1 = arith.constant 1.0 : f32
  %p2 = arith.constant 2.0 : f32
  %q = call @input_q(%p0) : (f32) -> !q
  %k = call @input_kv(%p1) : (f32) -> !kv
  %v = call @input_kv(%p2) : (f32) -> !kv
  %slopes = arith.constant dense<[0.5, 0.25, 0.125, 0.0625]> : tensor<4xf32>
  %doc = arith.constant dense<[0, 0, 0, 1, 1, 2, 2, 2, 2]> : tensor<9xi32>
  %a:2 = call @softcap(%q, %k, %v) : (!q, !kv, !kv) -> (!q, !lse)
  call @print(%a#0, %a#1) : (!q, !lse) -> ()
  %b:2 = call @alibi(%q, %k, %v, %slopes) : (!q, !kv, !kv, tensor<4xf32>) -> (!q, !lse)
  call @print(%b#0, %b#1) : (!q, !lse) -> ()
  %c:2 = call @document(%q, %k, %v, %doc) : (!q, !kv, !kv, tensor<9xi32>) -> (!q, !lse)
  call @print(%c#0, %c#1) : (!q, !lse) -> ()
  %d:2 = call @empty_rows(%q, %k, %v) : (!q, !kv, !kv) -> (!q, !lse)
  call @print(%d#0, %d#1) : (!q, !lse) -> ()
  %e:2 = call @combined(%q, %k, %v, %slopes, %doc) : (!q, !kv, !kv, tensor<4xf32>, tensor<9xi32>) -> (!q, !lse)
  call @print(%e#0, %e#1) : (!q, !lse) -> ()
  %f:2 = call @alibi_bottom_right(%q, %k, %v, %slopes) : (!q, !kv, !kv, tensor<4xf32>) -> (!q, !lse)
  call @print(%f#0, %f#1) : (!q, !lse) -> ()
  return
}
