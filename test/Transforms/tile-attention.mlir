// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,1,32,64" --canonicalize --cse | FileCheck %s

// Divisible sizes: one workgroup per (batch, head, 32-row block), a key loop
// over 64-key blocks, static tiles and no padding.
// CHECK-LABEL: func.func @mha
// CHECK-SAME:    %[[Q:[a-zA-Z0-9]+]]: tensor<2x4x128x64xf32>
// CHECK:         %[[R:.+]] = scf.forall (%[[B:.+]], %[[H:.+]], %[[QB:.+]]) in (2, 4, 4) shared_outs(%[[OUT:.+]] = %{{.+}})
// CHECK:           %[[Q0:.+]] = arith.muli %[[QB]], %c32 : index
// CHECK:           %[[QT:.+]] = tensor.extract_slice %[[Q]][%[[B]], %[[H]], %[[Q0]], 0] [1, 1, 32, 64]
// CHECK-DAG:       %[[ACC0:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<1x1x32x64xf32>)
// CHECK-DAG:       %[[MAX0:.+]] = linalg.fill ins(%[[NEGINF:.+]] : f32) outs(%{{.+}} : tensor<1x1x32xf32>)
// CHECK:           %[[LOOP:.+]]:3 = scf.for %[[K0:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ACC:.+]] = %[[ACC0]], %[[MAX:.+]] = %[[MAX0]], %[[SUM:.+]] = %{{.+}})
// CHECK:             %[[KT:.+]] = tensor.extract_slice %{{.+}}[0, 0, %[[K0]], 0] [1, 1, 64, 64]
// CHECK:             attn.online_attention {scale = 1.250000e-01 : f32} ins(%[[QT]], %[[KT]], %{{.+}} : tensor<1x1x32x64xf32>, tensor<1x1x64x64xf32>, tensor<1x1x64x64xf32>)
// CHECK-SAME:          outs(%[[ACC]], %[[MAX]], %[[SUM]] :
// CHECK:           %[[NORM:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[LOOP]]#0, %[[LOOP]]#2
// CHECK:           scf.forall.in_parallel
// CHECK-NEXT:        tensor.parallel_insert_slice %[[NORM]] into %[[OUT]][%[[B]], %[[H]], %[[Q0]], 0] [1, 1, 32, 64]
// CHECK:         } {mapping = [#gpu.block<z>, #gpu.block<y>, #gpu.block<x>]}
// CHECK-NOT:     tensor.pad
// CHECK:         return %[[R]]
func.func @mha(%q: tensor<2x4x128x64xf32>, %k: tensor<2x4x256x64xf32>,
               %v: tensor<2x4x256x64xf32>) -> tensor<2x4x128x64xf32> {
  %init = tensor.empty() : tensor<2x4x128x64xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<2x4x128x64xf32>, tensor<2x4x256x64xf32>, tensor<2x4x256x64xf32>)
         outs(%init : tensor<2x4x128x64xf32>) -> tensor<2x4x128x64xf32>
  return %o : tensor<2x4x128x64xf32>
}

// -----

