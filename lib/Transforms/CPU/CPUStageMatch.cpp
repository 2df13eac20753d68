//===- CPUStageMatch.cpp - what a CPU tile stage computes, by structure ----===//
//
// Reads a linalg.generic's iterator types, indexing maps and body and says
// which microkernel computes exactly that function (CPUTileLowering.h,
// "Matching stages by structure"). The body is matched whole: every
// operation of the region must be part of the matched expression, so an
// edited body (an extra multiply, another reduction, a user's region) is
// never taken for the stage it was tagged as: it matches nothing and is left
// to the loop lowering, which computes what it says.
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"

#include "mlir/IR/Matchers.h"
#include "llvm/ADT/SmallPtrSet.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cpu;

namespace {

using utils::IteratorType;
constexpr IteratorType kPar = IteratorType::parallel,
                       kRed = IteratorType::reduction;

/// Matchers of values in one generic body, in the terms of the stage
/// contract: block arguments (operands), linalg.index, constants and the
/// arith / math ops the decomposition writes. Every op a successful match
/// visits is recorded, so that `coversBody` can check that nothing else is
/// in the region.
struct BodyMatcher {
  linalg::GenericOp op;
  Block &block;
  llvm::SmallPtrSet<Operation *, 16> seen;
  /// Block argument numbers of the shaped operands, in order (index
  /// operands, the stage's key range and positions, sit anywhere: the
  /// canonicalizer may merge equal ones).
  SmallVector<unsigned> shaped;

  explicit BodyMatcher(linalg::GenericOp op)
      : op(op), block(op.getRegion().front()) {
    for (OpOperand &operand : op->getOpOperands())
      if (isa<ShapedType>(operand.get().getType()))
        shaped.push_back(operand.getOperandNumber());
  }
  /// Block argument number of shaped operand `i`.
  unsigned t(unsigned i) const { return shaped[i]; }
  /// `v` is the block argument of an index operand; binds `operand` to that
  /// operand, or checks it is the one already bound.
  bool scalar(Value v, Value &operand) {
    auto a = dyn_cast<BlockArgument>(v);
    if (!a || a.getOwner() != &block || !a.getType().isIndex())
      return false;
    Value actual = op->getOperand(a.getArgNumber());
    if (operand && operand != actual)
      return false;
    operand = actual;
    return true;
  }

  template <typename OpTy>
  OpTy def(Value v) {
    auto op = v.getDefiningOp<OpTy>();
    if (op && op->getBlock() == &block)
      seen.insert(op);
    return op && op->getBlock() == &block ? op : OpTy();
  }

