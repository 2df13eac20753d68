//===- AttnOps.td - attn dialect operations ----------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTNOPS_TD
#define ATTN_DIALECT_ATTNOPS_TD

include "dialect/attn/IR/AttnBase.td"
include "dialect/attn/IR/AttnAttrs.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/TilingInterface.td"

// Operands and attributes shared by both operations, for operands of type T.
class AttnArgsOf<Type T> {
  dag args = (ins
    T:$query,
    T:$key,
    T:$value,
    Optional<T>:$mask,
    Optional<T>:$bias,
    Optional<T>:$kv_lens,
    Variadic<T>:$captures,
    Variadic<Index>:$offsets,
    Optional<Index>:$kv_bound,
    Optional<Index>:$q_bound,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<Attn_MaskKindAttrInterface>:$mask_kind);
}

// A ranked tensor, or (after bufferization) a ranked memref.
def Attn_TensorOrMemRef : AnyTypeOf<[AnyRankedTensor, AnyMemRef]>;

class Attn_AttentionLikeOp<string mnemonic, list<Trait> traits = []>
    : Attn_Op<mnemonic, !listconcat(traits, [
        AttrSizedOperandSegments,
        // score_mod / mask_mod see the op's values only through captures,
        // so no pass moves a value into or out of them.
        IsolatedFromAbove,
        DestinationStyleOpInterface,
        DeclareOpInterfaceMethods<TilingInterface, [
          "getIterationDomain", "getLoopIteratorTypes",
          "getTiledImplementation", "getResultTilePosition",
          "generateResultTileValue"]>])> {
  let regions = (region AnyRegion:$score_mod, AnyRegion:$mask_mod);
  code commonClassDeclaration = [{
    /// The scale applied to Q K^T: the `scale` attribute, or 1/sqrt(head_dim)
    /// when it is absent.
    double getScaleValue();
    MutableOperandRange getDpsInitsMutable() { return getOutputsMutable(); }
    /// Absolute position of the first query row / key, or a null Value when
    /// the op carries no offsets (position 0). With four offsets they are
    /// (batch, q_head, q, kv); with two, (q, kv); any other count is
    /// rejected by the verifier (and read as none before it runs).
    Value getQueryOffset() {
      auto o = getOffsets();
      return o.size() == 2 || o.size() == 4 ? o[o.size() - 2] : Value();
    }
    Value getKeyOffset() {
      auto o = getOffsets();
      return o.size() == 2 || o.size() == 4 ? o[o.size() - 1] : Value();
    }
    /// Absolute batch / query-head index of the op's first batch / head (the
    /// four-offset form that tiling gives ops with score_mod / mask_mod), or
    /// a null Value (0).
    Value getBatchOffset() {
      return getOffsets().size() == 4 ? getOffsets()[0] : Value();
    }
    Value getHeadOffset() {
      return getOffsets().size() == 4 ? getOffsets()[1] : Value();
    }
    /// True when the op carries a score_mod or a mask_mod region.
    bool hasScoreMod() { return !getScoreMod().empty(); }
    bool hasMaskMod() { return !getMaskMod().empty(); }
  }];
  code positionsFormat = [{
    (`offsets` `(` $offsets^ `)`)?
    (`kv_bound` `(` $kv_bound^ `)`)?
    (`q_bound` `(` $q_bound^ `)`)?
  }];
  let hasVerifier = 1;
  // The regions' ops are verified before the regions are checked as a whole.
  let hasRegionVerifier = 1;
}

