// RUN: attn-opt %s --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s

// online_attention bufferizes in place into its outs and becomes its memref
// form, without results.
// CHECK-LABEL: func.func @step
// CHECK-SAME:    %[[Q:[a-zA-Z0-9]+]]: memref<1x2x16x8xf32
// CHECK-SAME:    %[[ACC:[a-zA-Z0-9]+]]: memref<1x2x16x8xf32
// CHECK-SAME:    %[[M:[a-zA-Z0-9]+]]: memref<1x2x16xf32
// CHECK-SAME:    %[[L:[a-zA-Z0-9]+]]: memref<1x2x16xf32
// CHECK:         attn.online_attention {mask_kind = #attn.causal} ins(%[[Q]], %[[Q]], %[[Q]] : memref<{{.+}}>, memref<{{.+}}>, memref<{{.+}}>) offsets(%{{.+}}, %{{.+}}) outs(%[[ACC]], %[[M]], %[[L]] : memref<{{.+}}>, memref<{{.+}}>, memref<{{.+}}>)
// CHECK-NOT:     memref.copy
// CHECK:         return %[[ACC]], %[[M]], %[[L]]
func.func @step(%q: tensor<1x2x16x8xf32>, %acc: tensor<1x2x16x8xf32>, %m: tensor<1x2x16xf32>,
                %l: tensor<1x2x16xf32>, %i: index, %j: index)
    -> (tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>) {
  %a, %b, %c = attn.online_attention {mask_kind = #attn.causal}
      ins(%q, %q, %q : tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>)
      offsets(%i, %j)
      outs(%acc, %m, %l : tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>)
      -> tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>
  return %a, %b, %c : tensor<1x2x16x8xf32>, tensor<1x2x16xf32>, tensor<1x2x16xf32>
}
