//===- AttnOps.td - attn dialect operations ----------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTNOPS_TD
#define ATTN_DIALECT_ATTNOPS_TD

include "dialect/attn/IR/AttnBase.td"
include "dialect/attn/IR/AttnAttrs.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
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
        DestinationStyleOpInterface,
        DeclareOpInterfaceMethods<TilingInterface, [
          "getIterationDomain", "getLoopIteratorTypes",
          "getTiledImplementation", "getResultTilePosition",
          "generateResultTileValue"]>])> {
  code commonClassDeclaration = [{
    /// The scale applied to Q K^T: the `scale` attribute, or 1/sqrt(head_dim)
    /// when it is absent.
    double getScaleValue();
    MutableOperandRange getDpsInitsMutable() { return getOutputsMutable(); }
    /// Absolute position of the first query row / key, or a null Value when
    /// the op carries no offsets (position 0).
    Value getQueryOffset() {
      return getOffsets().empty() ? Value() : getOffsets()[0];
    }
    Value getKeyOffset() {
      return getOffsets().empty() ? Value() : getOffsets()[1];
    }
  }];
  code positionsFormat = [{
    (`offsets` `(` $offsets^ `)`)?
    (`kv_bound` `(` $kv_bound^ `)`)?
    (`q_bound` `(` $q_bound^ `)`)?
  }];
  let hasVerifier = 1;
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

    Positions (used by tiling; absent in user IR): `offsets(%q_offset,
    %kv_offset)` is the absolute position of the first query row and the first
    key, at which the mask kind and `kv_lens` are evaluated (0 when absent);
    `kv_bound(%n)` hides keys at absolute positions `>= n` (the padded tail
    block); `q_bound(%n)` marks query rows at positions `>= n` (in the
    coordinates of `q_offset`) as padding, which keep no key. A bottom-right
    alignment shifts by this op's own `Sk - Sq`. A query
    row that keeps no key produces output 0 and log-sum-exp -inf
    (FlexAttention's convention), never NaN.

    Example:

    ```mlir
    %o = attn.attention {mask_kind = #attn.causal<bottom_right>}
           ins(%q, %k, %v : tensor<1x8x128x64xf32>, tensor<1x2x256x64xf32>,
                            tensor<1x2x256x64xf32>)
           outs(%init : tensor<1x8x128x64xf32>) -> tensor<1x8x128x64xf32>
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
  }] # positionsFormat # [{
    `outs` `(` $outputs `:` type($outputs) `)`
    (`->` type($results)^)?
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
  }] # positionsFormat # [{
    `outs` `(` $outputs `:` type($outputs) `)`
    (`->` type($results)^)?
  }];
  let extraClassDeclaration = commonClassDeclaration # [{
    Value getAccInit() { return getOutputs()[0]; }
    Value getMaxInit() { return getOutputs()[1]; }
    Value getSumInit() { return getOutputs()[2]; }
  }];
}

#endif // ATTN_DIALECT_ATTNOPS_TD
