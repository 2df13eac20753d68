// RUN: attn-opt %s -split-input-file --convert-attn-to-linalg --cse | FileCheck %s

// The unfused reference materialises the whole score matrix
// [B, Hkv, G, Sq, Sk] = [1, 2, 2, 100, 300], normalises it, then multiplies
// by V.
// CHECK-LABEL: func.func @reference
// CHECK:         %[[S:.+]] = linalg.generic {{.+}} outs(%{{.+}} : tensor<1x2x2x100x300xf32>)
// CHECK:         %[[MS:.+]] = linalg.generic {{.+}} outs(%[[S]] : tensor<1x2x2x100x300xf32>)
// CHECK:           linalg.index
// CHECK:           arith.select
// CHECK:         %[[MAX:.+]] = linalg.generic {{.+}} ins(%[[MS]] : tensor<1x2x2x100x300xf32>) outs(%{{.+}} : tensor<1x2x2x100xf32>)
// CHECK:           arith.maximumf
// CHECK:         %[[E:.+]] = linalg.generic {{.+}} ins(%[[MS]], %[[MAX]] :
// CHECK:           math.exp
// CHECK:         %[[SUM:.+]] = linalg.generic {{.+}} ins(%[[E]] :
// CHECK:           arith.addf
// Probabilities, 0 on rows without kept keys.
// CHECK:         %[[P:.+]] = linalg.generic {{.+}} ins(%[[SUM]] : tensor<1x2x2x100xf32>) outs(%[[E]] : tensor<1x2x2x100x300xf32>)
// CHECK:           arith.divf
// CHECK:           arith.select
// CHECK:         %[[PV:.+]] = linalg.generic {{.+}} ins(%[[P]], %{{.+}} : tensor<1x2x2x100x300xf32>, tensor<1x2x300x32xf32>)
// CHECK:         %[[O:.+]] = tensor.collapse_shape %[[PV]]
// CHECK:         %[[OUT:.+]] = linalg.generic {{.+}} ins(%[[O]] : tensor<1x4x100x32xf32>)
// CHECK:         %[[LSE:.+]] = linalg.generic {{.+}} ins(%{{.+}}, %{{.+}} : tensor<1x4x100xf32>, tensor<1x4x100xf32>)
// CHECK:           math.log
// CHECK:         return %[[OUT]], %[[LSE]]
// CHECK-NOT:     attn.
func.func @reference(%q: tensor<1x4x100x64xf32>, %k: tensor<1x2x300x64xf32>, %v: tensor<1x2x300x32xf32>)
    -> (tensor<1x4x100x32xf32>, tensor<1x4x100xf32>) {
  %o0 = tensor.empty() : tensor<1x4x100x32xf32>
  %l0 = tensor.empty() : tensor<1x4x100xf32>
  %o, %l = attn.attention {mask_kind = #attn.sliding_window<left = 8, right = 8, align = bottom_right>}
      ins(%q, %k, %v : tensor<1x4x100x64xf32>, tensor<1x2x300x64xf32>, tensor<1x2x300x32xf32>)
      outs(%o0, %l0 : tensor<1x4x100x32xf32>, tensor<1x4x100xf32>) -> tensor<1x4x100x32xf32>, tensor<1x4x100xf32>
  return %o, %l : tensor<1x4x100x32xf32>, tensor<1x4x100xf32>
}
