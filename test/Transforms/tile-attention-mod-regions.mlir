// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,2,32,32" --canonicalize --cse | FileCheck %s

// Tiles of an op with score_mod / mask_mod carry four offsets (absolute
// batch, query head, query row, key) and a copy of the regions. Tiling makes
// a bottom-right tile top-left by adding the diagonal shift (Sk - Sq = 32)
// to q_offset; the copied region subtracts it again first, so its q_idx is
// still the row of the whole op.
// CHECK-LABEL: func.func @alibi_br
// CHECK:         scf.forall (%[[B:.+]], %[[H:.+]], %[[M:.+]]) in
// CHECK:           scf.for %[[K:.+]] = %c0 to
// CHECK:             attn.online_attention {mask_kind = #attn.causal, {{.+}}} ins({{.+}}) captures(%{{.+}} : tensor<4xf32>) offsets(%{{.+}}, %{{.+}}, %{{.+}}, %[[K]])
// CHECK:             score_mod {
// CHECK-NEXT:        ^bb0(%{{.+}}: f32, %{{.+}}: index, %[[HA:.+]]: index, %[[QA:.+]]: index, %[[KA:.+]]: index, %[[SL:.+]]: tensor<4xf32>):
// CHECK-NEXT:          %[[SHIFT:.+]] = arith.constant 32 : index
// CHECK-NEXT:          %[[ROW:.+]] = arith.subi %[[QA]], %[[SHIFT]] : index
// CHECK-NEXT:          tensor.extract %[[SL]][%[[HA]]]
// CHECK-NEXT:          arith.subi %[[KA]], %[[ROW]] : index
func.func @alibi_br(%q: tensor<1x4x64x16xf32>, %k: tensor<1x2x96x16xf32>, %v: tensor<1x2x96x16xf32>,
                    %slopes: tensor<4xf32>) -> tensor<1x4x64x16xf32> {
  %o = tensor.empty() : tensor<1x4x64x16xf32>
  %r = attn.attention {mask_kind = #attn.causal<bottom_right>} ins(%q, %k, %v : tensor<1x4x64x16xf32>, tensor<1x2x96x16xf32>, tensor<1x2x96x16xf32>)
      captures(%slopes : tensor<4xf32>)
      outs(%o : tensor<1x4x64x16xf32>) -> tensor<1x4x64x16xf32>
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
  return %r : tensor<1x4x64x16xf32>
}

// -----

// With dynamic lengths the shift is known only at run time: it becomes one
// more capture (tensor<1xindex>) of each tile.
// CHECK-LABEL: func.func @mask_mod_dynamic
// CHECK:         %[[SH:.+]] = tensor.from_elements %{{.+}} : tensor<1xindex>
// CHECK:         attn.online_attention {{.+}} captures(%[[SH]] : tensor<1xindex>) offsets(
// CHECK:         mask_mod {
// CHECK-NEXT:    ^bb0(%{{.+}}: index, %{{.+}}: index, %[[QA:.+]]: index, %[[KA:.+]]: index, %[[C:.+]]: tensor<1xindex>):
// CHECK:           %[[S:.+]] = tensor.extract %[[C]][%{{.+}}] : tensor<1xindex>
// CHECK-NEXT:      arith.subi %[[QA]], %[[S]] : index
func.func @mask_mod_dynamic(%q: tensor<1x2x?x16xf32>, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>,
                            %o: tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32> {
  %r = attn.attention {mask_kind = #attn.causal<bottom_right>} ins(%q, %k, %v : tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>)
      outs(%o : tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c3 = arith.constant 3 : index
      %i3 = arith.addi %i, %c3 : index
      %keep = arith.cmpi sle, %j, %i3 : index
      attn.yield %keep : i1
    }
  return %r : tensor<1x2x?x16xf32>
}