  /// Block argument `i` (operand i of the generic).
  bool arg(Value v, unsigned i) const {
    auto a = dyn_cast<BlockArgument>(v);
    return a && a.getOwner() == &block && a.getArgNumber() == i;
  }
  /// Block argument `i` read as f32: itself or arith.extf of it.
  bool argF32(Value v, unsigned i) {
    if (auto ext = def<arith::ExtFOp>(v))
      return ext.getType().isF32() && arg(ext.getIn(), i);
    return v.getType().isF32() && arg(v, i);
  }
  /// linalg.index `dim`.
  bool index(Value v, unsigned dim) {
    auto op = def<linalg::IndexOp>(v);
    return op && op.getDim() == dim;
  }
  /// A float constant equal to x.
  bool fconst(Value v, double x) {
    FloatAttr f;
    if (!matchPattern(v, m_Constant(&f)))
      return false;
    if (auto op = v.getDefiningOp(); op && op->getBlock() == &block)
      seen.insert(op);
    return f.getValueAsDouble() == x;
  }
  /// An integer / index constant; its value in `c`.
  bool iconst(Value v, int64_t &c) {
    APInt value;
    if (!matchPattern(v, m_ConstantInt(&value)))
      return false;
    if (auto op = v.getDefiningOp(); op && op->getBlock() == &block)
      seen.insert(op);
    c = value.getSExtValue();
    return true;
  }
  /// A binary commutative op `v = OpTy(x, y)` whose operands satisfy
  /// `first` and `second` in either order.
  template <typename OpTy>
  bool commutative(Value v, function_ref<bool(Value)> first,
                   function_ref<bool(Value)> second) {
    auto op = def<OpTy>(v);
    if (!op)
      return false;
    Value x = op->getOperand(0), y = op->getOperand(1);
    return (first(x) && second(y)) || (first(y) && second(x));
  }
  /// buildSafeMax(arg i) (LinalgBuilders.h owns its structure).
  bool safeMaxOfArg(Value v, unsigned i) {
    auto select = def<arith::SelectOp>(v);
    if (!select || !builders::isSafeMax(v, select.getFalseValue()) ||
        !arg(select.getFalseValue(), i))
      return false;
    def<arith::CmpFOp>(select.getCondition());
    fconst(select.getTrueValue(), 0.0);
    fconst(select.getCondition().getDefiningOp()->getOperand(1),
           -std::numeric_limits<double>::infinity());
    return true;
  }
  /// exp(arg s - safe(arg m)).
  bool expOfShifted(Value v, unsigned s, unsigned m) {
    auto exp = def<math::ExpOp>(v);
    if (!exp)
      return false;
    auto sub = def<arith::SubFOp>(exp.getOperand());
    return sub && arg(sub.getLhs(), s) && safeMaxOfArg(sub.getRhs(), m);
  }
  /// cmpi `pred`(x, y) with matchers for both sides.
  bool cmpi(Value v, arith::CmpIPredicate pred, function_ref<bool(Value)> x,
            function_ref<bool(Value)> y) {
    auto cmp = def<arith::CmpIOp>(v);
    return cmp && cmp.getPredicate() == pred && x(cmp.getLhs()) &&
           y(cmp.getRhs());
  }
  /// The key range test of the stage contract: lo <= index(dim) < hi for
  /// index operands lo, hi (bound here): andi(cmpi sge, cmpi slt).
  bool inRange(Value v, unsigned dim, Value &lo, Value &hi) {
    auto both = def<arith::AndIOp>(v);
    return both &&
           cmpi(both.getLhs(), arith::CmpIPredicate::sge,
                [&](Value x) { return index(x, dim); },
                [&](Value x) { return scalar(x, lo); }) &&
           cmpi(both.getRhs(), arith::CmpIPredicate::slt,
                [&](Value x) { return index(x, dim); },
                [&](Value x) { return scalar(x, hi); });
  }
  /// acc + x * y (f32; either order of both ops), x and y read as f32.
  bool multiplyAdd(Value v, unsigned acc, unsigned x, unsigned y) {
    return commutative<arith::AddFOp>(
        v, [&](Value a) { return arg(a, acc); },
        [&](Value p) {
          return commutative<arith::MulFOp>(
              p, [&](Value a) { return argF32(a, x); },
              [&](Value b) { return argF32(b, y); });
        });
  }
  /// Whether the ops matched are all the ops of the body.
  bool coversBody() const {
    for (Operation &op : block.without_terminator())
      if (!seen.contains(&op))
        return false;
    return true;
  }
};

AffineMap mapOf(MLIRContext *ctx, unsigned loops, ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d : dims)
    exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(loops, 0, exprs, ctx);
}

/// The iterator types are `iters` and the shaped operands' maps, in order,
/// `maps`; every other operand is an index scalar.
bool hasStructure(linalg::GenericOp op, ArrayRef<IteratorType> iters,
                  ArrayRef<ArrayRef<unsigned>> maps) {
  if (op.getIteratorTypesArray() != SmallVector<IteratorType>(iters))
    return false;
  MLIRContext *ctx = op.getContext();
  unsigned loops = iters.size(), m = 0;
  for (OpOperand &operand : op->getOpOperands()) {
    AffineMap map = op.getMatchingIndexingMap(&operand);
    if (!isa<ShapedType>(operand.get().getType())) {
      if (!operand.get().getType().isIndex() ||
          map != AffineMap::get(loops, 0, {}, ctx))
        return false;
      continue;
    }
    if (m == maps.size() || map != mapOf(ctx, loops, maps[m++]))
      return false;
  }
  return m == maps.size();
}

