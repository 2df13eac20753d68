//===- FuseAttentionMatch.h - pieces of unfused attention -------*- C++ -*-===//
//
// The matchers attn-fuse-attention (FuseAttention.cpp) builds its pattern
// from, each recognising one piece of unfused attention in linalg on
// tensors as torch-mlir exports it: the head-split reshapes and batch
// matmuls, the softmax and its scale (FuseAttentionMatch.cpp), masks and
// additive biases (FuseAttentionMask.cpp), and K / V repeated for GQA.
// Each returns null (or nullopt) where the IR is not that piece; none
// changes the IR. Shapes: B batch, H heads, S / Sq / Sk sequence lengths,
// D head_dim; rank-4 tensors are [B, H, Sq, Sk] scores or [B, H, S, D].
//
// Internal to lib/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_FUSEATTENTIONMATCH_H
#define ATTN_LIB_TRANSFORMS_FUSEATTENTIONMATCH_H

#include "MaskEvaluation.h"
#include "dialect/attn/IR/AttnDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <optional>
#include <utility>

namespace mlir {
namespace attn {
namespace fusion {

using Reassociation = SmallVector<ReassociationIndices>;

//===----------------------------------------------------------------------===//
// Structure (FuseAttentionMatch.cpp).
//===----------------------------------------------------------------------===//

/// The rank-4 tensor [B, H, S, D] that `v` collapses to [B*H, S, D].
Value uncollapseHeads(Value v);
/// The plain batch_matmul (into a fill of 0) whose [B*H, S, N] result `v`
/// expands to [B, H, S, N].
linalg::BatchMatmulOp expandedBatchMatmul(Value v);
bool allParallel(linalg::GenericOp g);
/// The one op computing result `result` of a generic's yield.
Operation *yieldedOp(linalg::GenericOp g, unsigned result = 0);
/// The rank-4, all-parallel generic on tensors with one output (identity
/// map) defining `v`, with `numInputs` inputs when given; null otherwise.
linalg::GenericOp parallelGeneric4(Value v,
                                   std::optional<unsigned> numInputs = {});
/// Whether `v` is the block argument of operand `operand` of `g`.
bool isBlockArg(Value v, linalg::GenericOp g, unsigned operand);
bool isZero(Value v);
/// The input number of `v` when it is the block argument of an input of
/// `g`, else -1.
int inputOf(linalg::GenericOp g, Value v);
/// The value of a float scalar in the body of `g`: a constant, or the
/// argument of a rank-0 input that is a splat constant.
std::optional<APFloat> scalarConstant(linalg::GenericOp g, Value v);
bool isNegInfValue(const std::optional<APFloat> &x);

//===----------------------------------------------------------------------===//
// Softmax and scale (FuseAttentionMatch.cpp).
//===----------------------------------------------------------------------===//

/// S for P = softmax(S) over d3 (linalg.softmax, or E / rowsum(E) with
/// E = exp(S - rowmax(S)) or exp(S)), or null.
Value softmaxInput(Value p);
/// P0 and S for P = select(rowAllHidden(S), 0, P0), the zeroing of rows
/// whose scores are all -inf that torch's SDPA decomposition writes; or
/// (p, null).
std::pair<Value, Value> withoutEmptyRowZeroing(Value p);
/// T and the scale for S = T, T / c or T * c (c a float constant); (s, 1)
/// for no scale, (null, 0) for a scale that is not a finite constant.
std::pair<Value, double> unscaled(Value s);

//===----------------------------------------------------------------------===//
// Masks and biases (FuseAttentionMask.cpp).
//===----------------------------------------------------------------------===//

/// Set by the matchers when a constant mask was too large to evaluate
/// (evaluateIntTensor's budget): the attention is then left unfused.
struct EvaluationBudget {
  Operation *exceededAt = nullptr;
};

/// What a masking generic hides: a mask kind (the mask evaluated to a band)
/// or an i1 tensor mask operand, `keep` as attn wants it (true keeps) or to
/// be inverted, of rank 4 or [Sq, Sk] (to expand to [1, 1, Sq, Sk]).
struct MaskMatch {
  Value scores;
  MaskKindAttrInterface kind;
  Value tensor;
  bool invert = false, expand2d = false;
  /// The mask is a constant that hides every key of some row: the export
  /// gives NaN there, attn.attention 0.
  bool emptyRow = false;
};

/// Whether `keep` ([sq, sk], row-major) keeps no key of some row.
bool hasEmptyRow(ArrayRef<int64_t> keep, int64_t sq, int64_t sk);
/// The mask of S = select(hidden, -inf, T) or select(keep, T, -inf): a band
/// kind where the mask evaluates to one, else the i1 tensor operand.
std::optional<MaskMatch> matchMask(Value s, EvaluationBudget &budget);
/// T and the bias of S = T + bias (either order), the bias a float operand
/// broadcast to [B, H, Sq, Sk] or an [Sq, Sk] tensor; (null, null) else.
std::pair<Value, Value> unbiased(Value s);
/// For an additive mask of 0 and -inf: the keep mask, evaluated, of shape
/// [Sq, Sk]; nullopt for any other bias.
std::optional<IntTensor> additiveMaskKeep(Value bias, EvaluationBudget &budget);

//===----------------------------------------------------------------------===//
// GQA / MQA (FuseAttentionMatch.cpp).
//===----------------------------------------------------------------------===//

/// The unrepeated [B, Hkv, S, D] tensor and the group size G of `v`, K or V
/// repeated as torch's repeat_kv writes it; (v, 1) when it is not repeated.
std::pair<Value, int64_t> unrepeatedHeads(Value v);
/// The rank-4 [B, Hkv, S, D] operand and GQA factor of a [B*H, S, D]
/// batch_matmul operand; (null, 1) when it is neither form.
std::pair<Value, int64_t> uncollapseHeadsGQA(Value v3);

} // namespace fusion
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_FUSEATTENTIONMATCH_H
