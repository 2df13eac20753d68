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

// -----

// score_mod and mask_mod are inlined into the one score stage: the score
// after scale (score_mod: ALiBi with the slopes capture read at the query
// head k * G + g), then the keep predicate (mask_mod: document ids read at
// the query row and the key), then the selection of -inf for hidden keys.
// CHECK-LABEL: func.func @mod_regions
// CHECK-SAME:    %[[SL:[a-z0-9]+]]: tensor<4xf32>, %[[DOC:[a-z0-9]+]]: tensor<16xi32>
// CHECK:         %[[S:.+]] = linalg.generic {{.+}} outs(%{{.+}} : tensor<1x2x2x8x16xf32>)
// CHECK:         linalg.generic {{.+}} outs(%[[S]] : tensor<1x2x2x8x16xf32>)
// CHECK:           %[[K:.+]] = linalg.index 1 : index
// CHECK:           %[[KG:.+]] = arith.muli %[[K]], %c2
// CHECK:           %[[G:.+]] = linalg.index 2 : index
// CHECK:           %[[H:.+]] = arith.addi %[[KG]], %[[G]]
// CHECK:           %[[M:.+]] = linalg.index 3 : index
// CHECK:           %[[N:.+]] = linalg.index 4 : index
// CHECK:           %[[SC:.+]] = arith.mulf %{{.+}}, %cst
// CHECK:           %[[SLOPE:.+]] = tensor.extract %[[SL]][%[[H]]]
// CHECK:           %[[REL:.+]] = arith.subi %[[N]], %[[M]]
// CHECK:           %[[MOD:.+]] = arith.addf %[[SC]], %{{.+}}
// CHECK:           tensor.extract %[[DOC]][%[[M]]]
// CHECK:           tensor.extract %[[DOC]][%[[N]]]
// CHECK:           %[[KEEP:.+]] = arith.cmpi eq
// CHECK:           %[[R:.+]] = arith.select %[[KEEP]], %[[MOD]], %{{.+}}
// CHECK:           linalg.yield %[[R]]
// CHECK-NOT:     attn.
func.func @mod_regions(%q: tensor<1x4x8x16xf32>, %k: tensor<1x2x16x16xf32>, %v: tensor<1x2x16x16xf32>,
                       %slopes: tensor<4xf32>, %doc: tensor<16xi32>) -> tensor<1x4x8x16xf32> {
  %o = tensor.empty() : tensor<1x4x8x16xf32>
  %r = attn.attention ins(%q, %k, %v : tensor<1x4x8x16xf32>, tensor<1x2x16x16xf32>, tensor<1x2x16x16xf32>)
      captures(%slopes, %doc : tensor<4xf32>, tensor<16xi32>)
      outs(%o : tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
    score_mod {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %sl: tensor<4xf32>, %d: tensor<16xi32>):
      %slope = tensor.extract %sl[%h] : tensor<4xf32>
      %rel = arith.subi %j, %i : index
      %r64 = arith.index_cast %rel : index to i64
      %rf = arith.sitofp %r64 : i64 to f32
      %bias = arith.mulf %slope, %rf : f32
      %y = arith.addf %s, %bias : f32
      attn.yield %y : f32
    } mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %sl: tensor<4xf32>, %d: tensor<16xi32>):
      %di = tensor.extract %d[%i] : tensor<16xi32>
      %dj = tensor.extract %d[%j] : tensor<16xi32>
      %same = arith.cmpi eq, %di, %dj : i32
      attn.yield %same : i1
    }
  return %r : tensor<1x4x8x16xf32>
}
