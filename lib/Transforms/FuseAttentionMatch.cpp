//===- FuseAttentionMatch.cpp - head splits, softmax, scale, GQA ----------===//
//
// The structural matchers of attn-fuse-attention (FuseAttentionMatch.h):
// head-split reshapes and batch matmuls, the softmax (linalg.softmax or its
// max / sub / exp / sum / div decomposition), the scale, and K / V repeated
// for GQA.
//
//===----------------------------------------------------------------------===//

#include "FuseAttentionMatch.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"

#include <cmath>

using namespace mlir;

namespace mlir {
namespace attn {
namespace fusion {

static bool isHeadSplit(ArrayRef<ReassociationIndices> r) {
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
Operation *yieldedOp(linalg::GenericOp g, unsigned result) {
  auto yield = cast<linalg::YieldOp>(g.getBody()->getTerminator());
  return yield.getOperand(result).getDefiningOp();
}

/// The rank-4, all-parallel generic on tensors with one output (identity
/// map) defining `v`, with `numInputs` inputs when given; null otherwise.
linalg::GenericOp parallelGeneric4(Value v,
                                   std::optional<unsigned> numInputs) {
  auto g = v.getDefiningOp<linalg::GenericOp>();
  if (!g || !g.hasPureTensorSemantics() || g.getNumDpsInits() != 1 ||
      (numInputs && g.getNumDpsInputs() != *numInputs) ||
      g.getNumLoops() != 4 || !allParallel(g) ||
      !g.getIndexingMapsArray().back().isIdentity())
    return nullptr;
  return g;
}

/// A rank-4 elementwise generic with identity maps on input 0 and the
/// output and `numInputs` inputs.
static bool isElementwise4(linalg::GenericOp g, unsigned numInputs) {
  return g && parallelGeneric4(g->getResult(0), numInputs) &&
         g.getIndexingMapsArray()[0].isIdentity();
}

bool isBlockArg(Value v, linalg::GenericOp g, unsigned operand) {
  auto arg = dyn_cast<BlockArgument>(v);
  return arg && arg.getOwner() == g.getBody() && arg.getArgNumber() == operand;
}

/// Whether input `i` of a rank-4 generic is a row value broadcast along d3:
/// map (d0, d1, d2) on [B, H, S], or (d0, d1, d2, 0) on [B, H, S, 1].
/// Returns the row tensor with a trailing-1 expand_shape peeled off.
static Value rowInput(linalg::GenericOp g, unsigned i) {
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
static bool isRowReduction(Value row, Value src, function_ref<bool(Value)> isInit) {
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

static bool isNegInf(Value v) {
  FloatAttr f;
  return matchPattern(v, m_Constant(&f)) && f.getValue().isInfinity() &&
         f.getValue().isNegative();
}
bool isZero(Value v) { return matchPattern(v, m_AnyZeroFloat()); }

/// The input number of `v` when it is the block argument of an input of
/// `g`, else -1.
int inputOf(linalg::GenericOp g, Value v) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg || arg.getOwner() != g.getBody() ||
      arg.getArgNumber() >= g.getNumDpsInputs())
    return -1;
  return arg.getArgNumber();
}

/// The value of a float scalar in the body of `g`: a constant, or the
/// argument of a rank-0 input that is a splat constant.
std::optional<APFloat> scalarConstant(linalg::GenericOp g, Value v) {
  FloatAttr f;
  if (matchPattern(v, m_Constant(&f)))
    return f.getValue();
  int i = inputOf(g, v);
  DenseFPElementsAttr d;
  if (i < 0 || g.getIndexingMapsArray()[i].getNumResults() != 0 ||
      !matchPattern(g.getDpsInputs()[i], m_Constant(&d)) || !d.isSplat())
    return std::nullopt;
  return d.getSplatValue<APFloat>();
}

bool isNegInfValue(const std::optional<APFloat> &x) {
  return x && x->isInfinity() && x->isNegative();
}

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

/// P = select(rowAllHidden, 0, P0), the zeroing of rows whose scores are all
/// -inf that torch's SDPA decomposition writes (attn's semantics already:
/// such a row gives 0): rowAllHidden an and-reduction over d3 from a fill of
/// true of (S == -inf) (possibly compared in f64). Returns P0 and that S, or
/// (p, null).
std::pair<Value, Value> withoutEmptyRowZeroing(Value p) {
  linalg::GenericOp g = parallelGeneric4(p, 3);
  if (!g)
    return {p, Value()};
  auto select = dyn_cast_or_null<arith::SelectOp>(yieldedOp(g));
  if (!select || !isBlockArg(select.getCondition(), g, 0) ||
      !isBlockArg(select.getTrueValue(), g, 1) ||
      !isBlockArg(select.getFalseValue(), g, 2) ||
      !g.getIndexingMapsArray()[2].isIdentity())
    return {p, Value()};
  DenseFPElementsAttr zeros;
  if (!matchPattern(g.getDpsInputs()[1], m_Constant(&zeros)) ||
      !zeros.isSplat() || !zeros.getSplatValue<APFloat>().isZero())
    return {p, Value()};
  Value rowAll = rowInput(g, 0);
  if (!rowAll)
    return {p, Value()};
  auto red = rowAll.getDefiningOp<linalg::GenericOp>();
  if (!red || red.getNumDpsInputs() != 1)
    return {p, Value()};
  Value hidden = red.getDpsInputs()[0];
  auto isTrue = [](Value v) { return matchPattern(v, m_One()); };
  if (!isRowReduction<arith::AndIOp>(rowAll, hidden, isTrue))
    return {p, Value()};
  // hidden = (S == -inf), S read through an identity map.
  auto cmpGeneric = hidden.getDefiningOp<linalg::GenericOp>();
  if (!isElementwise4(cmpGeneric, 1))
    return {p, Value()};
  auto cmp = dyn_cast_or_null<arith::CmpFOp>(yieldedOp(cmpGeneric));
  if (!cmp || cmp.getPredicate() != arith::CmpFPredicate::OEQ)
    return {p, Value()};
  Value lhs = cmp.getLhs();
  if (auto ext = lhs.getDefiningOp<arith::ExtFOp>())
    lhs = ext.getIn();
  if (!isBlockArg(lhs, cmpGeneric, 0) || !isNegInf(cmp.getRhs()))
    return {p, Value()};
  return {g.getDpsInputs()[2], cmpGeneric.getDpsInputs()[0]};
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

/// The repeat generic's input and G when `r` is a [B, Hkv, G, S, D]
/// broadcast copy of [B, Hkv, S, D] (input map (d0, d1, d3, d4)), else
/// (null, 1).
static std::pair<Value, int64_t> repeatSource(Value r);

/// K or V repeated for GQA / MQA as torch's repeat_kv writes it: a copy
/// generic broadcasting [B, Hkv, S, D] to [B, Hkv, G, S, D] collapsed
/// [[0], [1, 2], [3], [4]] to [B, Hkv * G, S, D]. Returns the unrepeated
/// tensor and G, or (v, 1).

std::pair<Value, int64_t> unrepeatedHeads(Value v) {
  auto c = v.getDefiningOp<tensor::CollapseShapeOp>();
  if (!c || c.getSrcType().getRank() != 5 ||
      c.getReassociationIndices() != Reassociation{{0}, {1, 2}, {3}, {4}})
    return {v, 1};
  auto [src, group] = repeatSource(c.getSrc());
  return src ? std::make_pair(src, group) : std::make_pair(v, int64_t(1));
}

/// The rank-4 [B, Hkv, S, D] operand and GQA factor of a [B*H, S, D]
/// batch_matmul operand: a head-split collapse of a rank-4 tensor (itself
/// possibly a repeat), or torch's direct collapse [[0, 1, 2], [3], [4]] of a
/// [B, Hkv, G, S, D] repeat.
std::pair<Value, int64_t> uncollapseHeadsGQA(Value v3) {
  if (Value v4 = uncollapseHeads(v3))
    return unrepeatedHeads(v4);
  auto c = v3.getDefiningOp<tensor::CollapseShapeOp>();
  if (!c || c.getSrcType().getRank() != 5 ||
      c.getReassociationIndices() != Reassociation{{0, 1, 2}, {3}, {4}})
    return {Value(), 1};
  return repeatSource(c.getSrc());
}

static std::pair<Value, int64_t> repeatSource(Value r) {
  auto g = r.getDefiningOp<linalg::GenericOp>();
  if (!g || !g.hasPureTensorSemantics() || g.getNumDpsInputs() != 1 ||
      g.getNumDpsInits() != 1 || g.getNumLoops() != 5 || !allParallel(g))
    return {Value(), 1};
  MLIRContext *ctx = g.getContext();
  auto d = [&](unsigned k) { return getAffineDimExpr(k, ctx); };
  SmallVector<AffineMap> maps = g.getIndexingMapsArray();
  auto yield = cast<linalg::YieldOp>(g.getBody()->getTerminator());
  if (maps[0] != AffineMap::get(5, 0, {d(0), d(1), d(3), d(4)}, ctx) ||
      !maps[1].isIdentity() || !isBlockArg(yield.getOperand(0), g, 0) ||
      g.getBody()->getOperations().size() != 1)
    return {Value(), 1};
  int64_t group = cast<RankedTensorType>(r.getType()).getDimSize(2);
  if (ShapedType::isDynamic(group))
    return {Value(), 1};
  return {g.getDpsInputs()[0], group};
}

} // namespace fusion
} // namespace attn
} // namespace mlir