def Attn_AttentionOp : Attn_AttentionLikeOp<"attention", [Pure]> {
  let summary = "scaled dot-product attention (multi-head, GQA/MQA, masks)";
  let description = [{
    Computes, for every batch `b`, query head `h`, query row `i`:

        s[j]   = scale * sum_d query[b,h,i,d] * key[b,g(h),j,d] + bias[b,h,i,j]
        p      = softmax_j(s) over the kept keys j
        out[b,h,i,:] = sum_j p[j] * value[b,g(h),j,:]
        lse[b,h,i]   = log(sum_j exp(s[j]))          (natural log)

    where `g(h) = h / (q_heads / kv_heads)` (grouped-query attention; MQA is
    `kv_heads = 1`). Softmax and accumulation are in f32 whatever the input
    element type (f32, f16 or bf16).

    Shapes:
    * `query`  [B, Hq, Sq, D], `key` [B, Hkv, Sk, D], `value` [B, Hkv, Sk, Dv],
      with `Hq % Hkv == 0`; `Dv` may differ from `D` (MLA). Query, key and
      value share one float element type.
    * `mask` (optional) i1, broadcastable to [B, Hq, Sq, Sk] (each of the
      first three dims is either full or 1, e.g. a [B, 1, 1, Sk] padding
      mask); `true` keeps the key.
    * `bias` (optional) float, same broadcast rule, added to the scaled
      scores (-inf hides a key).
    * `kv_lens` (optional) i32 or i64 [B]: keys `j >= kv_lens[b]` are hidden
      (key padding, ragged batches). Values are clamped to [0, Sk].
    * `outs`: the output init [B, Hq, Sq, Dv] (f32, f16 or bf16) and,
      optionally, the log-sum-exp init [B, Hq, Sq] f32.

    `mask_kind` (optional) is a compile-time mask: `#attn.causal<...>` or
    `#attn.sliding_window<...>`. All masks combine by intersection.

    User-defined modifications (FlexAttention's `score_mod` / `mask_mod`,
    He et al. 2024, "FlexAttention"): two optional single-block regions
    ending in `attn.yield`.
    * `score_mod(%score: f32, %b: index, %h: index, %q_idx: index,
      %kv_idx: index, %captures...)` yields the modified f32 score; it is
      applied to `scale * q.k + bias`, before masking (a key whose bias is
      -inf stays hidden whatever score_mod makes of it).
    * `mask_mod(%b: index, %h: index, %q_idx: index, %kv_idx: index,
      %captures...)` yields i1: `true` keeps the key. It is intersected with
      every other mask.
    The indices are absolute: batch, query head, query row
    (`q_offset + i`, row `i` of `query`) and key (`kv_offset + j`). Each
    region has one trailing block argument per `captures(...)` operand, of
    the same type: tensors (integer, index or float elements, e.g. per-head
    ALiBi slopes, a T5 bias table, document ids) read with `tensor.extract`
    at computed indices. Regions may contain arith, math and
    `tensor.extract` of a capture only; the op is isolated from above, so a
    region uses no value from outside (constants are written inside it). The
    log-sum-exp is over the modified scores; NaN that `score_mod` produces on
    hidden keys never reaches the output; a row with no visible key gives
    output 0 and log-sum-exp -inf.

    Positions (used by tiling; absent in user IR): `offsets(%q_offset,
    %kv_offset)` is the absolute position of the first query row and the first
    key, at which the mask kind and `kv_lens` are evaluated (0 when absent);
    `kv_bound(%n)` hides keys at absolute positions `>= n` (the padded tail
    block); `q_bound(%n)` marks query rows at positions `>= n` (in the
    coordinates of `q_offset`) as padding, which keep no key. A bottom-right
    alignment shifts by this op's own `Sk - Sq`. An op with a region may
    carry four offsets, `offsets(%b_offset, %h_offset, %q_offset,
    %kv_offset)`: the absolute batch and query head of its first batch and
    head as well, which the regions see. A query
    row that keeps no key produces output 0 and log-sum-exp -inf
    (FlexAttention's convention), never NaN.

    Example:

    ```mlir
    %o = attn.attention {mask_kind = #attn.causal<bottom_right>}
           ins(%q, %k, %v : tensor<1x8x128x64xf32>, tensor<1x2x256x64xf32>,
                            tensor<1x2x256x64xf32>)
           outs(%init : tensor<1x8x128x64xf32>) -> tensor<1x8x128x64xf32>
    ```

    ALiBi (Press et al. 2022) as a score_mod with per-head slopes:

    ```mlir
    %o = attn.attention ins(%q, %k, %v : ...) captures(%slopes : tensor<8xf32>)
           outs(%init : tensor<1x8x128x64xf32>) -> tensor<1x8x128x64xf32>
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %qi: index, %kj: index,
           %sl: tensor<8xf32>):
        %slope = tensor.extract %sl[%h] : tensor<8xf32>
        %rel = arith.subi %kj, %qi : index
        %r = arith.index_cast %rel : index to i64
        %rf = arith.sitofp %r : i64 to f32
        %bias = arith.mulf %slope, %rf : f32
        %out = arith.addf %s, %bias : f32
        attn.yield %out : f32
      }
    ```
  }];
  let arguments = !con(AttnArgsOf<AnyRankedTensor>.args,
                       (ins Variadic<AnyRankedTensor>:$outputs));
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    attr-dict
    `ins` `(` $query `,` $key `,` $value `:` type($query) `,` type($key) `,`
              type($value) `)`
    (`mask` `(` $mask^ `:` type($mask) `)`)?
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    (`kv_lens` `(` $kv_lens^ `:` type($kv_lens) `)`)?
    (`captures` `(` $captures^ `:` type($captures) `)`)?
  }] # positionsFormat # [{
    `outs` `(` $outputs `:` type($outputs) `)`
    (`->` type($results)^)?
    (`score_mod` $score_mod^)?
    (`mask_mod` $mask_mod^)?
  }];
  let extraClassDeclaration = commonClassDeclaration # [{
    /// True when the op also returns the log-sum-exp.
    bool hasLogSumExp() { return getOutputs().size() == 2; }
    Value getOutputInit() { return getOutputs()[0]; }
  }];
}

