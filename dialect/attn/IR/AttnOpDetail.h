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
  /// Absolute batch / query-head index of the op's first batch / head (the
  /// four-offset form), or null (0).
  Value batchOffset() const { return operands.bOffset; }
  Value headOffset() const { return operands.hOffset; }
  /// The `captures(...)` operands the regions read.
  ValueRange captures() const { return operands.captures; }
  /// The score_mod / mask_mod region, or null when the op has none.
  Region *scoreMod() const { return operands.scoreMod; }
  Region *maskMod() const { return operands.maskMod; }
  bool hasModRegions() const { return scoreMod() || maskMod(); }
  MaskKindAttrInterface maskKind() const { return operands.maskKind; }
  double scale() const;
  AttentionDims dims() const {
    return getAttentionDims(query(), key(), value());
  }

private:
  struct Operands {
    Value query, key, value, mask, bias, kvLens, qOffset, kvOffset, kvBound,
        qBound, bOffset, hOffset;
    ValueRange captures;
    Region *scoreMod = nullptr, *maskMod = nullptr;
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
  /// The top-left mask_kind keeping every key this band (top-left) keeps:
  /// #attn.causal for an unbounded lower side and upper 0, else
  /// #attn.sliding_window with left = -lower and right = upper clamped to
  /// [0, 2^31 - 1] (an unbounded side at 2^31 - 1: wider than any length;
  /// a band that a mask cannot say exactly is widened, the region deciding
  /// inside). Null when both sides are unbounded.
  MaskKindAttrInterface toTopLeftMaskKind(MLIRContext *ctx) const;

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

  /// The integer form, for counting: the keys [first, last] (first > last
  /// when none) that the row at diagonal position `row` keeps among keys
  /// [0, kvLen).
  std::pair<int64_t, int64_t> keptKeys(int64_t row, int64_t kvLen) const;
  /// The number of (row, key) entries kept by qLen rows over kvLen keys,
  /// with this band's alignment (rows at diagonal i + shift).
  double countVisible(int64_t qLen, int64_t kvLen) const;
};

/// The diagonal shift of the whole op (MaskKindAttrInterface's rule: 0 for
/// top-left alignment or no mask kind, kv_len - q_len for bottom-right): a
/// constant when both lengths are static, else index arithmetic on the
/// query's and key's tensor.dim.
OpFoldResult getDiagonalShift(OpBuilder &b, Location loc,
                              const AttentionOpDetail &op);

/// Which keys each query row of an attention op sees: the one owner of the
/// rule, which the lowerings ask (tiling's key loop, the linalg score stage
/// and guarded value, the CPU fast path's key ranges, the CUDA workgroups'
/// key limits; the per-element band tests of the CPU score stage and the
/// CUDA tiles ask its `band`; runtime/Spec.cpp's attentionFlops counts with
/// KeyBand::countVisible). Positions are index
/// values: local query row `i` of the op sits at diagonal position
/// `rowPos + i` (q_offset plus the bottom-right shift), local key `j` at
/// absolute position `keyPos + j` (kv_offset). Row `i` sees key `j` iff
///
///   band.lower <= (keyPos + j) - (rowPos + i) <= band.upper  (mask kind)
///   keyPos + j < limit for each key limit   (kv_bound: padding keys of a
///                                            tile; kv_lens[b]: key padding)
///   rowPos + i < qBound                     (q_bound: padding query rows)
///
/// and the tensor mask, an operand rather than a rule of positions, keeps
/// it. Semantics of FlashAttention / PyTorch SDPA (is_causal aligned top-left
/// or bottom-right, key padding as in varlen kernels).
struct VisibleKeys {
  KeyBand band;
  /// Diagonal position of local row 0 and absolute position of local key 0.
  Value rowPos, keyPos;
  /// kv_bound (absolute) and q_bound (diagonal: shifted like rowPos), or
  /// null when the op has none.
  Value kvBound, qBound;
  /// The kv_lens operand ([batch] i32 or i64), or null.
  Value kvLens;

  /// Reads the rule off `op`, building the positions at `b`.
  static VisibleKeys get(OpBuilder &b, Location loc,
                         const AttentionOpDetail &op);

