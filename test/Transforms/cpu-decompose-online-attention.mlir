// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention --canonicalize --cse | FileCheck %s
// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention=bf16-dot=1 --canonicalize --cse | FileCheck %s --check-prefix=BF16
// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention=amx=1 --canonicalize --cse | FileCheck %s --check-prefix=AMX

// A tile inside a key loop: the query stage (scale * Q^T, rows padded to
// the lanes) goes before the loop; each key block is the scores
// contraction over a zero fill, the row max over the keys [0, 32), the
// alpha stage, exp_sum writing P over the scores and updating l, and the
// rescale and pv stages, inserted back into the running state.
// CHECK-LABEL: func.func @tile
// CHECK-SAME:    %[[Q:[a-zA-Z0-9]+]]: tensor<1x1x32x16xf32>
// CHECK:         %[[QT:.+]] = linalg.generic {{.+}}outs(%{{.+}} : tensor<1x1x16x32xf32>) attrs = {attn.cpu_layout = "query_lanes", attn.cpu_stage = "query"}
// CHECK:           linalg.index 2
// CHECK:           linalg.index 3
// CHECK:           tensor.extract %[[Q]]
// CHECK:           arith.mulf %{{.+}}, %cst
// CHECK:         scf.for %{{.+}} = %c0 to %c128 step %c32 iter_args(%[[ACC:.+]] = %{{.+}}, %[[MAX:.+]] = %{{.+}}, %[[SUM:.+]] = %{{.+}})
// CHECK-NOT:       cpu_stage = "query"
// CHECK:           %[[K:.+]] = tensor.extract_slice %{{.+}}[0, 0, 0, 0] [1, 1, 32, 16] [1, 1, 1, 1] : tensor<1x1x32x16xf32> to tensor<32x16xf32>
// CHECK:           %[[V:.+]] = tensor.extract_slice %{{.+}} : tensor<1x1x32x8xf32> to tensor<32x8xf32>
// CHECK:           %[[ACC2:.+]] = tensor.extract_slice %[[ACC]]
// CHECK:           %[[M1:.+]] = tensor.extract_slice %[[MAX]]
// CHECK:           %[[L1:.+]] = tensor.extract_slice %[[SUM]]
// CHECK:           %[[ZERO:.+]] = linalg.fill ins(%{{.+}}) outs(%{{.+}} : tensor<32x32xf32>)
// CHECK:           %[[QTH:.+]] = tensor.extract_slice %[[QT]]
// CHECK:           %[[S:.+]] = linalg.generic {{.+}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[K]], %[[QTH]] : tensor<32x16xf32>, tensor<16x32xf32>) outs(%[[ZERO]] : tensor<32x32xf32>) attrs = {{.+}}attn.cpu_scheme = "fma", attn.cpu_stage = "scores"
// CHECK:             arith.mulf
// CHECK:             arith.addf
// CHECK:           %[[R:.+]] = linalg.generic {{.+}}iterator_types = ["reduction", "parallel"]} ins(%[[S]], %c0, %c32 : {{.+}}attn.cpu_stage = "max"
// CHECK:             arith.cmpf ogt
// CHECK:           %[[A:.+]]:3 = linalg.generic {{.+}}ins(%[[R]] : tensor<32xf32>) outs(%[[M1]], %{{.+}}, %[[L1]] : {{.+}}attn.cpu_stage = "alpha"
// CHECK:             arith.maximumf
// CHECK:             math.exp
// CHECK:           %[[P:.+]]:2 = linalg.generic {{.+}}ins(%[[A]]#0, %c0, %c32 : {{.+}}outs(%[[S]], %[[A]]#2 : {{.+}}attn.cpu_stage = "exp_sum"
// CHECK:           %[[RS:.+]] = linalg.generic {{.+}}ins(%[[A]]#1 : tensor<32xf32>) outs(%[[ACC2]] : {{.+}}attn.cpu_stage = "rescale"
// CHECK:           %[[O:.+]] = linalg.generic {{.+}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[P]]#0, %[[V]], {{.+}}outs(%[[RS]] : tensor<32x8xf32>) attrs = {{.+}}attn.cpu_scheme = "fma", attn.cpu_stage = "pv"
// CHECK:           tensor.insert_slice %[[O]] into %[[ACC]]
// CHECK:           tensor.insert_slice %[[A]]#0 into %[[MAX]]
// CHECK:           tensor.insert_slice %[[P]]#1 into %[[SUM]]
// CHECK-NOT:     attn.online_attention
func.func @tile(%q: tensor<1x1x32x16xf32>, %k: tensor<1x1x128x16xf32>, %v: tensor<1x1x128x8xf32>,
                %acc: tensor<1x1x32x8xf32>, %m: tensor<1x1x32xf32>, %l: tensor<1x1x32xf32>)
    -> (tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>) {
  %c0 = arith.constant 0 : index
  %c32 = arith.constant 32 : index
  %c128 = arith.constant 128 : index
  %r:3 = scf.for %k0 = %c0 to %c128 step %c32 iter_args(%a = %acc, %mx = %m, %s = %l)
      -> (tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>) {
    %kt = tensor.extract_slice %k[0, 0, %k0, 0] [1, 1, 32, 16] [1, 1, 1, 1] : tensor<1x1x128x16xf32> to tensor<1x1x32x16xf32>
    %vt = tensor.extract_slice %v[0, 0, %k0, 0] [1, 1, 32, 8] [1, 1, 1, 1] : tensor<1x1x128x8xf32> to tensor<1x1x32x8xf32>
    %o:3 = attn.online_attention {scale = 0.25 : f32}
        ins(%q, %kt, %vt : tensor<1x1x32x16xf32>, tensor<1x1x32x16xf32>, tensor<1x1x32x8xf32>)
        outs(%a, %mx, %s : tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>)
        -> tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
    scf.yield %o#0, %o#1, %o#2 : tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
  }
  return %r#0, %r#1, %r#2 : tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
}

