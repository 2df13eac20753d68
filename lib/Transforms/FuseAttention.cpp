//===- FuseAttention.cpp - find attention in linalg on tensors ------------===//
//
// attn-fuse-attention: replaces unfused scaled dot-product attention, as
// frameworks export it to linalg on tensors (torch-mlir's
// `linalg-on-tensors`), by one attn.attention, which the attn pipelines then
// tile and fuse (the score matrix is never materialised). Recognised, from
// the P V contraction up:
//
//   out4 = expand_shape(batch_matmul(collapse(P), collapse(V)))   [B, H, Sq, Dv]
//   P    = softmax over the last dimension of S, either linalg.softmax or
//          decomposed: E / rowsum(E) with E = exp(S - rowmax(S)) or exp(S)
//          (the row statistics as reductions over d3 from fills of -inf / 0,
//          read back through a broadcast map, after an optional
//          expand_shape to [.., 1]; torch's max with an unused argmax result
//          is accepted)
//   S    = T, T / c or T * c for a constant c (the scale: 1/c or c)
//   T    = expand_shape(batch_matmul(collapse(Q), collapse(K^T)))   [B, H, Sq, Sk]
//   K^T  = linalg.transpose(K, [0, 1, 3, 2])
//
// with the head split collapses [[0, 1], [2], [3]] of rank-4 Q, K, V of one
// float element type and Hq == Hkv. Anything else is left alone: a softmax
// over another dimension, a contraction over the wrong dimension, a scale
// that is not a constant, statistics of another tensor. Masks (causal from
// index comparisons, boolean or additive tensors) and GQA repeats are not
// recognised yet.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/Passes.h"
#include "dialect/attn/IR/AttnDialect.h"
#include "dialect/attn/IR/AttnOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_FUSEATTENTIONPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

