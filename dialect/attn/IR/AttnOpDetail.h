//===- AttnOpDetail.h - shape semantics of attention ops --------*- C++ -*-===//
//
// The one place that knows which dimension of which operand is the batch, the
// head, the query/key position and the head_dim / v_head_dim, and how the
// compile-time mask kinds translate into a band of kept keys. Verification,
// tiling, decomposition and the reference lowering all ask this helper
// (after IREE's AttentionOpDetail).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNOPDETAIL_H
#define ATTN_DIALECT_ATTN_IR_ATTNOPDETAIL_H

#include "dialect/attn/IR/AttnOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpDefinition.h"
#include <limits>
#include <optional>

namespace mlir {
namespace attn {

/// Positions of the dimensions in the rank-4 query/key/value/output tensors
/// ([batch, heads, sequence, feature]).
enum AttnTensorDim : unsigned {
  kBatchDim = 0,
  kHeadsDim = 1,
  kSeqDim = 2,
  kFeatureDim = 3,
};

/// Loops of the iteration domain shared by both ops (TilingInterface):
/// (batch, q_head, q_pos, kv_pos, v_dim). kv_pos is the reduction.
enum AttnLoop : unsigned {
  kBatchLoop = 0,
  kHeadLoop = 1,
  kQueryLoop = 2,
  kKeyLoop = 3,
  kValueDimLoop = 4,
  kNumLoops = 5,
};

/// Sizes of an attention problem; entries may be ShapedType::kDynamic.
struct AttentionDims {
  int64_t batch, qHeads, kvHeads, qLen, kvLen, headDim, vHeadDim;

  /// Query heads per key/value head (Hq / Hkv), or kDynamic when unknown.
  int64_t groupSize() const;
};

/// Reads the sizes off the query, key and value types (which must be rank-4).
AttentionDims getAttentionDims(Value query, Value key, Value value);

/// The operand accessors shared by attn.attention and attn.online_attention.
class AttentionOpDetail {
public:
  explicit AttentionOpDetail(Operation *op);

  Operation *getOperation() const { return op; }
  Value query() const { return operands.query; }
  Value key() const { return operands.key; }
  Value value() const { return operands.value; }
  Value mask() const { return operands.mask; }
  Value bias() const { return operands.bias; }
  Value kvLens() const { return operands.kvLens; }
  Value queryOffset() const { return operands.qOffset; }
  Value keyOffset() const { return operands.kvOffset; }
  Value kvBound() const { return operands.kvBound; }
  Value qBound() const { return operands.qBound; }
  MaskKindAttrInterface maskKind() const { return operands.maskKind; }
  double scale() const;
  AttentionDims dims() const {
    return getAttentionDims(query(), key(), value());
  }

private:
  struct Operands {
    Value query, key, value, mask, bias, kvLens, qOffset, kvOffset, kvBound,
        qBound;
    MaskKindAttrInterface maskKind;
    FloatAttr scale;
  };
  Operation *op;
  Operands operands;
};

/// The kept keys of a compile-time mask kind, relative to the diagonal:
/// query row at absolute position `i` keeps key `j` iff
/// `lower <= j - i - shift <= upper` (a missing bound is unbounded), where
/// `shift` is 0 (top-left) or `kv_len - q_len` (bottom-right), given by
/// MaskKindAttrInterface::getDiagonalShift.
///
/// This is the one owner of "which keys a row or a block of rows sees" for
/// the band: tiling (which key blocks a query block visits), the linalg
/// decomposition (the score stage's predicate), the CPU lowering (key ranges
/// and per-element tests) and the CUDA lowering (block classification and
/// per-element tests) all ask these helpers. Row positions passed in are
/// absolute positions on the diagonal, i.e. with the shift already added.
struct KeyBand {
  std::optional<int64_t> lower; // as a negative offset, e.g. -left
  std::optional<int64_t> upper;
  MaskAlignment alignment = MaskAlignment::TopLeft;

  static KeyBand get(MaskKindAttrInterface kind);
  bool isUnbounded() const { return !lower && !upper; }

  /// Narrows the local key range [lo, hi) (local key `j` sits at absolute
  /// position `keyPos + j`) to the keys that at least one row at diagonal
  /// positions [firstRow, lastRow] keeps:
  /// `firstRow + lower <= keyPos + j <= lastRow + upper`. Index values;
  /// an unbounded side leaves `lo` or `hi` as it is. The result may be empty
  /// (hi <= lo).
  void narrowToSomeRow(OpBuilder &b, Location loc, Value firstRow,
                       Value lastRow, Value keyPos, Value &lo,
                       Value &hi) const;
  /// Same for the keys that every row of [firstRow, lastRow] keeps:
  /// `lastRow + lower <= keyPos + j <= firstRow + upper`.
  void narrowToEveryRow(OpBuilder &b, Location loc, Value firstRow,
                        Value lastRow, Value keyPos, Value &lo,
                        Value &hi) const;
  /// The predicate `lower <= rel <= upper` for `rel` = key position minus
  /// row position: `rel` is an index or integer scalar or vector (the
  /// result is i1 or a vector of i1). Null when the band is unbounded.
  Value buildKeeps(OpBuilder &b, Location loc, Value rel) const;
  /// For every `rel` in [minRel, maxRel] (scalars): whether some is kept
  /// (`any`) and whether all are (`all`); i1 values, null for an unbounded
  /// band (everything kept).
  std::pair<Value, Value> buildKeepsAnyAll(OpBuilder &b, Location loc,
                                           Value minRel, Value maxRel) const;
};

/// The score of a hidden key (exp gives 0). One constant for every lowering.
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// Returns true when `operand` (a mask or bias) has size 1 in dimension `dim`
/// while the attention has a larger one, i.e. the dimension is broadcast.
bool isBroadcastDim(Value operand, unsigned dim);

/// Verifies the operands and attributes shared by both ops and emits an
/// error naming the offending operand. `numOutputs` is the number of outs the
/// op expects (for attn.attention 1 or 2; for attn.online_attention 3).
LogicalResult verifyAttentionLikeOp(Operation *op);

/// Scale default: 1/sqrt(head_dim).
double defaultScale(int64_t headDim);

} // namespace attn
} // namespace mlir

#endif // ATTN_DIALECT_ATTN_IR_ATTNOPDETAIL_H