/// Collects the leaves of an andi tree.
void conjuncts(BodyMatcher &bm, Value v, SmallVectorImpl<Value> &leaves) {
  if (auto both = bm.def<arith::AndIOp>(v)) {
    conjuncts(bm, both.getLhs(), leaves);
    conjuncts(bm, both.getRhs(), leaves);
    return;
  }
  leaves.push_back(v);
}

StageMatch none(StringRef reason) {
  StageMatch m;
  m.reason = reason.str();
  return m;
}

StageMatch matchContraction(linalg::GenericOp op) {
  using K = StageMatch::Kind;
  StageMatch m;
  if (hasStructure(op, {kPar, kPar, kRed}, {{0, 2}, {2, 1}, {0, 1}}))
    m.kind = K::ScoresLanes; // S[j][m] += K[j][d] QT[d][m]
  else if (hasStructure(op, {kPar, kPar, kRed}, {{0, 2}, {1, 2}, {0, 1}}))
    m.kind = K::ScoresRows; // S[m][j] += Q[m][d] K[j][d]
  else if (hasStructure(op, {kPar, kPar, kRed, kRed},
                        {{0, 2, 3}, {2, 1, 3}, {0, 1}}))
    m.kind = K::ScoresPairs; // S[j][m] += K[j][p][r] QP[p][m][r]
  else
    return none("indexing maps are not those of a score contraction");
  BodyMatcher bm(op);
  auto yield = cast<linalg::YieldOp>(op.getRegion().front().getTerminator());
  if (!bm.multiplyAdd(yield.getOperand(0), bm.t(2), bm.t(0), bm.t(1)) ||
      !bm.coversBody())
    return none("body is not acc + a * b");
  return m;
}

StageMatch matchReduction(linalg::GenericOp op) {
  using K = StageMatch::Kind;
  BodyMatcher bm(op);
  auto yield = cast<linalg::YieldOp>(op.getRegion().front().getTerminator());
  // The running max s > acc ? s : acc (NaN scores never win).
  auto isMaxOf = [&](Value v, unsigned s, unsigned acc) {
    auto select = bm.def<arith::SelectOp>(v);
    if (!select || !bm.arg(select.getTrueValue(), s) ||
        !bm.arg(select.getFalseValue(), acc))
      return false;
    auto cmp = bm.def<arith::CmpFOp>(select.getCondition());
    return cmp && cmp.getPredicate() == arith::CmpFPredicate::OGT &&
           bm.arg(cmp.getLhs(), s) && bm.arg(cmp.getRhs(), acc);
  };
  // l + p in either order.
  auto plus = [&](Value v, unsigned l, Value p) {
    return bm.commutative<arith::AddFOp>(
        v, [&](Value a) { return bm.arg(a, l); },
        [&](Value b) { return b == p; });
  };
  StageMatch m;
  if (op.getNumDpsInits() == 1) {
    if (hasStructure(op, {kPar, kRed}, {{0, 1}, {0}})) {
      if (!isMaxOf(yield.getOperand(0), bm.t(0), bm.t(1)) || !bm.coversBody())
        return none("body is not the running max s > m ? s : m");
      m.kind = K::MaxRows;
      return m;
    }
    if (hasStructure(op, {kRed, kPar}, {{0, 1}, {1}})) {
      auto select = bm.def<arith::SelectOp>(yield.getOperand(0));
      if (!select || !bm.inRange(select.getCondition(), 0, m.jLo, m.jHi) ||
          !bm.arg(select.getFalseValue(), bm.t(1)) ||
          !isMaxOf(select.getTrueValue(), bm.t(0), bm.t(1)) ||
          !bm.coversBody())
        return none("body is not the running max over keys [jLo, jHi)");
      m.kind = K::MaxLanes;
      return m;
    }
    return none("indexing maps are not those of a row max");
  }
  if (op.getNumDpsInits() != 2)
    return none("not a row reduction");
  // exp_sum: p = exp(s - safe(m)) stored back, l += p.
  if (hasStructure(op, {kPar, kRed}, {{0}, {0, 1}, {0}})) {
    Value p = yield.getOperand(0);
    if (!bm.expOfShifted(p, bm.t(1), bm.t(0)) ||
        !plus(yield.getOperand(1), bm.t(2), p) || !bm.coversBody())
      return none("body is not p = exp(s - safe(m)), l += p");
    m.kind = K::ExpSumRows;
    return m;
  }
  if (hasStructure(op, {kRed, kPar}, {{1}, {0, 1}, {1}})) {
    auto storeP = bm.def<arith::SelectOp>(yield.getOperand(0));
    auto storeL = bm.def<arith::SelectOp>(yield.getOperand(1));
    if (!storeP || !storeL ||
        storeP.getCondition() != storeL.getCondition() ||
        !bm.inRange(storeP.getCondition(), 0, m.jLo, m.jHi) ||
        !bm.arg(storeP.getFalseValue(), bm.t(1)) ||
        !bm.arg(storeL.getFalseValue(), bm.t(2)))
      return none("body is not exp_sum over keys [jLo, jHi)");
    Value p = storeP.getTrueValue();
    if (!bm.expOfShifted(p, bm.t(1), bm.t(0)) ||
        !plus(storeL.getTrueValue(), bm.t(2), p) || !bm.coversBody())
      return none("body is not p = exp(s - safe(m)), l += p over [jLo, jHi)");
    m.kind = K::ExpSumLanes;
    return m;
  }
  return none("indexing maps are not those of exp_sum");
}

