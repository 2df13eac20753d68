//===- CPUDecomposer.h - one CPU tile as linalg stages ----------*- C++ -*-===//
//
// The decomposition of one attn.online_attention tile into the linalg stages
// of CPUTileLowering.h, one builder per stage: the query and score stages
// in CPUDecomposeScores.cpp, the row statistics, exp_sum, rescale and P V
// stages and the pass in CPUDecomposeOnlineAttention.cpp.
//
// Internal to lib/Transforms/CPU.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_CPU_CPUDECOMPOSER_H
#define ATTN_LIB_TRANSFORMS_CPU_CPUDECOMPOSER_H

#include "CPUTileLowering.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

namespace mlir {
namespace attn {
namespace cpu {

using utils::IteratorType;
constexpr IteratorType kPar = IteratorType::parallel,
                       kRed = IteratorType::reduction;

/// The stages of one tile `op` (static sizes, on tensors) for `VL` f32 lanes,
/// built per (batch, query head) with the rewriter's insertion point.
struct Decomposer {
  RewriterBase &rw;
  OnlineAttentionOp op;
  Location loc;
  AttentionOpDetail detail;
  AttentionDims d;
  int64_t VL;
  bool pairs = false, amx = false, keyLanes = false;
  int64_t B, Hq, G, M, N, D, Dv, Mp;
  KeyBand band;
  StageBuilder sb;

  Decomposer(RewriterBase &rw, OnlineAttentionOp op, int64_t vl)
      : rw(rw), op(op), loc(op.getLoc()), detail(op), d(detail.dims()), VL(vl),
        sb(rw, op.getLoc(), vl) {
    B = d.batch;
    Hq = d.qHeads;
    G = d.groupSize();
    M = d.qLen;
    N = d.kvLen;
    D = d.headDim;
    Dv = d.vHeadDim;
    Mp = (M + VL - 1) / VL * VL;
    band = KeyBand::get(detail.maskKind());
  }

  Value idx(int64_t v) { return sb.idx(v); }
  Value fconst(OpBuilder &b, double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  float scale() { return static_cast<float>(detail.scale()); }

  RankedTensorType tensorType(ArrayRef<int64_t> shape, Type elt) {
    return RankedTensorType::get(shape, elt);
  }
  Value empty(ArrayRef<int64_t> shape, Type elt) {
    return tensor::EmptyOp::create(rw, loc, shape, elt);
  }
  Value filled(ArrayRef<int64_t> shape, double v) {
    return linalg::FillOp::create(rw, loc, ValueRange{fconst(rw, v)},
                                  ValueRange{empty(shape, rw.getF32Type())})
        .getResult(0);
  }
  /// source[offsets...] with the leading `drop` dimensions of size 1
  /// dropped from the result.
  Value slice(Value source, ArrayRef<OpFoldResult> offsets,
              ArrayRef<int64_t> sizes, unsigned drop) {
    auto t = cast<RankedTensorType>(source.getType());
    SmallVector<OpFoldResult> sz, strides(sizes.size(), rw.getIndexAttr(1));
    for (int64_t s : sizes)
      sz.push_back(rw.getIndexAttr(s));
    auto result = tensorType(sizes.drop_front(drop), t.getElementType());
    return tensor::ExtractSliceOp::create(rw, loc, result, source, offsets, sz,
                                          strides);
  }
  Value insert(Value source, Value dest, ArrayRef<OpFoldResult> offsets,
               ArrayRef<int64_t> sizes) {
    SmallVector<OpFoldResult> sz, strides(sizes.size(), rw.getIndexAttr(1));
    for (int64_t s : sizes)
      sz.push_back(rw.getIndexAttr(s));
    return tensor::InsertSliceOp::create(rw, loc, source, dest, offsets, sz,
                                         strides);
  }

  linalg::GenericOp generic(StringRef stage, TypeRange results, ValueRange ins,
                            ValueRange outs, ArrayRef<AffineMap> maps,
                            ArrayRef<IteratorType> iters,
                            function_ref<void(OpBuilder &, ValueRange)> body) {
    auto g = linalg::GenericOp::create(
        rw, loc, results, ins, outs, maps, iters,
        [&](OpBuilder &nb, Location, ValueRange args) { body(nb, args); });
    g->setAttr(kStageAttr, rw.getStringAttr(stage));
    g->setAttr(kStageLayoutAttr,
               rw.getStringAttr(keyLanes ? kKeyLanes : kQueryLanes));
    return g;
  }
  AffineMap map(unsigned dims, ArrayRef<AffineExpr> results) {
    return AffineMap::get(dims, 0, results, rw.getContext());
  }
  AffineExpr dim(unsigned i) { return rw.getAffineDimExpr(i); }
  AffineMap scalarMap(unsigned dims) { return map(dims, {}); }

  /// In-range test j in [lo, hi) inside a stage region.
  static Value inRange(OpBuilder &b, Location loc, Value j, Value lo,
                       Value hi) {
    return arith::AndIOp::create(
        b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j, lo),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j, hi));
  }

