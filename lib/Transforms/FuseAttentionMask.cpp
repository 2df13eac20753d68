//===- FuseAttentionMask.cpp - masks and biases of unfused attention ------===//
//
// The mask and bias matchers of attn-fuse-attention (FuseAttentionMatch.h):
// select(hidden, -inf, S) / select(keep, S, -inf) masks, evaluated
// (MaskEvaluation.h) to a band kind where they are one, and additive
// biases, among them torch's 0 / -inf additive masks.
//
//===----------------------------------------------------------------------===//

#include "FuseAttentionMatch.h"

#include "mlir/IR/Matchers.h"

using namespace mlir;

namespace mlir {
namespace attn {
namespace fusion {

/// Whether a rank-4 generic operand of type `t` read through `map` is
/// broadcast to the iteration space as attn's mask and bias operands are:
/// result i is d_i, or the constant 0 where dimension i has size 1.
static bool isBroadcastOperand(AffineMap map, RankedTensorType t) {
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
static bool spansKeys(linalg::GenericOp g, RankedTensorType t) {
  SmallVector<int64_t> loops = g.getStaticLoopRanges();
  return loops.size() == 4 && t.getRank() >= 2 &&
         t.getDimSize(t.getRank() - 1) == loops[3];
}


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

} // namespace fusion
} // namespace attn
} // namespace mlir
