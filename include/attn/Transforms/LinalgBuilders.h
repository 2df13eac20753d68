//===- LinalgBuilders.h - linalg building blocks of attention ---*- C++ -*-===//
//
// Helpers shared by the online-attention decomposition (lib/Transforms) and
// the unfused reference lowering (lib/Conversion): both build the same Q K^T
// contraction, the same masking of scores and the same P V contraction, in a
// "grouped" iteration space where the q_heads dimension is split into
// (kv_heads, group) so that GQA needs no gather:
//
//   query [B, Hk, G, M, D]   key [B, Hk, N, D]   value [B, Hk, N, Dv]
//   scores / probabilities [B, Hk, G, M, N]   rows [B, Hk, G, M]
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_LINALGBUILDERS_H
#define ATTN_TRANSFORMS_LINALGBUILDERS_H

#include "dialect/attn/IR/AttnOpDetail.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace attn {
namespace builders {

/// The operands of an attention-like op in the grouped layout.
struct GroupedOperands {
  Value query, key, value;
  /// Mask and bias with their head dimension split (or kept at size 1 when
  /// broadcast); null when absent.
  Value mask, bias;
  bool maskBcastBatch = false, maskBcastHead = false, maskBcastQuery = false;
  bool biasBcastBatch = false, biasBcastHead = false, biasBcastQuery = false;
  int64_t group = 1;
  /// [B, Hk, G, M] and N, D, Dv as mixed sizes.
  SmallVector<OpFoldResult> rowShape;
  OpFoldResult kvLen, vHeadDim;
  /// Which keys each row sees (positions of row 0 and key 0, limits,
  /// band, kv_lens): the op detail's one rule.
  VisibleKeys visible;
  double scale = 1.0;
  /// The op's score_mod / mask_mod regions (null when absent), the values
  /// their capture arguments stand for, and the absolute batch, query head,
  /// query row and key of the op's first ones (the op's offsets as written;
  /// null for 0), from which the regions' indices are counted.
  Region *scoreMod = nullptr, *maskMod = nullptr;
  SmallVector<Value> captures;
  Value batchPos, headPos, queryPos, keyPos;
};

/// Splits the heads of the op's operands. Fails (with an error on the op)
/// when the GQA group size is not static.
FailureOr<GroupedOperands> groupOperands(OpBuilder &b, AttentionOpDetail &op);

/// [.., Hq, ..] -> [.., Hk, G, ..] along dimension 1.
Value expandHeads(OpBuilder &b, Location loc, Value v, int64_t group);
/// [.., Hk, G, ..] -> [.., Hq, ..] along dimensions 1 and 2.
Value collapseHeads(OpBuilder &b, Location loc, Value v);

/// An f32 tensor of the given shape filled with `value` (0, -inf, ...).
Value buildFilled(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> shape,
                  double value);

/// scores[b,k,g,m,n] = sum_d query[b,k,g,m,d] * key[b,k,n,d], accumulated in
/// f32 whatever the input element type.
Value buildScores(OpBuilder &b, Location loc, const GroupedOperands &ops);

/// The element function of the one score stage, which every lowering's
/// score stage builds its body with (buildMaskedScores for the reference and
/// codegen=linalg, the CPU decomposition's score stage for the fast path):
///
///   s = q . k (f32) [* scale] [+ bias];
///   s = score_mod(s) (a -inf from the bias stays -inf: it hides the key);
///   s = keep ? s : -inf
///
/// (PyTorch SDPA / FlashAttention semantics: the bias is added to the scaled
/// score, hidden keys get -inf, a selection, so NaN or inf in a hidden
/// key's score never reaches the softmax). A score modification (softcap,
/// ALiBi, a score_mod region) is written here once; a mask rule joins
/// `keep`. The callbacks emit, in this order, the bias element (any float
/// type; null for none), the modified score (FlexAttention's score_mod,
/// He et al. 2024: given the f32 score after scale and bias; null for
/// none) and the i1 keep predicate (tensor mask, position rules, mask_mod;
/// null when every key is kept) at the point of use.
struct ScoreElement {
  Value score;
  /// Multiplied in here unless the contraction applied it.
  std::optional<double> scale;
  function_ref<Value(OpBuilder &)> bias;
  function_ref<Value(OpBuilder &, Value)> scoreMod;
  function_ref<Value(OpBuilder &)> keep;
};

/// The absolute (batch, query head, query row, key) of a score element, the
/// leading index arguments of the score_mod / mask_mod regions.
struct ModIndices {
  Value batch, head, queryRow, key;
};
/// score_mod(s, indices, captures) inlined at the builder (inlineModRegion).
Value buildScoreMod(OpBuilder &b, Region &scoreMod, Value score,
                    const ModIndices &at, ValueRange captures);
/// mask_mod(indices, captures) inlined at the builder: i1, true keeps.
Value buildMaskMod(OpBuilder &b, Region &maskMod, const ModIndices &at,
                   ValueRange captures);
Value buildScoreElement(OpBuilder &b, Location loc, const ScoreElement &e);

/// scores * scale + bias where the key is kept, -inf elsewhere
/// (buildScoreElement over the grouped layout [B, Hk, G, M, N]).
Value buildMaskedScores(OpBuilder &b, Location loc, const GroupedOperands &ops,
                        Value scores);

/// The online softmax's safe row max (FlashAttention-2, Dao 2023):
/// m == -inf ? 0 : m, so that exp(x - safe(m)) of a row with no visible key
/// yet is exp(-inf) = 0, not NaN. `m` is f32 or a vector of f32; the one
/// definition every lowering (linalg, CPU stages and microkernels, CUDA)
/// uses.
Value buildSafeMax(OpBuilder &b, Location loc, Value m);
/// Whether `v` is buildSafeMax of `m` (the structure that function builds:
/// select(cmpf oeq m, -inf; 0; m)), for lowerings that match stage bodies.
bool isSafeMax(Value v, Value m);

/// Row maximum folded into `init` ([B,Hk,G,M]).
Value buildRowMax(OpBuilder &b, Location loc, Value scores, Value init);
/// Row sum folded into `init`.
Value buildRowSum(OpBuilder &b, Location loc, Value probs, Value init);

/// exp(scores - rowMax) with rowMax = -inf treated as 0 (rows without kept
/// keys stay at 0 instead of NaN).
Value buildExpSubRow(OpBuilder &b, Location loc, Value scores, Value rowMax);
/// The running-max update of the online softmax, in one elementwise generic
/// so that the old maximum is read before it is overwritten in place:
/// maxNew = max(maxOld, rowMax) (written into maxOld) and
/// alpha = exp(maxOld - maxNew) (maxNew = -inf treated as 0). Returns
/// {maxNew, alpha}.
std::pair<Value, Value> buildMaxUpdate(OpBuilder &b, Location loc,
                                       Value maxOld, Value rowMax);
/// init[b,k,g,m,...] * row[b,k,g,m] elementwise.
Value buildScaleRows(OpBuilder &b, Location loc, Value init, Value row);

/// acc[b,k,g,m,e] += probs[b,k,g,m,n] * value[b,k,n,e] in f32; an entry
/// with probs = 0 (a hidden key) adds nothing, even when the value is NaN.
Value buildProbsTimesValue(OpBuilder &b, Location loc, Value probs,
                           Value value, Value acc);

/// `value` with the rows of keys that no query row of the op keeps set to 0,
/// or `value` itself when every key is kept.
Value buildGuardedValue(OpBuilder &b, Location loc, const GroupedOperands &ops);

/// The end of the online softmax: out = acc / sum (0 where sum = 0, cast to
/// the output element type) into outInits[0] and, when outInits has two
/// values, lse = max + log(sum) (-inf where sum = 0) into outInits[1].
SmallVector<Value> buildNormalization(OpBuilder &b, Location loc, Value acc,
                                      Value max, Value sum,
                                      ValueRange outInits);

/// Merges S partial online-softmax states over disjoint key ranges
/// (split-KV, flash-decoding): acc [S, B, H, M, Dv], max and sum [S, B, H, M]
/// -> normalised output / log-sum-exp as buildNormalization, with
/// M = max_s max_s, sum = sum_s exp(max_s - M) sum_s and
/// acc = sum_s exp(max_s - M) acc_s.
SmallVector<Value> buildMergePartials(OpBuilder &b, Location loc, Value acc,
                                      Value max, Value sum,
                                      ValueRange outInits);

} // namespace builders
} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_LINALGBUILDERS_H