  /// One (batch, query head) of the tile as the stages see it: the head's
  /// key and value, its running state, the positions of row 0 (on the
  /// diagonal) and key 0, the last non-padding row and the keys [jLo, jHi)
  /// that some row sees.
  struct Head {
    Value bIdx, h;
    Value k2, v2, acc2, m1, l1;
    Value qOff, kOff, qLast, jLo, jHi;
  };

  /// The row statistics of a head, over `statRows` rows (Mp with queries on
  /// the lanes, padded with -inf max and 0 sum).
  struct RowStats {
    int64_t statRows;
    Value mNew, alpha, lScaled;
  };

  /// The query stage: QT [B][Hq][D][Mp] f32 = scale * Q^T, or with `pairs`
  /// QP [B][Hq][D/2][2 Mp] bf16; rows >= M are 0.
  Value buildQueryStage(Value query);

  /// The score stage on `st` of head `hd` (buildScoreElement: scale, bias,
  /// score_mod, tensor mask, mask_mod, with `withBand` the band test);
  /// returns `st` when it has nothing to do.
  Value buildScoreStage(const Head &hd, Value st, bool withBand);

  /// Slices the head out of the tile and asks VisibleKeys for its key range.
  Head beginHead(Value bIdx, Value h, Value acc4, Value max4, Value sum4);

  /// The body of a score contraction: yields acc + a * b in f32
  /// (block arguments a, b, acc; a and b extended from bf16 / f16).
  void yieldMulAdd(OpBuilder &b, ValueRange a);

  /// The scores stage: the Q K^T contraction in the tile's layout (keys on
  /// the lanes, or queries on the lanes as FMA, bf16 pairs or AMX).
  Value buildScoresStage(const Head &hd, Value qt);

  /// The score stage (buildScoreStage); with queries on the lanes, a tile
  /// inside the band skips the band test.
  Value buildMaskedScoreStage(const Head &hd, Value st);

  /// The max stage, then the alpha stage: m' = max(m, rowmax),
  /// alpha = exp(m - safe(m')), alpha * l.
  RowStats buildMaxAndAlphaStages(const Head &hd, Value st);

  /// The exp_sum stage: P = exp(S - safe(m')), l' = alpha l + sum_j P.
  /// Returns {P, l'}.
  std::pair<Value, Value> buildExpSumStage(const Head &hd, Value st,
                                           const RowStats &stats);

  /// The rescale stage acc = alpha * acc, then the pv stage acc += P V over
  /// the keys each row sees. Returns the new accumulator.
  Value buildRescaleAndPVStages(const Head &hd, Value probs,
                                const RowStats &stats);

  /// One (batch, query head) of the tile; returns the new acc, max, sum.
  SmallVector<Value> buildHead(Value qt, Value bIdx, Value h, Value acc4,
                               Value max4, Value sum4);
};

} // namespace cpu
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_CPU_CPUDECOMPOSER_H
