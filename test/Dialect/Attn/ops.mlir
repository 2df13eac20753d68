// RUN: attn-opt %s -split-input-file | FileCheck %s
// Round trip: print, parse again, print the same.
// RUN: attn-opt %s -split-input-file | attn-opt -split-input-file | FileCheck %s
// The ops are isolated from above: canonicalization and CSE keep a region's
// constants inside it.
// RUN: attn-opt %s -split-input-file --canonicalize --cse | FileCheck %s --check-prefix=CANON

// CHECK-LABEL: func.func @mha
// CHECK: attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8x128x64xf32>, tensor<2x8x128x64xf32>, tensor<2x8x128x64xf32>) outs(%{{.*}} : tensor<2x8x128x64xf32>) -> tensor<2x8x128x64xf32>
func.func @mha(%q: tensor<2x8x128x64xf32>, %k: tensor<2x8x128x64xf32>,
               %v: tensor<2x8x128x64xf32>) -> tensor<2x8x128x64xf32> {
  %init = tensor.empty() : tensor<2x8x128x64xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<2x8x128x64xf32>, tensor<2x8x128x64xf32>, tensor<2x8x128x64xf32>)
         outs(%init : tensor<2x8x128x64xf32>) -> tensor<2x8x128x64xf32>
  return %o : tensor<2x8x128x64xf32>
}

// -----