// Causal: the last (longest) query block runs first, and the key loop stops
// after the diagonal block: blocks above the diagonal are never visited.
// CHECK-LABEL: func.func @causal
// CHECK:         scf.forall (%{{.+}}, %{{.+}}, %[[QB:.+]]) in (1, 2, 8)
// CHECK:           %[[REV:.+]] = arith.subi %c7, %[[QB]] : index
// CHECK:           %[[Q0:.+]] = arith.muli %[[REV]], %c32 : index
// CHECK:           %[[END:.+]] = arith.addi %[[Q0]], %c32 : index
// CHECK:           %[[HI:.+]] = arith.minsi %[[END]], %c256 : index
// CHECK:           %[[HI2:.+]] = arith.maxsi %[[HI]], %c0 : index
// CHECK:           scf.for %[[K0:.+]] = %c0 to %[[HI2]] step %c64
// CHECK:             attn.online_attention {mask_kind = #attn.causal, scale = {{.+}}} {{.+}} offsets(%[[Q0]], %[[K0]])
func.func @causal(%q: tensor<1x2x256x16xf32>, %k: tensor<1x2x256x16xf32>,
                  %v: tensor<1x2x256x16xf32>) -> tensor<1x2x256x16xf32> {
  %init = tensor.empty() : tensor<1x2x256x16xf32>
  %o = attn.attention {mask_kind = #attn.causal}
         ins(%q, %k, %v : tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>)
         outs(%init : tensor<1x2x256x16xf32>) -> tensor<1x2x256x16xf32>
  return %o : tensor<1x2x256x16xf32>
}

// -----

// Sliding window: the key loop starts at the first visible block too.
// CHECK-LABEL: func.func @window
// CHECK:           %[[LO:.+]] = arith.maxsi %{{.+}}, %c0 : index
// CHECK:           %[[LOB:.+]] = arith.floordivsi %[[LO]], %c64 : index
// CHECK:           %[[LOA:.+]] = arith.muli %[[LOB]], %c64 : index
// CHECK:           scf.for %{{.+}} = %[[LOA]] to
// CHECK:             attn.online_attention {mask_kind = #attn.sliding_window<left = 100, right = 0>
func.func @window(%q: tensor<1x1x512x16xf32>, %k: tensor<1x1x512x16xf32>,
                  %v: tensor<1x1x512x16xf32>) -> tensor<1x1x512x16xf32> {
  %init = tensor.empty() : tensor<1x1x512x16xf32>
  %o = attn.attention {mask_kind = #attn.sliding_window<left = 100, right = 0>}
         ins(%q, %k, %v : tensor<1x1x512x16xf32>, tensor<1x1x512x16xf32>, tensor<1x1x512x16xf32>)
         outs(%init : tensor<1x1x512x16xf32>) -> tensor<1x1x512x16xf32>
  return %o : tensor<1x1x512x16xf32>
}

// -----

// Bottom-right causal: tiles carry top-left masks with the shift
// kv_len - q_len (= 64 - 100 = -36) folded into the query offset.
// CHECK-LABEL: func.func @bottom_right
// CHECK:         scf.forall
// CHECK:           %[[QOFF:.+]] = affine.apply #[[SHIFT:.+]]()[%{{.+}}]
// CHECK:           attn.online_attention {mask_kind = #attn.causal, {{.+}} offsets(%[[QOFF]],
func.func @bottom_right(%q: tensor<1x1x100x16xf32>, %k: tensor<1x1x64x16xf32>,
                        %v: tensor<1x1x64x16xf32>) -> tensor<1x1x100x16xf32> {
  %init = tensor.empty() : tensor<1x1x100x16xf32>
  %o = attn.attention {mask_kind = #attn.causal<bottom_right>}
         ins(%q, %k, %v : tensor<1x1x100x16xf32>, tensor<1x1x64x16xf32>, tensor<1x1x64x16xf32>)
         outs(%init : tensor<1x1x100x16xf32>) -> tensor<1x1x100x16xf32>
  return %o : tensor<1x1x100x16xf32>
}

// -----

// Ragged sizes: the last query block is padded to 32 rows (and computed into
// a fresh tile, of which the valid rows are inserted); with a dynamic kv_len
// the full 64-key blocks run in the loop and the tail block is padded to 64
// keys and hidden beyond kv_len through kv_bound.
// CHECK-LABEL: func.func @ragged
// CHECK:         scf.forall
// CHECK:           %[[QSZ:.+]] = affine.min
// CHECK:           %[[SK:.+]] = tensor.dim %{{.+}}, %c2 : tensor<1x1x?x16xf32>
// CHECK:           %[[QP:.+]] = tensor.pad %{{.+}} low[0, 0, 0, 0] high[0, 0, %{{.+}}, 0]
// CHECK:           %[[FULL:.+]] = arith.minsi
// CHECK:           %[[LOOP:.+]]:3 = scf.for %{{.+}} = %c0 to %[[FULL]] step %c64
// CHECK:             attn.online_attention {{.+}} ins(%[[QP]], %{{.+}}, %{{.+}} : tensor<1x1x32x16xf32>, tensor<1x1x64x16xf32>, tensor<1x1x64x16xf32>)
// Without log-sum-exp, the running max is dead after the loop.
// CHECK:           %[[TAIL:.+]]:2 = scf.if
// CHECK:             %[[KP:.+]] = tensor.pad
// CHECK:             %[[VP:.+]] = tensor.pad
// CHECK:             attn.online_attention {{.+}} ins(%[[QP]], %[[KP]], %[[VP]] : {{.+}}) offsets(%c0, %[[FULL]]) kv_bound(%[[SK]])
// CHECK:           } else {
// CHECK-NEXT:        scf.yield %[[LOOP]]#0, %[[LOOP]]#2
// CHECK:           %[[NORM:.+]] = linalg.generic {{.+}} ins(%[[TAIL]]#0, %[[TAIL]]#1
// CHECK:           %[[VALID:.+]] = tensor.extract_slice %[[NORM]][0, 0, 0, 0] [1, 1, %[[QSZ]], 16]
// CHECK:           tensor.parallel_insert_slice %[[VALID]]
func.func @ragged(%q: tensor<1x1x100x16xf32>, %k: tensor<1x1x?x16xf32>,
                  %v: tensor<1x1x?x16xf32>) -> tensor<1x1x100x16xf32> {
  %init = tensor.empty() : tensor<1x1x100x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x1x100x16xf32>, tensor<1x1x?x16xf32>, tensor<1x1x?x16xf32>)
         outs(%init : tensor<1x1x100x16xf32>) -> tensor<1x1x100x16xf32>
  return %o : tensor<1x1x100x16xf32>
}

// -----

// Key padding with batch tile 1: the key loop also stops at kv_lens[b].
// CHECK-LABEL: func.func @kv_lens
// CHECK:         scf.forall (%[[B:.+]], %{{.+}}, %{{.+}}) in (3, 1, 2)
// CHECK:           %[[LENS:.+]] = tensor.extract_slice %{{.+}}[%[[B]]] [1] [1] : tensor<3xi32> to tensor<1xi32>
// CHECK:           %[[LEN:.+]] = tensor.extract %[[LENS]][%c0] : tensor<1xi32>
// CHECK:           %[[LENI:.+]] = arith.index_cast %[[LEN]] : i32 to index
// CHECK:           %[[HI:.+]] = arith.minsi %[[LENI]], %c128 : index
// CHECK:           scf.for %{{.+}} = %c0 to %{{.+}} step %c64
// CHECK:             attn.online_attention {{.+}} kv_lens(%[[LENS]] : tensor<1xi32>)
func.func @kv_lens(%q: tensor<3x1x64x16xf32>, %k: tensor<3x1x128x16xf32>,
                   %v: tensor<3x1x128x16xf32>, %lens: tensor<3xi32>) -> tensor<3x1x64x16xf32> {
  %init = tensor.empty() : tensor<3x1x64x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<3x1x64x16xf32>, tensor<3x1x128x16xf32>, tensor<3x1x128x16xf32>)
         kv_lens(%lens : tensor<3xi32>)
         outs(%init : tensor<3x1x64x16xf32>) -> tensor<3x1x64x16xf32>
  return %o : tensor<3x1x64x16xf32>
}

// -----

// GQA with head tile 1: each query head reads key/value head h / 4 (see
// tile-attention-gqa.mlir for larger head tiles).
// CHECK-LABEL: func.func @gqa
// CHECK:         scf.forall (%{{.+}}, %[[H:.+]], %{{.+}}) in (1, 8, 2)
// CHECK:           attn.online_attention {{.+}} : tensor<1x1x32x16xf32>, tensor<1x1x64x16xf32>, tensor<1x1x64x16xf32>)
func.func @gqa(%q: tensor<1x8x64x16xf32>, %k: tensor<1x2x64x16xf32>,
               %v: tensor<1x2x64x16xf32>) -> tensor<1x8x64x16xf32> {
  %init = tensor.empty() : tensor<1x8x64x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x8x64x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
         outs(%init : tensor<1x8x64x16xf32>) -> tensor<1x8x64x16xf32>
  return %o : tensor<1x8x64x16xf32>
}

// -----

// A stand-alone online_attention (after attn-convert-to-online-attention)
// is tiled too: no normalisation inside the forall.
// CHECK-LABEL: func.func @online
// CHECK:         scf.forall
// CHECK:           scf.for
// CHECK:             attn.online_attention
// CHECK-NOT:       linalg.generic
// CHECK:           scf.forall.in_parallel
func.func @online(%q: tensor<1x1x64x16xf32>, %k: tensor<1x1x128x16xf32>, %v: tensor<1x1x128x16xf32>,
                  %acc: tensor<1x1x64x16xf32>, %m: tensor<1x1x64xf32>, %l: tensor<1x1x64xf32>)
    -> (tensor<1x1x64x16xf32>, tensor<1x1x64xf32>, tensor<1x1x64xf32>) {
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %v : tensor<1x1x64x16xf32>, tensor<1x1x128x16xf32>, tensor<1x1x128x16xf32>)
      outs(%acc, %m, %l : tensor<1x1x64x16xf32>, tensor<1x1x64xf32>, tensor<1x1x64xf32>)
      -> tensor<1x1x64x16xf32>, tensor<1x1x64xf32>, tensor<1x1x64xf32>
  return %a, %b, %c : tensor<1x1x64x16xf32>, tensor<1x1x64xf32>, tensor<1x1x64xf32>
}

