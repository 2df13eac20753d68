// RUN: attn-opt %s -split-input-file --attn-decompose-online-attention --cse | FileCheck %s

// GQA tile (4 query heads over 2 key/value heads), causal with positions,
// kv_lens and kv_bound.
// CHECK-DAG: #[[QMAP:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d5)>
// CHECK-DAG: #[[KMAP:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d4, d5)>
// CHECK-DAG: #[[SMAP:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d4)>
// CHECK-DAG: #[[VMAP:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d4)>
// CHECK-LABEL: func.func @tile
// CHECK-SAME:    %[[Q:[a-zA-Z0-9]+]]: tensor<1x4x16x8xf32>, %[[K:[a-zA-Z0-9]+]]: tensor<1x2x32x8xf32>, %[[V:[a-zA-Z0-9]+]]: tensor<1x2x32x4xf32>
// CHECK-SAME:    %[[ACC:[a-zA-Z0-9]+]]: tensor<1x4x16x4xf32>, %[[MAX:[a-zA-Z0-9]+]]: tensor<1x4x16xf32>, %[[SUM:[a-zA-Z0-9]+]]: tensor<1x4x16xf32>
// CHECK-SAME:    %[[Q0:[a-zA-Z0-9]+]]: index, %[[K0:[a-zA-Z0-9]+]]: index, %[[BOUND:[a-zA-Z0-9]+]]: index, %[[LENS:[a-zA-Z0-9]+]]: tensor<1xi32>
// Query heads split into (kv_heads, group).
// CHECK:         %[[QG:.+]] = tensor.expand_shape %[[Q]] {{\[}}[0], [1, 2], [3], [4]] output_shape [1, 2, 2, 16, 8]
// CHECK:         %[[MAXG:.+]] = tensor.expand_shape %[[MAX]]
// CHECK:         %[[SUMG:.+]] = tensor.expand_shape %[[SUM]]
// S = Q K^T, f32 accumulation with contractable multiply-adds.
// CHECK:         %[[S:.+]] = linalg.generic {indexing_maps = [#[[QMAP]], #[[KMAP]], #[[SMAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[QG]], %[[K]] :
// CHECK:           arith.mulf {{.+}} fastmath<contract>
// CHECK:           arith.addf {{.+}} fastmath<contract>
// Scale, then hide keys by selection: kv_bound, kv_lens and the causal band
// at absolute positions.
// CHECK:         %[[MS:.+]] = linalg.generic {{.+}} ins(%[[LENS]] : tensor<1xi32>) outs(%[[S]] :
// CHECK:           arith.mulf %{{.+}}, %cst
// CHECK:           %[[N:.+]] = linalg.index 4
// CHECK:           %[[KPOS:.+]] = arith.addi %[[K0]], %[[N]]
// CHECK:           arith.cmpi slt, %[[KPOS]], %[[BOUND]]
// CHECK:           arith.cmpi slt, %[[KPOS]], %{{.+}}
// CHECK:           arith.cmpi sle
// CHECK:           arith.select %{{.+}}, %{{.+}}, %[[NEGINF:.+]] : f32
// Row max, then the running-max update and its correction factor in one
// elementwise generic over the old max.
// CHECK:         %[[RMAX:.+]] = linalg.generic {{.+}} ins(%[[MS]] : {{.+}}) outs(%{{.+}} : tensor<1x2x2x16xf32>)
// CHECK:           arith.maximumf
// CHECK:         %[[UPD:.+]]:2 = linalg.generic {{.+}} ins(%[[RMAX]] : {{.+}}) outs(%[[MAXG]], %{{.+}} :
// CHECK:           arith.maximumf
// CHECK:           math.exp
// P = exp(S - max).
// CHECK:         %[[P:.+]] = linalg.generic {{.+}} ins(%[[MS]], %[[UPD]]#0 :
// CHECK:           math.exp
// sum' = alpha * sum + rowsum(P).
// CHECK:         %[[SS:.+]] = linalg.generic {{.+}} ins(%[[UPD]]#1 : {{.+}}) outs(%[[SUMG]] :
// CHECK:         %[[NSUM:.+]] = linalg.generic {{.+}} ins(%[[P]] : {{.+}}) outs(%[[SS]] :
// Values of keys no row keeps are zeroed before P V.
// CHECK:         %[[VG:.+]] = linalg.generic {{.+}} ins(%[[V]], %[[LENS]] :
// CHECK:           arith.select %{{.+}}, %{{.+}}, %cst : f32
// acc' = alpha * acc + P V.
// CHECK:         %[[SACC:.+]] = linalg.generic {{.+}} ins(%[[UPD]]#1 :
// CHECK:         %[[NACC:.+]] = linalg.generic {indexing_maps = [#[[QMAP]], #[[VMAP]], #[[SMAP]]], {{.+}} ins(%[[P]], %[[VG]] : {{.+}}) outs(%[[SACC]] :
// CHECK:         %[[A:.+]] = tensor.collapse_shape %[[NACC]]
// CHECK:         %[[M:.+]] = tensor.collapse_shape %[[UPD]]#0
// CHECK:         %[[L:.+]] = tensor.collapse_shape %[[NSUM]]
// CHECK:         return %[[A]], %[[M]], %[[L]]
func.func @tile(%q: tensor<1x4x16x8xf32>, %k: tensor<1x2x32x8xf32>, %v: tensor<1x2x32x4xf32>,
                %acc: tensor<1x4x16x4xf32>, %m: tensor<1x4x16xf32>, %l: tensor<1x4x16xf32>,
                %q0: index, %k0: index, %n: index, %lens: tensor<1xi32>)
    -> (tensor<1x4x16x4xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>) {
  %a, %b, %c = attn.online_attention {mask_kind = #attn.causal, scale = 0.25 : f32}
      ins(%q, %k, %v : tensor<1x4x16x8xf32>, tensor<1x2x32x8xf32>, tensor<1x2x32x4xf32>)
      kv_lens(%lens : tensor<1xi32>) offsets(%q0, %k0) kv_bound(%n)
      outs(%acc, %m, %l : tensor<1x4x16x4xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>)
      -> tensor<1x4x16x4xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>
  return %a, %b, %c : tensor<1x4x16x4xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>
}

// -----

// bf16 operands are extended to f32 inside the contractions; a boolean mask
// broadcast over heads and rows reads (b, 0, 0, n); no mask kind and no
// positions: no index arithmetic.
// CHECK-LABEL: func.func @bf16_mask
// CHECK:         linalg.generic
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:         linalg.generic {indexing_maps = [#[[MMAP:.+]], #{{.+}}]
// CHECK-NOT:       linalg.index
// CHECK:           arith.select
// The column guard ORs the mask over its rows.
// CHECK:         linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "reduction", "parallel"]
// CHECK:           arith.ori
func.func @bf16_mask(%q: tensor<2x2x8x16xbf16>, %k: tensor<2x2x8x16xbf16>, %v: tensor<2x2x8x16xbf16>,
                     %mask: tensor<2x1x1x8xi1>,
                     %acc: tensor<2x2x8x16xf32>, %m: tensor<2x2x8xf32>, %l: tensor<2x2x8xf32>)
    -> (tensor<2x2x8x16xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>) {
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %v : tensor<2x2x8x16xbf16>, tensor<2x2x8x16xbf16>, tensor<2x2x8x16xbf16>)
      mask(%mask : tensor<2x1x1x8xi1>)
      outs(%acc, %m, %l : tensor<2x2x8x16xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>)
      -> tensor<2x2x8x16xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>
  return %a, %b, %c : tensor<2x2x8x16xf32>, tensor<2x2x8xf32>, tensor<2x2x8xf32>
}