StageMatch matchProbsTimesValue(linalg::GenericOp op) {
  using K = StageMatch::Kind;
  StageMatch m;
  if (hasStructure(op, {kPar, kPar, kRed}, {{2, 0}, {2, 1}, {0, 1}}))
    m.rowMajorP = false;
  else if (hasStructure(op, {kPar, kPar, kRed}, {{0, 2}, {2, 1}, {0, 1}}))
    m.rowMajorP = true;
  else
    return none("indexing maps are not those of P V");
  BodyMatcher bm(op);
  unsigned p = bm.t(0), v = bm.t(1), acc = bm.t(2);
  auto yield = cast<linalg::YieldOp>(op.getRegion().front().getTerminator());
  // select(keep, acc + p * v, acc): a hidden (even NaN) value never reaches
  // the accumulator.
  auto select = bm.def<arith::SelectOp>(yield.getOperand(0));
  if (!select || !bm.arg(select.getFalseValue(), acc) ||
      !bm.multiplyAdd(select.getTrueValue(), acc, p, v))
    return none("body is not select(keep, acc + p * v, acc)");
  SmallVector<Value> leaves;
  conjuncts(bm, select.getCondition(), leaves);
  // rel = (kv_offset + j) - (q_offset + m), as the score stage's band test
  // (with one query row, m = 0 folds away).
  bool oneRow = op.getStaticLoopRanges()[0] == 1;
  auto isRel = [&](Value x) {
    auto sub = bm.def<arith::SubIOp>(x);
    return sub &&
           bm.commutative<arith::AddIOp>(
               sub.getLhs(), [&](Value a) { return bm.scalar(a, m.kOff); },
               [&](Value b) { return bm.index(b, 2); }) &&
           ((oneRow && bm.scalar(sub.getRhs(), m.qOff)) ||
            bm.commutative<arith::AddIOp>(
                sub.getRhs(), [&](Value a) { return bm.scalar(a, m.qOff); },
                [&](Value b) { return bm.index(b, 0); }));
  };
  for (Value leaf : leaves) {
    int64_t c;
    auto constant = [&](Value x) { return bm.iconst(x, c); };
    auto key = [&](Value x) { return bm.index(x, 2); };
    if (bm.cmpi(leaf, arith::CmpIPredicate::sge, key,
                [&](Value x) { return bm.scalar(x, m.jLo); })) {
      continue;
    } else if (bm.cmpi(leaf, arith::CmpIPredicate::slt, key,
                       [&](Value x) { return bm.scalar(x, m.jHi); })) {
      continue;
    } else if (!m.band.lower &&
               bm.cmpi(leaf, arith::CmpIPredicate::sge, isRel, constant)) {
      m.band.lower = c;
    } else if (!m.band.upper &&
               bm.cmpi(leaf, arith::CmpIPredicate::sle, isRel, constant)) {
      m.band.upper = c;
    } else if (auto cmp = bm.def<arith::CmpFOp>(leaf);
               !m.guardZero && cmp &&
               cmp.getPredicate() == arith::CmpFPredicate::UNE &&
               bm.arg(cmp.getLhs(), p) && bm.fconst(cmp.getRhs(), 0.0)) {
      m.guardZero = true;
    } else {
      return none("the guard of P V holds a test other than the key range, "
                  "the band and p != 0");
    }
  }
  if (!m.jLo || !m.jHi || !bm.coversBody())
    return none("the guard of P V does not test the key range [jLo, jHi)");
  if (!m.band.isUnbounded() && (!m.qOff || !m.kOff))
    return none("the band of P V is not tested on key minus row positions");
  m.kind = K::ProbsTimesValue;
  return m;
}