// -----

// A padded query tile of a stand-alone online_attention (split-KV partials:
// q_len 5 in a 32-row tile) starts from its running state: the fills of the
// state are repeated on the padded shape, never a bare tensor.empty (whose
// rows the merge would read uninitialised).
// CHECK-LABEL: func.func @online_padded_fill
// CHECK-DAG:     %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK:         scf.forall
// CHECK-DAG:       %[[ACC0:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<1x1x32x16xf32>)
// CHECK-DAG:       %[[MAX0:.+]] = linalg.fill ins(%[[NEGINF]] : f32) outs(%{{.+}} : tensor<1x1x32xf32>)
// CHECK-DAG:       %[[SUM0:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<1x1x32xf32>)
// CHECK:           scf.for {{.+}} iter_args(%{{.+}} = %[[ACC0]], %{{.+}} = %[[MAX0]], %{{.+}} = %[[SUM0]])
// CHECK:             attn.online_attention {{.+}} q_bound(
func.func @online_padded_fill(%q: tensor<1x1x5x16xf32>, %k: tensor<1x1x128x16xf32>, %v: tensor<1x1x128x16xf32>)
    -> (tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>) {
  %zero = arith.constant 0.0 : f32
  %neginf = arith.constant 0xFF800000 : f32
  %e4 = tensor.empty() : tensor<1x1x5x16xf32>
  %e3 = tensor.empty() : tensor<1x1x5xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e4 : tensor<1x1x5x16xf32>) -> tensor<1x1x5x16xf32>
  %m = linalg.fill ins(%neginf : f32) outs(%e3 : tensor<1x1x5xf32>) -> tensor<1x1x5xf32>
  %l = linalg.fill ins(%zero : f32) outs(%e3 : tensor<1x1x5xf32>) -> tensor<1x1x5xf32>
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %v : tensor<1x1x5x16xf32>, tensor<1x1x128x16xf32>, tensor<1x1x128x16xf32>)
      outs(%acc, %m, %l : tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>)
      -> tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>
  return %a, %b, %c : tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>
}