// GQA, bottom-right causal, log-sum-exp, MLA-style Dv != D.
// CHECK-LABEL: func.func @gqa_causal_lse
// CHECK: attn.attention {mask_kind = #attn.causal<bottom_right>, scale = 1.250000e-01 : f32}
// CHECK-SAME: outs(%{{.*}}, %{{.*}} : tensor<1x8x16x32xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16x32xf32>, tensor<1x8x16xf32>
func.func @gqa_causal_lse(%q: tensor<1x8x16x64xf32>, %k: tensor<1x2x256x64xf32>,
                          %v: tensor<1x2x256x32xf32>) -> (tensor<1x8x16x32xf32>, tensor<1x8x16xf32>) {
  %o0 = tensor.empty() : tensor<1x8x16x32xf32>
  %l0 = tensor.empty() : tensor<1x8x16xf32>
  %o, %l = attn.attention {mask_kind = #attn.causal<bottom_right>, scale = 0.125 : f32}
         ins(%q, %k, %v : tensor<1x8x16x64xf32>, tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>)
         outs(%o0, %l0 : tensor<1x8x16x32xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16x32xf32>, tensor<1x8x16xf32>
  return %o, %l : tensor<1x8x16x32xf32>, tensor<1x8x16xf32>
}

// -----

// Top-left causal prints without its default alignment; sliding window with
// both alignments.
// CHECK-LABEL: func.func @mask_kinds
// CHECK: mask_kind = #attn.causal}
// CHECK: mask_kind = #attn.sliding_window<left = 4, right = 0>}
// CHECK: mask_kind = #attn.sliding_window<left = 2, right = 3, align = bottom_right>}
func.func @mask_kinds(%q: tensor<1x1x8x16xf32>, %k: tensor<1x1x8x16xf32>,
                      %v: tensor<1x1x8x16xf32>, %init: tensor<1x1x8x16xf32>)
    -> (tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>) {
  %a = attn.attention {mask_kind = #attn.causal<top_left>}
         ins(%q, %k, %v : tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>)
         outs(%init : tensor<1x1x8x16xf32>) -> tensor<1x1x8x16xf32>
  %b = attn.attention {mask_kind = #attn.sliding_window<left = 4, right = 0>}
         ins(%q, %k, %v : tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>)
         outs(%init : tensor<1x1x8x16xf32>) -> tensor<1x1x8x16xf32>
  %c = attn.attention {mask_kind = #attn.sliding_window<left = 2, right = 3, align = bottom_right>}
         ins(%q, %k, %v : tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>)
         outs(%init : tensor<1x1x8x16xf32>) -> tensor<1x1x8x16xf32>
  return %a, %b, %c : tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>
}

// -----

// Boolean mask broadcast over heads and query rows, additive bias, kv_lens,
// f16 operands with an f16 output, dynamic sizes.
// CHECK-LABEL: func.func @operands
// CHECK: attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x4x?x32xf16>, tensor<?x4x?x32xf16>, tensor<?x4x?x32xf16>)
// CHECK-SAME: mask(%{{.*}} : tensor<?x1x1x?xi1>) bias(%{{.*}} : tensor<1x4x?x?xf32>) kv_lens(%{{.*}} : tensor<?xi32>)
// CHECK-SAME: outs(%{{.*}} : tensor<?x4x?x32xf16>)
func.func @operands(%q: tensor<?x4x?x32xf16>, %k: tensor<?x4x?x32xf16>, %v: tensor<?x4x?x32xf16>,
                    %m: tensor<?x1x1x?xi1>, %b: tensor<1x4x?x?xf32>, %lens: tensor<?xi32>,
                    %init: tensor<?x4x?x32xf16>) -> tensor<?x4x?x32xf16> {
  %o = attn.attention ins(%q, %k, %v : tensor<?x4x?x32xf16>, tensor<?x4x?x32xf16>, tensor<?x4x?x32xf16>)
         mask(%m : tensor<?x1x1x?xi1>) bias(%b : tensor<1x4x?x?xf32>) kv_lens(%lens : tensor<?xi32>)
         outs(%init : tensor<?x4x?x32xf16>) -> tensor<?x4x?x32xf16>
  return %o : tensor<?x4x?x32xf16>
}

// -----

// The tile-level op with positions.
// CHECK-LABEL: func.func @online
// CHECK: attn.online_attention {mask_kind = #attn.causal, scale = 2.500000e-01 : f32}
// CHECK-SAME: offsets(%{{.*}}, %{{.*}}) kv_bound(%{{.*}})
// CHECK-SAME: -> tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>
func.func @online(%q: tensor<1x2x16x16xf32>, %k: tensor<1x1x32x16xf32>, %v: tensor<1x1x32x8xf32>,
                  %acc: tensor<1x2x16x8xf32>, %m: tensor<1x2x16xf32>, %l: tensor<1x2x16xf32>,
                  %q0: index, %k0: index, %n: index)
    -> (tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>) {
  %a, %b, %c = attn.online_attention {mask_kind = #attn.causal, scale = 0.25 : f32}
      ins(%q, %k, %v : tensor<1x2x16x16xf32>, tensor<1x1x32x16xf32>, tensor<1x1x32x8xf32>)
      offsets(%q0, %k0) kv_bound(%n)
      outs(%acc, %m, %l : tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>)
      -> tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>
  return %a, %b, %c : tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>
}

// -----

// score_mod (ALiBi with per-head slopes as a capture) and mask_mod (document
// masking with document ids as a capture).
// CHECK-LABEL: func.func @score_and_mask_mod
// CHECK: attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<1x4x64x16xf32>, tensor<1x4x64x16xf32>, tensor<1x4x64x16xf32>) captures(%[[SL:.*]], %[[DOC:.*]] : tensor<4xf32>, tensor<64xi32>)
// CHECK-SAME: outs(%{{.*}} : tensor<1x4x64x16xf32>) -> tensor<1x4x64x16xf32> score_mod {
// CHECK-NEXT: ^bb0(%[[S:.*]]: f32, %{{.*}}: index, %[[H:.*]]: index, %[[Q:.*]]: index, %[[K:.*]]: index, %[[SLA:.*]]: tensor<4xf32>, %{{.*}}: tensor<64xi32>):
// CHECK: tensor.extract %[[SLA]][%[[H]]] : tensor<4xf32>
// CHECK: attn.yield %{{.*}} : f32
// CHECK: } mask_mod {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %[[Q2:.*]]: index, %[[K2:.*]]: index, %{{.*}}: tensor<4xf32>, %[[DOCA:.*]]: tensor<64xi32>):
// CHECK: tensor.extract %[[DOCA]][%[[Q2]]] : tensor<64xi32>
// CHECK: tensor.extract %[[DOCA]][%[[K2]]] : tensor<64xi32>
// CHECK: attn.yield %{{.*}} : i1
func.func @score_and_mask_mod(%q: tensor<1x4x64x16xf32>, %k: tensor<1x4x64x16xf32>,
                              %v: tensor<1x4x64x16xf32>, %slopes: tensor<4xf32>,
                              %doc: tensor<64xi32>) -> tensor<1x4x64x16xf32> {
  %init = tensor.empty() : tensor<1x4x64x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x4x64x16xf32>, tensor<1x4x64x16xf32>, tensor<1x4x64x16xf32>)
         captures(%slopes, %doc : tensor<4xf32>, tensor<64xi32>)
         outs(%init : tensor<1x4x64x16xf32>) -> tensor<1x4x64x16xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %qi: index, %kj: index, %sl: tensor<4xf32>, %d: tensor<64xi32>):
      %slope = tensor.extract %sl[%h] : tensor<4xf32>
      %rel = arith.subi %kj, %qi : index
      %r = arith.index_cast %rel : index to i64
      %rf = arith.sitofp %r : i64 to f32
      %bias = arith.mulf %slope, %rf : f32
      %out = arith.addf %s, %bias : f32
      attn.yield %out : f32
    } mask_mod {
    ^bb0(%b: index, %h: index, %qi: index, %kj: index, %sl: tensor<4xf32>, %d: tensor<64xi32>):
      %dq = tensor.extract %d[%qi] : tensor<64xi32>
      %dk = tensor.extract %d[%kj] : tensor<64xi32>
      %same = arith.cmpi eq, %dq, %dk : i32
      attn.yield %same : i1
    }
  return %o : tensor<1x4x64x16xf32>
}

// -----

// Softcapping (Gemma 2) on the tile-level op, with the four-offset form.
// CANON-LABEL: func.func @online_softcap
// CANON:         %[[C:.+]] = arith.constant 3.000000e+01 : f32
// CANON:         attn.online_attention
// CANON:         score_mod {
// CANON-NEXT:    ^bb0(
// CANON-NEXT:      %[[CAP:.+]] = arith.constant 3.000000e+01 : f32
// CANON:           arith.divf %{{.+}}, %[[CAP]]
// CHECK-LABEL: func.func @online_softcap
// CHECK: attn.online_attention
// CHECK-SAME: offsets(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
// CHECK: score_mod {
// CHECK: math.tanh
func.func @online_softcap(%q: tensor<1x1x16x8xf32>, %k: tensor<1x1x16x8xf32>, %v: tensor<1x1x16x8xf32>,
                          %acc: tensor<1x1x16x8xf32>, %m: tensor<1x1x16xf32>, %l: tensor<1x1x16xf32>,
                          %b0: index, %h0: index, %q0: index, %k0: index)
    -> (tensor<1x1x16x8xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>, f32) {
  %outer = arith.constant 30.0 : f32
  %a, %mm, %ll = attn.online_attention ins(%q, %k, %v : tensor<1x1x16x8xf32>, tensor<1x1x16x8xf32>, tensor<1x1x16x8xf32>)
      offsets(%b0, %h0, %q0, %k0)
      outs(%acc, %m, %l : tensor<1x1x16x8xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x8xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %qi: index, %kj: index):
      %cap = arith.constant 30.0 : f32
      %x = arith.divf %s, %cap : f32
      %t = math.tanh %x : f32
      %y = arith.mulf %t, %cap : f32
      attn.yield %y : f32
    }
  return %a, %mm, %ll, %outer : tensor<1x1x16x8xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>, f32
}
