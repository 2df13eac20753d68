// RUN: attn-opt %s -split-input-file --attn-infer-mask-band | FileCheck %s

// A mask_mod keeping kv_idx <= q_idx (and a document test the analysis
// cannot bound) gives the op a causal mask_kind; the region stays.
// CHECK-LABEL: func.func @document_causal
// CHECK:         attn.attention {mask_kind = #attn.causal} ins(
// CHECK:         mask_mod {
// CHECK:           tensor.extract
// CHECK:           arith.cmpi sle
func.func @document_causal(%q: tensor<1x2x64x16xf32>, %ids: tensor<64xi32>) -> tensor<1x2x64x16xf32> {
  %o = tensor.empty() : tensor<1x2x64x16xf32>
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
      captures(%ids : tensor<64xi32>)
      outs(%o : tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %d: tensor<64xi32>):
      %x = tensor.extract %d[%i] : tensor<64xi32>
      %y = tensor.extract %d[%j] : tensor<64xi32>
      %same = arith.cmpi eq, %x, %y : i32
      %causal = arith.cmpi sle, %j, %i : index
      %keep = arith.andi %same, %causal : i1
      attn.yield %keep : i1
    }
  return %r : tensor<1x2x64x16xf32>
}

// -----

// |i - j| <= 9 (through maxsi) intersected with an existing top-left
// causal mask: a window of 9 keys back.
// CHECK-LABEL: func.func @window_and_causal
// CHECK:         attn.attention {mask_kind = #attn.sliding_window<left = 9, right = 0>} ins(
func.func @window_and_causal(%q: tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32> {
  %o = tensor.empty() : tensor<1x2x64x16xf32>
  %r = attn.attention {mask_kind = #attn.causal} ins(%q, %q, %q : tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
      outs(%o : tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c0 = arith.constant 0 : index
      %c9 = arith.constant 9 : index
      %d = arith.subi %i, %j : index
      %n = arith.subi %c0, %d : index
      %a = arith.maxsi %d, %n : index
      %keep = arith.cmpi sle, %a, %c9 : index
      attn.yield %keep : i1
    }
  return %r : tensor<1x2x64x16xf32>
}

// -----

// Left alone: a mask_mod that bounds nothing (prefix-LM's `or` with a
// capture), and a bottom-right mask_kind (not a top-left band).
// CHECK-LABEL: func.func @unbounded
// CHECK:         attn.attention ins(
// CHECK-LABEL: func.func @bottom_right
// CHECK:         attn.attention {mask_kind = #attn.causal<bottom_right>} ins(
func.func @unbounded(%q: tensor<1x2x64x16xf32>, %p: tensor<1xindex>) -> tensor<1x2x64x16xf32> {
  %o = tensor.empty() : tensor<1x2x64x16xf32>
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
      captures(%p : tensor<1xindex>)
      outs(%o : tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %pl: tensor<1xindex>):
      %c0 = arith.constant 0 : index
      %len = tensor.extract %pl[%c0] : tensor<1xindex>
      %causal = arith.cmpi sle, %j, %i : index
      %prefix = arith.cmpi slt, %j, %len : index
      %keep = arith.ori %causal, %prefix : i1
      attn.yield %keep : i1
    }
  return %r : tensor<1x2x64x16xf32>
}
func.func @bottom_right(%q: tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32> {
  %o = tensor.empty() : tensor<1x2x64x16xf32>
  %r = attn.attention {mask_kind = #attn.causal<bottom_right>} ins(%q, %q, %q : tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
      outs(%o : tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32>
    mask_mod {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c4 = arith.constant 4 : index
      %lo = arith.subi %i, %c4 : index
      %keep = arith.cmpi sge, %j, %lo : index
      attn.yield %keep : i1
    }
  return %r : tensor<1x2x64x16xf32>
}