StageMatch matchRescale(linalg::GenericOp op) {
  if (!hasStructure(op, {kPar, kPar}, {{0}, {0, 1}}))
    return none("indexing maps are not those of a row rescale");
  BodyMatcher bm(op);
  auto yield = cast<linalg::YieldOp>(op.getRegion().front().getTerminator());
  if (!bm.commutative<arith::MulFOp>(
          yield.getOperand(0), [&](Value a) { return bm.arg(a, bm.t(1)); },
          [&](Value b) { return bm.arg(b, bm.t(0)); }) ||
      !bm.coversBody())
    return none("body is not acc * alpha");
  StageMatch m;
  m.kind = StageMatch::Kind::Rescale;
  return m;
}

} // namespace

StageMatch mlir::attn::cpu::matchStage(linalg::GenericOp op) {
  if (op.getNumReductionLoops() == 0) {
    StageMatch rescale = matchRescale(op);
    if (rescale.kind != StageMatch::Kind::None)
      return rescale;
    StageMatch m;
    m.kind = StageMatch::Kind::Elementwise;
    return m;
  }
  // Contractions and P V read two tensors (P V also index positions), the
  // reductions one.
  unsigned tensors = llvm::count_if(op.getDpsInputs(), [](Value v) {
    return isa<ShapedType>(v.getType());
  });
  if (tensors == 2 && op.getNumDpsInputs() == 2)
    return matchContraction(op);
  if (tensors == 2)
    return matchProbsTimesValue(op);
  return matchReduction(op);
}

StringRef mlir::attn::cpu::stringifyStageKind(StageMatch::Kind kind) {
  using K = StageMatch::Kind;
  switch (kind) {
  case K::None:
    return "loops";
  case K::ScoresLanes:
    return "score contraction, queries on the lanes";
  case K::ScoresPairs:
    return "score contraction of bf16 pairs";
  case K::ScoresRows:
    return "score contraction, keys on the lanes";
  case K::MaxLanes:
    return "row max, queries on the lanes";
  case K::MaxRows:
    return "row max, keys on the lanes";
  case K::ExpSumLanes:
    return "exp and row sum, queries on the lanes";
  case K::ExpSumRows:
    return "exp and row sum, keys on the lanes";
  case K::Rescale:
    return "row rescale";
  case K::ProbsTimesValue:
    return "P V";
  case K::Elementwise:
    return "elementwise";
  }
  llvm_unreachable("unknown stage kind");
}

StringRef mlir::attn::cpu::getStageKindName(StageMatch::Kind kind) {
  using K = StageMatch::Kind;
  switch (kind) {
  case K::None:
    return "loops";
  case K::ScoresLanes:
    return "scores_lanes";
  case K::ScoresPairs:
    return "scores_pairs";
  case K::ScoresRows:
    return "scores_rows";
  case K::MaxLanes:
    return "max_lanes";
  case K::MaxRows:
    return "max_rows";
  case K::ExpSumLanes:
    return "exp_sum_lanes";
  case K::ExpSumRows:
    return "exp_sum_rows";
  case K::Rescale:
    return "rescale";
  case K::ProbsTimesValue:
    return "pv";
  case K::Elementwise:
    return "elementwise";
  }
  llvm_unreachable("unknown stage kind");
}