namespace {

using Reassociation = SmallVector<ReassociationIndices>;

bool isHeadSplit(ArrayRef<ReassociationIndices> r) {
  return r.size() == 3 && r[0] == ReassociationIndices{0, 1} &&
         r[1] == ReassociationIndices{2} && r[2] == ReassociationIndices{3};
}

/// The rank-4 tensor [B, H, S, D] that `v` collapses to [B*H, S, D].
Value uncollapseHeads(Value v) {
  auto c = v.getDefiningOp<tensor::CollapseShapeOp>();
  if (!c || c.getSrcType().getRank() != 4 ||
      !isHeadSplit(c.getReassociationIndices()))
    return Value();
  return c.getSrc();
}

/// The rank-3 batch_matmul result `v` expands to [B, H, S, N], with its
/// head-split expansion.
linalg::BatchMatmulOp expandedBatchMatmul(Value v) {
  auto e = v.getDefiningOp<tensor::ExpandShapeOp>();
  if (!e || e.getResultType().getRank() != 4 ||
      !isHeadSplit(e.getReassociationIndices()))
    return nullptr;
  auto mm = e.getSrc().getDefiningOp<linalg::BatchMatmulOp>();
  // Plain batch_matmul (no transposing indexing maps), accumulating into a
  // fill of 0.
  if (!mm || !mm.hasPureTensorSemantics() ||
      mm.hasUserDefinedMaps())
    return nullptr;
  auto fill = mm.getDpsInits()[0].getDefiningOp<linalg::FillOp>();
  if (!fill || !matchPattern(fill.getInputs()[0], m_AnyZeroFloat()))
    return nullptr;
  return mm;
}

bool allParallel(linalg::GenericOp g) {
  return llvm::all_of(g.getIteratorTypesArray(), [](utils::IteratorType t) {
    return t == utils::IteratorType::parallel;
  });
}

/// The one op computing the yielded value of a single-result generic.
Operation *yieldedOp(linalg::GenericOp g, unsigned result = 0) {
  auto yield = cast<linalg::YieldOp>(g.getBody()->getTerminator());
  return yield.getOperand(result).getDefiningOp();
}

/// A rank-4 elementwise generic with identity maps on input 0 and the
/// output and `numInputs` inputs.
bool isElementwise4(linalg::GenericOp g, unsigned numInputs) {
  if (!g || !g.hasPureTensorSemantics() || g.getNumDpsInputs() != numInputs ||
      g.getNumDpsInits() != 1 || g.getNumLoops() != 4 || !allParallel(g))
    return false;
  SmallVector<AffineMap> maps = g.getIndexingMapsArray();
  return maps[0].isIdentity() && maps.back().isIdentity();
}

bool isBlockArg(Value v, linalg::GenericOp g, unsigned operand) {
  auto arg = dyn_cast<BlockArgument>(v);
  return arg && arg.getOwner() == g.getBody() && arg.getArgNumber() == operand;
}

/// Whether input `i` of a rank-4 generic is a row value broadcast along d3:
/// map (d0, d1, d2) on [B, H, S], or (d0, d1, d2, 0) on [B, H, S, 1].
/// Returns the row tensor with a trailing-1 expand_shape peeled off.
Value rowInput(linalg::GenericOp g, unsigned i) {
  MLIRContext *ctx = g.getContext();
  AffineMap map = g.getIndexingMapsArray()[i];
  auto d = [&](unsigned k) { return getAffineDimExpr(k, ctx); };
  AffineMap rank3 = AffineMap::get(4, 0, {d(0), d(1), d(2)}, ctx);
  AffineMap rank4 = AffineMap::get(
      4, 0, {d(0), d(1), d(2), getAffineConstantExpr(0, ctx)}, ctx);
  Value v = g.getDpsInputs()[i];
  if (map == rank4) {
    auto e = v.getDefiningOp<tensor::ExpandShapeOp>();
    if (e && e.getSrcType().getRank() == 3 &&
        e.getReassociationIndices() ==
            Reassociation{{0}, {1}, {2, 3}})
      return e.getSrc();
    return v; // [B, H, S, 1] itself
  }
  return map == rank3 ? v : Value();
}

/// Whether `row` is a reduction over d3 of `src` (identity input map) with
/// `combine(in, acc)` from a fill of `init`; a row value of rank 3, or of
/// rank 4 with a trailing 1 (map (d0, d1, d2, 0)).
template <typename CombineOp>
bool isRowReduction(Value row, Value src, function_ref<bool(Value)> isInit) {
  auto g = row.getDefiningOp<linalg::GenericOp>();
  if (!g || !g.hasPureTensorSemantics() || g.getNumDpsInputs() != 1 ||
      g.getDpsInputs()[0] != src || g.getNumLoops() != 4)
    return false;
  SmallVector<utils::IteratorType> its = g.getIteratorTypesArray();
  if (its[0] != utils::IteratorType::parallel ||
      its[1] != utils::IteratorType::parallel ||
      its[2] != utils::IteratorType::parallel ||
      its[3] != utils::IteratorType::reduction ||
      !g.getIndexingMapsArray()[0].isIdentity())
    return false;
  unsigned result = cast<OpResult>(row).getResultNumber();
  MLIRContext *ctx = g.getContext();
  auto d = [&](unsigned k) { return getAffineDimExpr(k, ctx); };
  AffineMap outMap = g.getIndexingMapsArray()[1 + result];
  if (outMap != AffineMap::get(4, 0, {d(0), d(1), d(2)}, ctx) &&
      outMap != AffineMap::get(4, 0, {d(0), d(1), d(2),
                                      getAffineConstantExpr(0, ctx)},
                               ctx))
    return false;
  auto fill = g.getDpsInits()[result].getDefiningOp<linalg::FillOp>();
  if (!fill || !isInit(fill.getInputs()[0]))
    return false;
  auto combine = dyn_cast_or_null<CombineOp>(yieldedOp(g, result));
  if (!combine)
    return false;
  Value a = combine->getOperand(0), b = combine->getOperand(1);
  unsigned acc = g.getNumDpsInputs() + result;
  return (isBlockArg(a, g, 0) && isBlockArg(b, g, acc)) ||
         (isBlockArg(b, g, 0) && isBlockArg(a, g, acc));
}

bool isNegInf(Value v) {
  FloatAttr f;
  return matchPattern(v, m_Constant(&f)) && f.getValue().isInfinity() &&
         f.getValue().isNegative();
}
bool isZero(Value v) { return matchPattern(v, m_AnyZeroFloat()); }

/// S for P = softmax(S) over d3, or null.
Value softmaxInput(Value p) {
  if (auto sm = p.getDefiningOp<linalg::SoftmaxOp>())
    return sm.getDimension() == 3 && sm.getInputOperandType().getRank() == 4
               ? sm.getInput()
               : Value();
  // P = E / rowsum(E)
  auto div = p.getDefiningOp<linalg::GenericOp>();
  if (!isElementwise4(div, 2))
    return Value();
  auto divOp = dyn_cast_or_null<arith::DivFOp>(yieldedOp(div));
  if (!divOp || !isBlockArg(divOp.getLhs(), div, 0) ||
      !isBlockArg(divOp.getRhs(), div, 1))
    return Value();
  Value e = div.getDpsInputs()[0];
  Value sum = rowInput(div, 1);
  if (!sum || !isRowReduction<arith::AddFOp>(sum, e, isZero))
    return Value();
  // E = exp(X)
  auto exp = e.getDefiningOp<linalg::GenericOp>();
  if (!isElementwise4(exp, 1))
    return Value();
  auto expOp = dyn_cast_or_null<math::ExpOp>(yieldedOp(exp));
  if (!expOp || !isBlockArg(expOp.getOperand(), exp, 0))
    return Value();
  Value x = exp.getDpsInputs()[0];
  // X = S - rowmax(S), or S itself.
  auto sub = x.getDefiningOp<linalg::GenericOp>();
  if (isElementwise4(sub, 2))
    if (auto subOp = dyn_cast_or_null<arith::SubFOp>(yieldedOp(sub));
        subOp && isBlockArg(subOp.getLhs(), sub, 0) &&
        isBlockArg(subOp.getRhs(), sub, 1)) {
      Value s = sub.getDpsInputs()[0];
      Value max = rowInput(sub, 1);
      if (max && (isRowReduction<arith::MaximumFOp>(max, s, isNegInf) ||
                  isRowReduction<arith::MaxNumFOp>(max, s, isNegInf)))
        return s;
      return Value();
    }
  return x;
}

/// T and the scale for S = T, T / c or T * c (c a float constant).
std::pair<Value, double> unscaled(Value s) {
  auto g = s.getDefiningOp<linalg::GenericOp>();
  if (!isElementwise4(g, 1))
    return {s, 1.0};
  Operation *op = yieldedOp(g);
  if (!op || !isa<arith::DivFOp, arith::MulFOp>(op))
    return {s, 1.0};
  Value a = op->getOperand(0), b = op->getOperand(1);
  FloatAttr c;
  if (isBlockArg(a, g, 0) && matchPattern(b, m_Constant(&c))) {
  } else if (isa<arith::MulFOp>(op) && isBlockArg(b, g, 0) &&
             matchPattern(a, m_Constant(&c))) {
  } else {
    return {Value(), 0.0};
  }
  double v = c.getValueAsDouble();
  if (isa<arith::DivFOp>(op))
    v = 1.0 / v;
  if (!std::isfinite(v))
    return {Value(), 0.0};
  return {g.getDpsInputs()[0], v};
}

struct FuseAttentionPattern : OpRewritePattern<tensor::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::ExpandShapeOp out,
                                PatternRewriter &rewriter) const override {
    // out = P V
    linalg::BatchMatmulOp pv = expandedBatchMatmul(out.getResult());
    if (!pv)
      return failure();
    Value p = uncollapseHeads(pv.getDpsInputs()[0]);
    Value v = uncollapseHeads(pv.getDpsInputs()[1]);
    if (!p || !v)
      return rewriter.notifyMatchFailure(out, "P V operands are not head "
                                              "collapses");
    Value s = softmaxInput(p);
    if (!s)
      return rewriter.notifyMatchFailure(out, "no softmax over the last "
                                              "dimension");
    auto [t, scale] = unscaled(s);
    if (!t)
      return rewriter.notifyMatchFailure(out, "the scale is not a constant");
    // T = Q K^T
    linalg::BatchMatmulOp qk = expandedBatchMatmul(t);
    if (!qk)
      return rewriter.notifyMatchFailure(out, "scores are not Q K^T");
    Value q = uncollapseHeads(qk.getDpsInputs()[0]);
    Value kt = uncollapseHeads(qk.getDpsInputs()[1]);
    auto transpose = kt ? kt.getDefiningOp<linalg::TransposeOp>() : nullptr;
    if (!q || !transpose ||
        transpose.getPermutation() != ArrayRef<int64_t>{0, 1, 3, 2})
      return rewriter.notifyMatchFailure(out, "Q K^T does not contract the "
                                              "head dimension of K");
    Value k = transpose.getInput();
    auto qt = cast<RankedTensorType>(q.getType());
    auto kType = cast<RankedTensorType>(k.getType());
    auto vt = cast<RankedTensorType>(v.getType());
    auto outType = cast<RankedTensorType>(out.getResultType());
    Type elt = qt.getElementType();
    if (!isa<FloatType>(elt) || kType.getElementType() != elt ||
        vt.getElementType() != elt || outType.getElementType() != elt)
      return rewriter.notifyMatchFailure(out, "mixed element types");
    // [B, H, Sq, D] x [B, H, Sk, D] x [B, H, Sk, Dv] -> [B, H, Sq, Dv].
    if (kType.getDimSize(0) != qt.getDimSize(0) ||
        kType.getDimSize(1) != qt.getDimSize(1) ||
        vt.getShape().take_front(3) != kType.getShape().take_front(3) ||
        outType.getShape() != ArrayRef<int64_t>{qt.getDimSize(0),
                                                qt.getDimSize(1),
                                                qt.getDimSize(2),
                                                vt.getDimSize(3)})
      return rewriter.notifyMatchFailure(out, "shapes do not agree");
    if (outType.hasStaticShape() == false)
      return rewriter.notifyMatchFailure(out, "dynamic output shape");
    Location loc = out.getLoc();
    Value init = tensor::EmptyOp::create(rewriter, loc, outType.getShape(), elt);
    auto attention = AttentionOp::create(
        rewriter, loc, TypeRange{outType}, q, k, v, Value(), Value(), Value(),
        ValueRange{}, Value(), Value(),
        rewriter.getF32FloatAttr(static_cast<float>(scale)), nullptr,
        ValueRange{init});
    rewriter.replaceOp(out, attention->getResults());
    return success();
  }
};

struct FuseAttentionPass
    : attn::impl::FuseAttentionPassBase<FuseAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseAttentionPattern>(&getContext());
    // The unfused ops left without users go with it (the greedy driver
    // erases dead pure ops).
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