  /// kv_lens[batchIndex] (tensor.extract or memref.load), or null when the
  /// op has no kv_lens.
  Value readKvLen(OpBuilder &b, Location loc, Value batchIndex) const;
  /// The absolute upper limits on key positions: kv_bound, then `kvLen`
  /// (kv_lens[b] as read by readKvLen or a linalg body: any integer type,
  /// cast to index here) when given. Empty when none applies.
  SmallVector<Value, 2> keyLimits(OpBuilder &b, Location loc,
                                  Value kvLen) const;
  /// The diagonal position of the last row of `numRows` rows starting at
  /// diagonal position `firstRow` that is not padding:
  /// min(firstRow + numRows - 1, qBound - 1).
  Value lastRow(OpBuilder &b, Location loc, Value firstRow,
                Value numRows) const;
  /// Narrows the local key range [lo, hi) to the keys that some row at
  /// diagonal positions [firstRow, lastRow] sees (each limit of keyLimits,
  /// then the band). The result may be empty (hi <= lo).
  void narrowToSomeRow(OpBuilder &b, Location loc, Value firstRow,
                       Value lastRow, ArrayRef<Value> limits, Value &lo,
                       Value &hi) const;
  /// The per-entry predicate for the row at diagonal position `row` and the
  /// key at absolute position `key` (index values, as in a linalg body):
  /// each limit, the band, then q_bound. Null when every key is visible.
  Value buildKeep(OpBuilder &b, Location loc, Value row, Value key,
                  ArrayRef<Value> limits) const;
  /// The per-key predicate "some row at diagonal positions [firstRow,
  /// lastRow] sees the key at absolute position `key`": each limit, then
  /// the band. Null when every key is seen.
  Value buildKeepForSomeRow(OpBuilder &b, Location loc, Value firstRow,
                            Value lastRow, Value key,
                            ArrayRef<Value> limits) const;
  /// Whether any rule of positions applies (otherwise every key is seen).
  bool hasPositionRules() const {
    return !band.isUnbounded() || kvBound || qBound || kvLens;
  }
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
/// Verifies the captures, score_mod and mask_mod of an attention-like op
/// (after the ops inside the regions): block arguments, yielded type and
/// the allowed ops (arith, math, tensor.extract of a capture).
LogicalResult verifyModRegions(Operation *op);
/// The op rule of a score_mod / mask_mod body, which verifyModRegions
/// applies and the runtime applies to a user's function before it becomes
/// one: every op but the terminator is an arith or math op without regions
/// or a tensor.extract of a block argument at or after `numLeading` (a
/// capture). Emits the error on the offending op; `name` is "score_mod" or
/// "mask_mod".
LogicalResult verifyModBody(Block &block, unsigned numLeading, StringRef name);

/// The band of keys a mask_mod keeps at most: bounds on rel = kv_idx -
/// q_idx (top-left, KeyBand's terms) that every (q_idx, kv_idx) for which
/// `keep` is true satisfies, derived from its structure: conjunctions
/// (arith.andi) intersect, disjunctions (arith.ori) take the hull, `not`
/// (xori with true) inverts the comparisons below it, and a comparison
/// (arith.cmpi; unsigned only of non-negative sides) of two affine forms in
/// q_idx and kv_idx (index addi / subi / muli by a constant, constants)
/// that depend on them only through t * (kv_idx - q_idx) bounds rel, also
/// through maxsi / minsi (|q - kv| <= w: both sides bounded). Anything
/// else (captures, floats, other ops) bounds nothing; an unbounded band
/// means no analysable bound. Sound, not complete: the mask_mod still
/// decides inside the band. `qIdx` and `kvIdx` are the region's (or a
/// function's) block arguments.
KeyBand impliedKeyBand(Value keep, Value qIdx, Value kvIdx);

/// Emits an error on `op` and fails when it carries a score_mod or mask_mod
/// region, which `where` (a pass or target) does not lower yet; succeeds
/// otherwise.
LogicalResult rejectModRegions(Operation *op, StringRef where);

/// Inlines a score_mod / mask_mod `region` at the builder's insertion point:
/// its block arguments become `args` (the leading scalars, then one value
/// per capture; as many as the block has) and the value its `attn.yield`
/// yields is returned.
Value inlineModRegion(OpBuilder &b, Region &region, ValueRange args);

/// Copies the score_mod / mask_mod regions of `from` into the (empty)
/// regions of `to`, whose captures start with those of `from`. Where `to`'s
/// q_offset has absorbed a bottom-right diagonal shift (tiling makes its
/// tiles top-left so), `qShift` is that shift: each copied region then
/// starts with q_idx - qShift, so that q_idx stays the row of the whole op;
/// a shift that is not a constant becomes one more capture of `to`
/// (tensor<1xindex>). A null or zero `qShift` copies the regions as they
/// are.
void copyModRegions(OpBuilder &b, Location loc, Operation *from,
                    Operation *to, OpFoldResult qShift);

/// The shift half of copyModRegions, in place: the score_mod / mask_mod
/// regions of `op` start with q_idx - qShift (a capture appended to `op`
/// when the shift is not a constant). For an op built with a bottom-right
/// shift already folded into its q_offset.
void shiftModRegionRows(OpBuilder &b, Location loc, Operation *op,
                        OpFoldResult qShift);

/// Scale default: 1/sqrt(head_dim).
double defaultScale(int64_t headDim);

} // namespace attn
} // namespace mlir

#endif // ATTN_DIALECT_ATTN_IR_ATTNOPDETAIL_H
