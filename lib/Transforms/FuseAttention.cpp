//===- FuseAttention.cpp - find attention in linalg on tensors ------------===//
//
// attn-fuse-attention: replaces unfused scaled dot-product attention, as
// frameworks export it to linalg on tensors (torch-mlir's
// `linalg-on-tensors`), by one attn.attention, which the attn pipelines then
// tile and fuse (the score matrix is never materialised). Recognised, from
// the P V contraction up:
//
//   out4 = expand_shape(batch_matmul(collapse(P), collapse(V)))   [B, H, Sq, Dv]
//   P    = softmax over the last dimension of S (rows whose scores are all
//          -inf may be zeroed explicitly, as torch's SDPA decomposition
//          does: attn's semantics), either linalg.softmax or
//          decomposed: E / rowsum(E) with E = exp(S - rowmax(S)) or exp(S)
//          (the row statistics as reductions over d3 from fills of -inf / 0,
//          read back through a broadcast map, after an optional
//          expand_shape to [.., 1]; torch's max with an unused argmax result
//          is accepted)
//   S    = T, T / c or T * c for a constant c (the scale: 1/c or c; also
//          applied to Q or K instead, q * c or q / c before Q K^T)
//   T    = expand_shape(batch_matmul(collapse(Q), collapse(K^T)))   [B, H, Sq, Sk]
//   K^T  = linalg.transpose(K, [0, 1, 3, 2]), or linalg.transpose(X,
//          [0, 2, 3, 1]) of the [B, Sk, H, D] projection (BERT's export), for
//          which K = transpose(X, [0, 2, 1, 3]) is built
//
// with the head split collapses [[0, 1], [2], [3]] of rank-4 Q, K, V of one
// float element type and Hq == Hkv (or a GQA repeat, below). Between the scale and the softmax (or
// before the scale) a mask may hide scores: select(hidden, -inf, S) or
// select(keep, S, -inf) with an i1 [Sq, Sk] mask (broadcast over batch and
// heads) that is computed from index values and constants (torch's
// tril / triu / arange comparisons, or a constant tensor). The mask is
// evaluated for the static shape and becomes #attn.causal or
// #attn.sliding_window (top-left or bottom-right) when it is one; any other
// mask broadcastable to [B, H, Sq, Sk] (a function argument such as a
// padding mask, a constant that is no band) becomes the `mask` operand
// (keep = !hidden). An additive bias after the scale (S = scale * Q K^T +
// bias, the bias broadcastable likewise) becomes the `bias` operand.
// Anything else is left alone: a softmax over another dimension, a
// contraction over the wrong dimension, a scale that is not a constant,
// statistics of another tensor, a bias added before the scale. K and V
// repeated for GQA / MQA (torch's repeat_kv: expand to [B, Hkv, G, S, D],
// reshape to [B, Hkv * G, S, D]) are read unrepeated, as attn's GQA.
//
//===----------------------------------------------------------------------===//

#include "MaskEvaluation.h"
#include "attn/Transforms/Passes.h"
#include "dialect/attn/IR/AttnDialect.h"
#include "dialect/attn/IR/AttnOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>
#include <limits>
#include <vector>

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

