// RUN: attn-opt %s -split-input-file --attn-convert-to-online-attention --cse | FileCheck %s

// CHECK-LABEL: func.func @lse
// CHECK-SAME:    %[[Q:[a-zA-Z0-9]+]]: tensor<1x4x16x8xf16>, %[[K:[a-zA-Z0-9]+]]: tensor<1x2x32x8xf16>, %[[V:[a-zA-Z0-9]+]]: tensor<1x2x32x8xf16>
// CHECK-SAME:    %[[OUT:[a-zA-Z0-9]+]]: tensor<1x4x16x8xf16>, %[[LSE:[a-zA-Z0-9]+]]: tensor<1x4x16xf32>
// CHECK-DAG:     %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG:     %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK-DAG:     %[[ACC:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.+}} : tensor<1x4x16x8xf32>)
// CHECK-DAG:     %[[MAX:.+]] = linalg.fill ins(%[[NEGINF]] : f32) outs(%{{.+}} : tensor<1x4x16xf32>)
// CHECK-DAG:     %[[SUM:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.+}} : tensor<1x4x16xf32>)
// CHECK:         %[[ON:.+]]:3 = attn.online_attention {mask_kind = #attn.causal<bottom_right>, scale = 5.000000e-01 : f32}
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]] :
// CHECK-SAME:      outs(%[[ACC]], %[[MAX]], %[[SUM]] :
// The output: acc / sum, 0 where sum is 0, rounded to f16.
// CHECK:         %[[O:.+]] = linalg.generic {{.+}} ins(%[[ON]]#0, %[[ON]]#2 : tensor<1x4x16x8xf32>, tensor<1x4x16xf32>) outs(%[[OUT]] : tensor<1x4x16x8xf16>)
// CHECK:           arith.divf
// CHECK:           arith.cmpf oeq
// CHECK:           arith.select
// CHECK:           arith.truncf %{{.+}} : f32 to f16
// The log-sum-exp: max + log(sum), -inf where sum is 0.
// CHECK:         %[[L:.+]] = linalg.generic {{.+}} ins(%[[ON]]#1, %[[ON]]#2 : tensor<1x4x16xf32>, tensor<1x4x16xf32>) outs(%[[LSE]] : tensor<1x4x16xf32>)
// CHECK:           math.log
// CHECK:           arith.addf
// CHECK:           arith.select
// CHECK:         return %[[O]], %[[L]]
func.func @lse(%q: tensor<1x4x16x8xf16>, %k: tensor<1x2x32x8xf16>, %v: tensor<1x2x32x8xf16>,
               %out: tensor<1x4x16x8xf16>, %lse: tensor<1x4x16xf32>) -> (tensor<1x4x16x8xf16>, tensor<1x4x16xf32>) {
  %o, %l = attn.attention {mask_kind = #attn.causal<bottom_right>, scale = 0.5 : f32}
      ins(%q, %k, %v : tensor<1x4x16x8xf16>, tensor<1x2x32x8xf16>, tensor<1x2x32x8xf16>)
      outs(%out, %lse : tensor<1x4x16x8xf16>, tensor<1x4x16xf32>) -> tensor<1x4x16x8xf16>, tensor<1x4x16xf32>
  return %o, %l : tensor<1x4x16x8xf16>, tensor<1x4x16xf32>
}

// -----

// Masks and key padding carry over to the online op; dynamic sizes give
// dynamically shaped running state.
// CHECK-LABEL: func.func @dynamic_masks
// CHECK:         %[[B:.+]] = tensor.dim %{{.+}}, %c0 : tensor<?x2x?x16xf32>
// CHECK:         %[[S:.+]] = tensor.dim %{{.+}}, %c2 : tensor<?x2x?x16xf32>
// CHECK:         tensor.empty(%[[B]], %[[S]]) : tensor<?x2x?x16xf32>
// CHECK:         attn.online_attention ins({{.+}}) mask(%{{.+}} : tensor<?x1x1x?xi1>) kv_lens(%{{.+}} : tensor<?xi64>) outs({{.+}} : tensor<?x2x?x16xf32>, tensor<?x2x?xf32>, tensor<?x2x?xf32>)
// CHECK-NOT:     attn.attention
func.func @dynamic_masks(%q: tensor<?x2x?x16xf32>, %k: tensor<?x2x?x16xf32>, %v: tensor<?x2x?x16xf32>,
                         %m: tensor<?x1x1x?xi1>, %lens: tensor<?xi64>, %out: tensor<?x2x?x16xf32>) -> tensor<?x2x?x16xf32> {
  %o = attn.attention ins(%q, %k, %v : tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>)
      mask(%m : tensor<?x1x1x?xi1>) kv_lens(%lens : tensor<?xi64>)
      outs(%out : tensor<?x2x?x16xf32>) -> tensor<?x2x?x16xf32>
  return %o : tensor<?x2x?x16xf32>
}