def Attn_OnlineAttentionOp : Attn_AttentionLikeOp<"online_attention", [
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>,
    DeclareOpInterfaceMethods<ConditionallySpeculatable>]> {
  let summary = "one online-softmax step of attention over a block of keys";
  let description = [{
    The tile-level form of `attn.attention` (FlashAttention-2, Dao 2023,
    Algorithm 1; IREE's `online_attention`). Given the running row maximum
    `m`, running row sum `l` and unnormalised accumulator `acc` of the keys
    seen so far, it folds in the keys and values of its operands:

        s[j]     = scale * q . k[j] + bias[j]         (masked keys: -inf)
        m'       = max(m, max_j s[j])
        alpha    = exp(m - m')
        p[j]     = exp(s[j] - m')
        l'       = alpha * l + sum_j p[j]
        acc'     = alpha * acc + sum_j p[j] * v[j]

    (with `m' = -inf` treated as 0 in the two subtractions, so a row with no
    kept key stays at acc = 0, l = 0, m = -inf). The final output is
    `acc / l` (0 where `l = 0`) and the log-sum-exp is `m + log(l)`.

    Operands are as for `attn.attention`; the outs are `acc` [B, Hq, Sq, Dv]
    f32, `max` [B, Hq, Sq] f32 and `sum` [B, Hq, Sq] f32, and the results are
    their updated values.

    Positions are as for `attn.attention`; tiling folds a bottom-right
    alignment into `q_offset`, so tiles carry top-left masks.

    `captures`, `score_mod` and `mask_mod` are as for `attn.attention`; a
    tile of an op with regions carries four offsets `(b, h, q, kv)`, so that
    the regions see absolute batch and head indices.

    The op is in destination-passing style: on tensors it returns the updated
    state; after bufferization it takes memrefs, has no results and updates
    its `acc`, `max` and `sum` buffers in place (the form that target
    lowerings such as `attn-cuda-lower-attention` consume).

    Example:

    ```mlir
    %acc, %m, %l = attn.online_attention {scale = 0.125 : f32}
        ins(%q, %k, %v : tensor<1x1x64x64xf32>, tensor<1x1x32x64xf32>,
                         tensor<1x1x32x64xf32>)
        offsets(%q0, %k0) kv_bound(%n)
        outs(%acc0, %m0, %l0 : tensor<1x1x64x64xf32>, tensor<1x1x64xf32>,
                               tensor<1x1x64xf32>)
        -> tensor<1x1x64x64xf32>, tensor<1x1x64xf32>, tensor<1x1x64xf32>
    ```
  }];
  let arguments = !con(AttnArgsOf<Attn_TensorOrMemRef>.args,
                       (ins Variadic<Attn_TensorOrMemRef>:$outputs));
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    attr-dict
    `ins` `(` $query `,` $key `,` $value `:` type($query) `,` type($key) `,`
              type($value) `)`
    (`mask` `(` $mask^ `:` type($mask) `)`)?
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    (`kv_lens` `(` $kv_lens^ `:` type($kv_lens) `)`)?
    (`captures` `(` $captures^ `:` type($captures) `)`)?
  }] # positionsFormat # [{
    `outs` `(` $outputs `:` type($outputs) `)`
    (`->` type($results)^)?
    (`score_mod` $score_mod^)?
    (`mask_mod` $mask_mod^)?
  }];
  let extraClassDeclaration = commonClassDeclaration # [{
    Value getAccInit() { return getOutputs()[0]; }
    Value getMaxInit() { return getOutputs()[1]; }
    Value getSumInit() { return getOutputs()[2]; }
  }];
}

def Attn_YieldOp : Attn_Op<"yield", [Pure, Terminator, ReturnLike,
    ParentOneOf<["AttentionOp", "OnlineAttentionOp"]>]> {
  let summary = "terminator of score_mod / mask_mod regions";
  let description = [{
    Yields the modified score (f32) of a `score_mod` region or the keep
    predicate (i1) of a `mask_mod` region.
  }];
  let arguments = (ins AnyType:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

#endif // ATTN_DIALECT_ATTNOPS_TD
