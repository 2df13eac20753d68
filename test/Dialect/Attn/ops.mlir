// RUN: attn-opt %s -split-input-file | FileCheck %s
// Round trip: print, parse again, print the same.
// RUN: attn-opt %s -split-input-file | attn-opt -split-input-file | FileCheck %s

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