/// The rank-4, all-parallel generic on tensors with one output (identity
/// map) defining `v`, with `numInputs` inputs when given; null otherwise.
linalg::GenericOp parallelGeneric4(Value v,
                                   std::optional<unsigned> numInputs = {}) {
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
bool isElementwise4(linalg::GenericOp g, unsigned numInputs) {
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

/// Whether a rank-4 generic operand of type `t` read through `map` is
/// broadcast to the iteration space as attn's mask and bias operands are:
/// result i is d_i, or the constant 0 where dimension i has size 1.
bool isBroadcastOperand(AffineMap map, RankedTensorType t) {
  if (map.getNumResults() != 4 || t.getRank() != 4)
    return false;
  for (auto [i, e] : llvm::enumerate(map.getResults())) {
    if (auto dim = dyn_cast<AffineDimExpr>(e)) {
      if (dim.getPosition() != i)
        return false;
    } else if (auto c = dyn_cast<AffineConstantExpr>(e)) {
      if (c.getValue() != 0 || t.getDimSize(i) != 1)
        return false;
    } else {
      return false;
    }
  }
  return true;
}

/// Whether operand `t` of the rank-4 elementwise generic `g` has every key
/// of its iteration space: attn's mask and bias operands broadcast over
/// batch, heads and query rows ([B|1, Hq|1, Sq|1, Sk]), never over keys.
bool spansKeys(linalg::GenericOp g, RankedTensorType t) {
  SmallVector<int64_t> loops = g.getStaticLoopRanges();
  return loops.size() == 4 && t.getRank() >= 2 &&
         t.getDimSize(t.getRank() - 1) == loops[3];
}

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
bool hasEmptyRow(ArrayRef<int64_t> keep, int64_t sq, int64_t sk) {
  for (int64_t i = 0; i < sq; ++i)
    if (llvm::none_of(keep.slice(i * sk, sk), [](int64_t x) { return x; }))
      return true;
  return false;
}

/// S = select(hidden, -inf, T) or select(keep, T, -inf) over a rank-4
/// elementwise generic, the mask broadcast over batch and heads ([Sq, Sk]
/// through (d2, d3), or a rank-4 broadcast operand) and -inf a constant or
/// a rank-0 constant input. A mask that evaluates (evaluateIntTensor) to a band
/// gives its kind, read at the full [Sq, Sk] of the scores (a mask broadcast
/// over query rows or keys is expanded first); any other mask becomes the
/// tensor operand, which must have every key (else: no match).
std::optional<MaskMatch> matchMask(Value s, EvaluationBudget &budget) {
  linalg::GenericOp g = parallelGeneric4(s);
  if (!g)
    return std::nullopt;
  auto select = dyn_cast_or_null<arith::SelectOp>(yieldedOp(g));
  if (!select)
    return std::nullopt;
  int cond = inputOf(g, select.getCondition());
  Value tv = select.getTrueValue(), fv = select.getFalseValue();
  bool hiddenFirst = isNegInfValue(scalarConstant(g, tv));
  int scores = inputOf(g, hiddenFirst ? fv : tv);
  if (cond < 0 || scores < 0 ||
      !(hiddenFirst || isNegInfValue(scalarConstant(g, fv))) ||
      !g.getIndexingMapsArray()[scores].isIdentity())
    return std::nullopt;
  MLIRContext *ctx = g.getContext();
  AffineMap maskMap = g.getIndexingMapsArray()[cond];
  auto d = [&](unsigned k) { return getAffineDimExpr(k, ctx); };
  Value mask = g.getDpsInputs()[cond];
  auto maskType = cast<RankedTensorType>(mask.getType());
  bool broadcast2d = maskMap == AffineMap::get(4, 0, {d(2), d(3)}, ctx);
  if (!broadcast2d && !isBroadcastOperand(maskMap, maskType))
    return std::nullopt;
  MaskMatch match;
  match.scores = g.getDpsInputs()[scores];
  bool overBudget = false;
  FailureOr<IntTensor> m = evaluateIntTensor(mask, &overBudget);
  if (overBudget) {
    budget.exceededAt = g;
    return std::nullopt;
  }
  bool perBatchOrHead = !broadcast2d && (maskType.getDimSize(0) != 1 ||
                                         maskType.getDimSize(1) != 1);
  if (succeeded(m) && !perBatchOrHead) {
    // The mask as the scores see it: [Sq, Sk], a size-1 query or key
    // dimension of the mask broadcast.
    SmallVector<int64_t> loops = g.getStaticLoopRanges();
    int64_t sq = loops[2], sk = loops[3];
    int64_t mq = maskType.getDimSize(maskType.getRank() - 2);
    int64_t mk = maskType.getDimSize(maskType.getRank() - 1);
    std::vector<int64_t> keep(sq * sk);
    for (int64_t i = 0; i < sq; ++i)
      for (int64_t j = 0; j < sk; ++j) {
        int64_t x = m->data[(mq == 1 ? 0 : i) * mk + (mk == 1 ? 0 : j)];
        keep[i * sk + j] = hiddenFirst ? x == 0 : x != 0;
      }
    // A mask that keeps everything hides nothing.
    if (llvm::all_of(keep, [](int64_t x) { return x != 0; }))
      return match;
    match.emptyRow = hasEmptyRow(keep, sq, sk);
    match.kind = classifyBand(ctx, keep, sq, sk);
    if (match.kind)
      return match;
    // Not a band: the constant mask is the tensor operand.
  }
  if (!spansKeys(g, maskType))
    return std::nullopt;
  // A tensor operand; hidden = !keep (torch's masked_fill(~keep, -inf))
  // is undone by reading keep itself.
  match.tensor = mask;
  match.invert = hiddenFirst;
  if (hiddenFirst)
    if (auto inv = mask.getDefiningOp<linalg::GenericOp>();
        inv && inv.hasPureTensorSemantics() && inv.getNumDpsInputs() == 1 &&
        inv.getNumDpsInits() == 1 && allParallel(inv) &&
        llvm::all_of(inv.getIndexingMapsArray(),
                     [](AffineMap m) { return m.isIdentity(); }))
      if (auto x = dyn_cast_or_null<arith::XOrIOp>(yieldedOp(inv));
          x && ((isBlockArg(x.getLhs(), inv, 0) &&
                 matchPattern(x.getRhs(), m_One())) ||
                (isBlockArg(x.getRhs(), inv, 0) &&
                 matchPattern(x.getLhs(), m_One())))) {
        match.tensor = inv.getDpsInputs()[0];
        match.invert = false;
      }
  match.expand2d = broadcast2d;
  return match;
}

/// S = T + bias (either order) over a rank-4 elementwise generic with the
/// bias a float rank-4 broadcast operand or an [Sq, Sk] tensor read through
/// (d2, d3) (expanded to [1, 1, Sq, Sk] for the op).
std::pair<Value, Value> unbiased(Value s) {
  linalg::GenericOp g = parallelGeneric4(s, 2);
  if (!g)
    return {Value(), Value()};
  auto add = dyn_cast_or_null<arith::AddFOp>(yieldedOp(g));
  if (!add)
    return {Value(), Value()};
  SmallVector<AffineMap> maps = g.getIndexingMapsArray();
  for (unsigned si : {0u, 1u}) {
    unsigned bi = 1 - si;
    if (!maps[si].isIdentity() ||
        !((isBlockArg(add.getLhs(), g, si) && isBlockArg(add.getRhs(), g, bi)) ||
          (isBlockArg(add.getRhs(), g, si) && isBlockArg(add.getLhs(), g, bi))))
      continue;
    Value bias = g.getDpsInputs()[bi];
    auto bt = dyn_cast<RankedTensorType>(bias.getType());
    MLIRContext *ctx = g.getContext();
    AffineMap lastTwo = AffineMap::get(
        4, 0, {getAffineDimExpr(2, ctx), getAffineDimExpr(3, ctx)}, ctx);
    if (bt && isa<FloatType>(bt.getElementType()) &&
        spansKeys(g, bt) &&
        (isBroadcastOperand(maps[bi], bt) ||
         (bt.getRank() == 2 && maps[bi] == lastTwo)))
      return {g.getDpsInputs()[si], bias};
  }
  return {Value(), Value()};
}

/// For an additive mask of 0 and -inf (torch's SDPA decomposition writes
/// causal as S + select(keep, 0, -inf)): the keep mask, evaluated, and its
/// [Sq, Sk] shape; nullopt for any other bias.
std::optional<IntTensor> additiveMaskKeep(Value bias,
                                          EvaluationBudget &budget) {
  auto g = bias.getDefiningOp<linalg::GenericOp>();
  if (!g || !g.hasPureTensorSemantics() || g.getNumDpsInits() != 1 ||
      !allParallel(g) || !g.getIndexingMapsArray().back().isIdentity())
    return std::nullopt;
  auto select = dyn_cast_or_null<arith::SelectOp>(yieldedOp(g));
  if (!select)
    return std::nullopt;
  std::optional<APFloat> t = scalarConstant(g, select.getTrueValue());
  std::optional<APFloat> f = scalarConstant(g, select.getFalseValue());
  auto isZeroOrNegInf = [](const std::optional<APFloat> &x) {
    return x && (x->isZero() || isNegInfValue(x));
  };
  int cond = inputOf(g, select.getCondition());
  if (!isZeroOrNegInf(t) || !isZeroOrNegInf(f) || cond < 0 ||
      !g.getIndexingMapsArray()[cond].isIdentity())
    return std::nullopt;
  bool overBudget = false;
  FailureOr<IntTensor> c =
      evaluateIntTensor(g.getDpsInputs()[cond], &overBudget);
  if (overBudget)
    budget.exceededAt = g;
  if (failed(c) || c->shape.size() != 2)
    return std::nullopt;
  IntTensor keep = *c;
  for (int64_t &x : keep.data)
    x = (x ? t : f)->isZero();
  return keep;
}

/// K or V repeated for GQA / MQA as torch's repeat_kv writes it: a copy
/// generic broadcasting [B, Hkv, S, D] to [B, Hkv, G, S, D] (input map
/// (d0, d1, d3, d4)) collapsed [[0], [1, 2], [3], [4]] to [B, Hkv * G, S, D].
/// Returns the unrepeated tensor and G, or (v, 1).
/// The repeat generic's input and G when `r` is such a [B, Hkv, G, S, D]
/// broadcast copy, else (null, 1).
std::pair<Value, int64_t> repeatSource(Value r);

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

std::pair<Value, int64_t> repeatSource(Value r) {
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

struct FuseAttentionPattern : OpRewritePattern<tensor::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;
  /// Masks whose evaluation was over budget, already reported.
  mutable llvm::SmallPtrSet<Operation *, 4> reported;
  LogicalResult matchAndRewrite(tensor::ExpandShapeOp out,
                                PatternRewriter &rewriter) const override {
    // out = P V
    linalg::BatchMatmulOp pv = expandedBatchMatmul(out.getResult());
    if (!pv)
      return failure();
    Value p = uncollapseHeads(pv.getDpsInputs()[0]);
    auto [v, vGroup] = uncollapseHeadsGQA(pv.getDpsInputs()[1]);
    if (!p || !v)
      return rewriter.notifyMatchFailure(out, "P V operands are not head "
                                              "collapses");
    auto [p0, zeroedScores] = withoutEmptyRowZeroing(p);
    Value s = softmaxInput(p0);
    if (!s)
      return rewriter.notifyMatchFailure(out, "no softmax over the last "
                                              "dimension");
    if (zeroedScores && zeroedScores != s)
      return rewriter.notifyMatchFailure(out, "rows zeroed by another "
                                              "tensor's -inf");
    // Between the scale and the softmax: masks and one additive bias (the
    // bias is added to the scaled scores); a mask may also come before the
    // scale (masking commutes with scaling).
    std::optional<MaskMatch> mask;
    Value bias;
    EvaluationBudget budget;
    for (int step = 0; step < 3 && !budget.exceededAt; ++step) {
      if (!mask)
        if (std::optional<MaskMatch> m = matchMask(s, budget)) {
          mask = m;
          s = m->scores;
          continue;
        }
      if (!bias)
        if (auto [scores, b] = unbiased(s); scores) {
          s = scores;
          // An additive 0 / -inf mask that is a band is the mask kind.
          if (std::optional<IntTensor> keep = additiveMaskKeep(b, budget);
              keep && !mask) {
            if (MaskKindAttrInterface kind = classifyBand(
                    getContext(), keep->data, keep->shape[0], keep->shape[1])) {
              mask = MaskMatch{scores, kind, Value(), false, false};
              continue;
            }
            if (hasEmptyRow(keep->data, keep->shape[0], keep->shape[1]) &&
                !zeroedScores)
              return rewriter.notifyMatchFailure(
                  out, "a constant -inf bias hides a whole row (NaN unfused)");
          }
          bias = b;
          continue;
        }
      break;
    }
    auto [t, scale] = unscaled(s);
    if (t && !mask && !budget.exceededAt)
      if (std::optional<MaskMatch> m = matchMask(t, budget)) {
        mask = m;
        t = m->scores;
      }
    if (budget.exceededAt) {
      // Said once per mask: the greedy driver may try the pattern again.
      if (reported.insert(budget.exceededAt).second)
        budget.exceededAt->emitRemark()
            << "attn-fuse-attention: this mask is too large to evaluate (more "
               "than "
            << kMaxMaskEvaluationSteps << " element steps or "
            << kMaxMaskEvaluationElements
            << " elements held); the attention is left unfused";
      return rewriter.notifyMatchFailure(out, "mask evaluation over budget");
    }
    if (!t)
      return rewriter.notifyMatchFailure(out, "the scale is not a constant");
    // attn.attention gives 0 for a row with no visible key; the export gives
    // NaN unless it zeroes such rows itself (torch's SDPA decomposition).
    if (mask && mask->emptyRow && !zeroedScores)
      return rewriter.notifyMatchFailure(out, "a constant mask hides a whole "
                                              "row (NaN unfused)");
    // T = Q K^T
    linalg::BatchMatmulOp qk = expandedBatchMatmul(t);
    if (!qk)
      return rewriter.notifyMatchFailure(out, "scores are not Q K^T");
    Value q = uncollapseHeads(qk.getDpsInputs()[0]);
    Value kt = uncollapseHeads(qk.getDpsInputs()[1]);
    // A constant scale of K^T (torch's SDPA decomposition scales both Q and
    // K^T by sqrt(scale)).
    if (kt)
      if (auto [unscaledKt, factor] = unscaled(kt); unscaledKt && unscaledKt != kt) {
        kt = unscaledKt;
        scale *= factor;
      }
    auto transpose = kt ? kt.getDefiningOp<linalg::TransposeOp>() : nullptr;
    // K^T from K [B, H, Sk, D] ([0, 1, 3, 2]) or, with the head split folded
    // in as BERT's export has it, from [B, Sk, H, D] ([0, 2, 3, 1]).
    bool fromSequenceMajor =
        transpose && transpose.getPermutation() == ArrayRef<int64_t>{0, 2, 3, 1};
    if (!q || !transpose ||
        (transpose.getPermutation() != ArrayRef<int64_t>{0, 1, 3, 2} &&
         !fromSequenceMajor))
      return rewriter.notifyMatchFailure(out, "Q K^T does not contract the "
                                              "head dimension of K");
    // A constant scale applied to the query or the key instead (or as well).
    for (Value *operand : {&q}) {
      auto [unscaledOperand, factor] = unscaled(*operand);
      if (unscaledOperand && unscaledOperand != *operand) {
        *operand = unscaledOperand;
        scale *= factor;
      }
    }
    // GQA / MQA: K and V repeated by one factor are read unrepeated.
    auto [kScaled, kGroup] = fromSequenceMajor
                                 ? std::make_pair(transpose.getInput(),
                                                  int64_t(1))
                                 : unrepeatedHeads(transpose.getInput());
    Value k = kScaled;
    if (auto [unscaledKey, factor] = unscaled(k);
        unscaledKey && unscaledKey != k) {
      k = unscaledKey;
      scale *= factor;
    }
    if (kGroup != vGroup)
      return rewriter.notifyMatchFailure(out, "K and V are repeated "
                                              "differently");
    auto qt = cast<RankedTensorType>(q.getType());
    auto kType = cast<RankedTensorType>(k.getType());
    if (fromSequenceMajor) // K in [B, H, Sk, D], built below
      kType = RankedTensorType::get({kType.getDimSize(0), kType.getDimSize(2),
                                     kType.getDimSize(1), kType.getDimSize(3)},
                                    kType.getElementType());
    auto vt = cast<RankedTensorType>(v.getType());
    auto outType = cast<RankedTensorType>(out.getResultType());
    if (!qt.hasStaticShape() || !kType.hasStaticShape() ||
        !vt.hasStaticShape() || !outType.hasStaticShape())
      return rewriter.notifyMatchFailure(out, "dynamic shapes");
    Type elt = qt.getElementType();
    // The element types attn.attention takes (f64 and others stay unfused).
    auto isAttnFloat = [](Type t) { return t.isF32() || t.isF16() || t.isBF16(); };
    if (bias && !isAttnFloat(getElementTypeOrSelf(bias.getType())))
      return rewriter.notifyMatchFailure(out, "bias element type");
    if (!isAttnFloat(elt) || kType.getElementType() != elt ||
        vt.getElementType() != elt || outType.getElementType() != elt)
      return rewriter.notifyMatchFailure(out, "mixed element types");
    // [B, H, Sq, D] x [B, H, Sk, D] x [B, H, Sk, Dv] -> [B, H, Sq, Dv].
    if (kType.getDimSize(0) != qt.getDimSize(0) ||
        kType.getDimSize(1) * kGroup != qt.getDimSize(1) ||
        vt.getShape().take_front(3) != kType.getShape().take_front(3) ||
        outType.getShape() != ArrayRef<int64_t>{qt.getDimSize(0),
                                                qt.getDimSize(1),
                                                qt.getDimSize(2),
                                                vt.getDimSize(3)})
      return rewriter.notifyMatchFailure(out, "shapes do not agree");
    // The scale is folded in double; attn.attention holds it as f32.
    if (!std::isfinite(static_cast<float>(scale)))
      return rewriter.notifyMatchFailure(out, "the folded scale overflows f32");
    Location loc = out.getLoc();
    if (fromSequenceMajor) {
      // K itself: the head-split transpose of [B, Sk, H, D] (Q and V get the
      // same one in the export).
      Value init = tensor::EmptyOp::create(rewriter, loc, kType.getShape(),
                                           kType.getElementType());
      k = linalg::TransposeOp::create(rewriter, loc, k, init,
                                      ArrayRef<int64_t>{0, 2, 1, 3})
              ->getResult(0);
    }
    // The mask operand: [1, 1, Sq, Sk] from [Sq, Sk], keep = !hidden.
    Value maskTensor;
    if (mask && mask->tensor) {
      maskTensor = mask->tensor;
      if (mask->expand2d) {
        auto mt = cast<RankedTensorType>(maskTensor.getType());
        auto type = RankedTensorType::get(
            {1, 1, mt.getDimSize(0), mt.getDimSize(1)}, mt.getElementType());
        maskTensor = tensor::ExpandShapeOp::create(
            rewriter, loc, type, maskTensor,
            SmallVector<ReassociationIndices>{{0, 1, 2}, {3}});
      }
      if (mask->invert) {
        auto mt = cast<RankedTensorType>(maskTensor.getType());
        Value empty = tensor::EmptyOp::create(rewriter, loc, mt.getShape(),
                                              mt.getElementType());
        AffineMap id = rewriter.getMultiDimIdentityMap(4);
        maskTensor =
            linalg::GenericOp::create(
                rewriter, loc, mt, ValueRange{maskTensor}, ValueRange{empty},
                ArrayRef<AffineMap>{id, id},
                SmallVector<utils::IteratorType>(4,
                                                 utils::IteratorType::parallel),
                [](OpBuilder &b, Location l, ValueRange args) {
                  Value one = arith::ConstantIntOp::create(b, l, b.getI1Type(), 1);
                  linalg::YieldOp::create(
                      b, l, arith::XOrIOp::create(b, l, args[0], one).getResult());
                })
                .getResult(0);
      }
    }
    if (bias && cast<RankedTensorType>(bias.getType()).getRank() == 2) {
      auto bt = cast<RankedTensorType>(bias.getType());
      bias = tensor::ExpandShapeOp::create(
          rewriter, loc,
          RankedTensorType::get({1, 1, bt.getDimSize(0), bt.getDimSize(1)},
                                bt.getElementType()),
          bias, SmallVector<ReassociationIndices>{{0, 1, 2}, {3}});
    }
    Value init = tensor::EmptyOp::create(rewriter, loc, outType.getShape(), elt);
    auto attention = AttentionOp::create(
        rewriter, loc, TypeRange{outType}, q, k, v, maskTensor, bias, Value(),
        ValueRange{}, Value(), Value(),
        rewriter.getF32FloatAttr(static_cast<float>(scale)),
        mask ? mask->kind : nullptr, ValueRange{init});
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