// -----

// Causal with kv_lens and a padded query tile (q_bound): the key range is
// clipped by kv_lens and by the band of the last real row; the score stage
// tests the band only when the tile straddles it, and pv's body tests the
// band on key minus row position for its per-row guards.
// CHECK-LABEL: func.func @causal
// CHECK:         %[[LEN:.+]] = tensor.extract %{{.+}}[%c0] : tensor<1xi32>
// CHECK:         arith.index_cast %[[LEN]]
// CHECK:         arith.minsi
// CHECK:         %[[INSIDE:.+]] = arith.cmpi sle, %{{.+}}, %c0 : index
// CHECK:         %[[S:.+]] = scf.if %[[INSIDE]] -> (tensor<16x16xf32>) {
// CHECK-NEXT:      scf.yield %{{.+}} : tensor<16x16xf32>
// CHECK-NEXT:    } else {
// CHECK-NEXT:      linalg.generic {{.+}}attn.cpu_stage = "score"
// CHECK:             arith.index_cast %{{.+}} : index to i32
// CHECK:             arith.subi %{{.+}} : i32
// CHECK:             arith.cmpi sle, %{{.+}}, %c0_i32 : i32
// CHECK:             arith.select %{{.+}}, %{{.+}}, %cst
// CHECK:         linalg.generic {{.+}}ins(%[[S]], {{.+}}attn.cpu_stage = "max"
// CHECK:         linalg.generic {{.+}}attn.cpu_scheme = "fma", attn.cpu_stage = "pv"}
// CHECK:           arith.cmpi sge
// CHECK:           arith.cmpi slt
// CHECK:           %[[REL:.+]] = arith.subi
// CHECK:           arith.cmpi sle, %[[REL]], %c0
func.func @causal(%q: tensor<1x1x16x16xf32>, %k: tensor<1x1x16x16xf32>, %v: tensor<1x1x16x16xf32>,
                  %lens: tensor<1xi32>, %acc: tensor<1x1x16x16xf32>, %m: tensor<1x1x16xf32>,
                  %l: tensor<1x1x16xf32>, %q0: index, %k0: index, %qb: index)
    -> (tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>) {
  %o:3 = attn.online_attention {mask_kind = #attn.causal, scale = 0.25 : f32}
      ins(%q, %k, %v : tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>)
      kv_lens(%lens : tensor<1xi32>) offsets(%q0, %k0) q_bound(%qb)
      outs(%acc, %m, %l : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
  return %o#0, %o#1, %o#2 : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
}

// -----

// bf16 with AVX512-BF16 dot products: the query stage pairs the unscaled
// query (QP[p][2m + r]); the contraction sees the pairs as a dimension of
// their own (expand_shape), and the score stage applies the scale. With
// AMX the same stages carry the amx scheme.
// BF16-LABEL: func.func @bf16
// BF16:         linalg.generic {{.+}}outs(%{{.+}} : tensor<1x1x16x32xbf16>) attrs = {{.+}}attn.cpu_stage = "query"
// BF16-NOT:       arith.mulf
// BF16:         %[[KP:.+]] = tensor.expand_shape %{{.+}} {{\[\[}}0], [1, 2]] output_shape [32, 16, 2] : tensor<32x32xbf16> into tensor<32x16x2xbf16>
// BF16:         %[[QP:.+]] = tensor.expand_shape %{{.+}} {{\[\[}}0], [1, 2]] output_shape [16, 16, 2] : tensor<16x32xbf16> into tensor<16x16x2xbf16>
// BF16:         %[[S:.+]] = linalg.generic {{.+}}iterator_types = ["parallel", "parallel", "reduction", "reduction"]} ins(%[[KP]], %[[QP]] : {{.+}}attn.cpu_scheme = "bf16_dot", attn.cpu_stage = "scores"
// BF16:         linalg.generic {{.+}}outs(%[[S]] : tensor<32x16xf32>) {{.+}}attn.cpu_stage = "score"
// BF16:           arith.mulf %{{.+}}, %cst
// AMX-LABEL: func.func @bf16
// AMX:         attn.cpu_scheme = "amx", attn.cpu_stage = "scores"
// AMX:         attn.cpu_scheme = "amx", attn.cpu_stage = "pv"
func.func @bf16(%q: tensor<1x1x16x32xbf16>, %k: tensor<1x1x32x32xbf16>, %v: tensor<1x1x32x16xbf16>,
                %acc: tensor<1x1x16x16xf32>, %m: tensor<1x1x16xf32>, %l: tensor<1x1x16xf32>)
    -> (tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>) {
  %o:3 = attn.online_attention {scale = 0.125 : f32}
      ins(%q, %k, %v : tensor<1x1x16x32xbf16>, tensor<1x1x32x32xbf16>, tensor<1x1x32x16xbf16>)
      outs(%acc, %m, %l : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
  return %o#0, %o#1, %o#2 : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
}

// -----

// A boolean mask broadcast over rows: the score stage reads it with the
// (clamped) row and key of the element; pv also guards by p != 0 so that a
// value the mask hides never reaches a row.
// CHECK-LABEL: func.func @tensor_mask
// CHECK-SAME:    %[[MASK:[a-zA-Z0-9]+]]: tensor<1x1x1x16xi1>
// CHECK:         linalg.generic {{.+}}attn.cpu_stage = "score"
// CHECK:           %[[KEEP:.+]] = tensor.extract %[[MASK]][%c0, %c0, %c0, %{{.+}}] : tensor<1x1x1x16xi1>
// CHECK:           arith.select %[[KEEP]]
// CHECK:         linalg.generic {{.+}}attn.cpu_stage = "pv"
// CHECK:           arith.cmpf une
func.func @tensor_mask(%q: tensor<1x1x16x16xf32>, %k: tensor<1x1x16x16xf32>, %v: tensor<1x1x16x16xf32>,
                       %mask: tensor<1x1x1x16xi1>, %acc: tensor<1x1x16x16xf32>, %m: tensor<1x1x16xf32>,
                       %l: tensor<1x1x16xf32>)
    -> (tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>) {
  %o:3 = attn.online_attention
      ins(%q, %k, %v : tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>)
      mask(%mask : tensor<1x1x1x16xi1>)
      outs(%acc, %m, %l : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
  return %o#0, %o#1, %o#2 : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
}

// -----

// A decoding tile (one row per head, a GQA group of 4 heads over one
// key/value head): keys on the lanes, no query stage; a loop over the heads
// reads key/value head h / 4; the score stage scales and tests the key
// range.
// CHECK-LABEL: func.func @decode
// CHECK-NOT:     cpu_stage = "query"
// CHECK:         scf.for %[[H:.+]] = %c0 to %c4 step %c1 iter_args
// CHECK:           %[[HK:.+]] = arith.divui %[[H]], %c4
// CHECK:           tensor.extract_slice %{{.+}}[0, %[[HK]], 0, 0] [1, 1, 64, 32]
// CHECK:           linalg.generic {{.+}}ins(%{{.+}}, %{{.+}} : tensor<1x32xf32>, tensor<64x32xf32>) outs(%{{.+}} : tensor<1x64xf32>) attrs = {attn.cpu_layout = "key_lanes", attn.cpu_scheme = "rows", attn.cpu_stage = "scores"}
// CHECK:           linalg.generic {{.+}}attn.cpu_layout = "key_lanes", attn.cpu_stage = "score"
// CHECK:             arith.mulf
// CHECK:             arith.cmpi sge
// CHECK:             arith.cmpi slt
// CHECK:           linalg.generic {{.+}}iterator_types = ["parallel", "reduction"]} {{.+}}attn.cpu_stage = "max"
func.func @decode(%q: tensor<1x4x1x32xf32>, %k: tensor<1x1x64x32xf32>, %v: tensor<1x1x64x32xf32>,
                  %acc: tensor<1x4x1x32xf32>, %m: tensor<1x4x1xf32>, %l: tensor<1x4x1xf32>)
    -> (tensor<1x4x1x32xf32>, tensor<1x4x1xf32>, tensor<1x4x1xf32>) {
  %o:3 = attn.online_attention
      ins(%q, %k, %v : tensor<1x4x1x32xf32>, tensor<1x1x64x32xf32>, tensor<1x1x64x32xf32>)
      outs(%acc, %m, %l : tensor<1x4x1x32xf32>, tensor<1x4x1xf32>, tensor<1x4x1xf32>)
      -> tensor<1x4x1x32xf32>, tensor<1x4x1xf32>, tensor<1x4x1xf32>
  return %o#0, %o#1, %o#2 : tensor<1x4x1x32xf32>, tensor<1x4x1xf32>, tensor<1x4x1xf32>
}

// -----

// mask_mod (document ids as a capture) goes into the one score stage, at the
// absolute query row (q_offset + m, clamped to the last real row) and key
// (kv_offset + j); P V then skips keys by p != 0, as for tensor masks.
// CHECK-LABEL: func.func @doc_mask
// CHECK-SAME:    %[[DOC:[a-z0-9]+]]: tensor<64xi32>, %{{.+}}: index, %{{.+}}: index, %[[Q0:[a-z0-9]+]]: index, %[[K0:[a-z0-9]+]]: index
// CHECK:         linalg.generic {{.+}} attrs = {{.+}}attn.cpu_stage = "score"
// CHECK:           %[[J:.+]] = linalg.index 0 : index
// CHECK:           %[[M:.+]] = linalg.index 1 : index
// CHECK:           %[[QP:.+]] = arith.addi %[[Q0]], %[[M]] : index
// CHECK:           %[[KP:.+]] = arith.addi %[[K0]], %[[J]] : index
// CHECK:           %[[QC:.+]] = arith.minsi %[[QP]], %{{.+}} : index
// CHECK:           %[[DQ:.+]] = tensor.extract %[[DOC]][%[[QC]]]
// CHECK:           %[[DK:.+]] = tensor.extract %[[DOC]][%[[KP]]]
// CHECK:           %[[KEEP:.+]] = arith.cmpi eq, %[[DQ]], %[[DK]] : i32
// CHECK:           arith.select %[[KEEP]], %{{.+}}, %{{.+}} : f32
// CHECK:         linalg.generic {{.+}}attn.cpu_stage = "pv"
// CHECK:           arith.cmpf une
func.func @doc_mask(%q: tensor<1x1x16x16xf32>, %k: tensor<1x1x16x16xf32>, %v: tensor<1x1x16x16xf32>,
                    %acc: tensor<1x1x16x16xf32>, %m: tensor<1x1x16xf32>, %l: tensor<1x1x16xf32>,
                    %doc: tensor<64xi32>, %b0: index, %h0: index, %q0: index, %k0: index)
    -> (tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>) {
  %a, %mm, %ll = attn.online_attention ins(%q, %k, %v : tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>)
      captures(%doc : tensor<64xi32>) offsets(%b0, %h0, %q0, %k0)
      outs(%acc, %m, %l : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %d: tensor<64xi32>):
      %di = tensor.extract %d[%i] : tensor<64xi32>
      %dj = tensor.extract %d[%j] : tensor<64xi32>
      %same = arith.cmpi eq, %di, %dj : i32
      attn.yield %same : i1
    }
  return %a, %mm, %ll : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
}