// -----

// A running state passed in (not a fill) is padded, so the padded tile
// continues from it.
// CHECK-LABEL: func.func @online_padded_state
// CHECK-SAME:    tensor<1x1x128x16xf32>, %[[ACC:[a-zA-Z0-9]+]]: tensor<1x1x5x16xf32>
// CHECK:         scf.forall {{.+}} shared_outs(%[[SACC:[a-zA-Z0-9]+]] = %[[ACC]],
// CHECK:           %[[PACC:.+]] = tensor.pad %[[SACC]] low[0, 0, 0, 0] high[0, 0, %{{.+}}, 0]
// CHECK:           scf.for {{.+}} iter_args(%{{.+}} = %[[PACC]],
func.func @online_padded_state(%q: tensor<1x1x5x16xf32>, %k: tensor<1x1x128x16xf32>, %v: tensor<1x1x128x16xf32>,
                  %acc: tensor<1x1x5x16xf32>, %m: tensor<1x1x5xf32>, %l: tensor<1x1x5xf32>)
    -> (tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>) {
  %a, %b, %c = attn.online_attention
      ins(%q, %k, %v : tensor<1x1x5x16xf32>, tensor<1x1x128x16xf32>, tensor<1x1x128x16xf32>)
      outs(%acc, %m, %l : tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>)
      -> tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>
  return %a, %b, %c : tensor<1x1x5x16xf32>, tensor<1x1x5xf32>, tensor<1x1x5xf32>
}
