//===- MaskEvaluation.cpp - constant masks, evaluated and classified ------===//

#include "MaskEvaluation.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;

namespace {

bool allParallel(linalg::GenericOp g) {
  return llvm::all_of(g.getIteratorTypesArray(), [](utils::IteratorType t) {
    return t == utils::IteratorType::parallel;
  });
}

/// Evaluates an integer tensor computed from constants and linalg.index by
/// elementwise (all-parallel, projected-map) linalg.generics, fills and
/// reshapes; fails for anything else.
class MaskEvaluator {
public:
  /// Set when an evaluation stopped at the budget.
  bool overBudget = false;

  FailureOr<IntTensor> eval(Value v) {
    auto it = memo.find(v);
    if (it != memo.end())
      return it->second;
    FailureOr<IntTensor> r = compute(v);
    if (succeeded(r))
      memo[v] = *r;
    return r;
  }

private:
  /// `x` as a value of type `t`: truncated to its width and sign-extended
  /// (i1 true is -1, as MLIR's constants hold it).
  static int64_t truncate(int64_t x, Type t) {
    unsigned w = t.isIndex() ? 64 : t.getIntOrFloatBitWidth();
    if (w >= 64)
      return x;
    int64_t m = (int64_t(1) << w) - 1;
    x &= m;
    if ((x >> (w - 1)) & 1) // sign-extend
      x |= ~m;
    return x;
  }

  /// Charges `steps` of work and `elements` held; false (and overBudget)
  /// beyond the budget.
  bool charge(int64_t steps, int64_t elements) {
    usedSteps += steps;
    usedElements += elements;
    if (usedSteps > kMaxMaskEvaluationSteps ||
        usedElements > kMaxMaskEvaluationElements)
      overBudget = true;
    return !overBudget;
  }

  FailureOr<IntTensor> compute(Value v) {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type || !type.hasStaticShape() ||
        !type.getElementType().isIntOrIndex() ||
        type.getNumElements() > kMaxEvaluatedMask)
      return failure();
    IntTensor t;
    t.shape.assign(type.getShape().begin(), type.getShape().end());
    Operation *def = v.getDefiningOp();
    if (!def || !charge(0, type.getNumElements()))
      return failure();
    Type elt = type.getElementType();
    if (auto c = dyn_cast<arith::ConstantOp>(def)) {
      // torch-mlir writes tensor constants as dense_resource blobs.
      auto fromBlob = [&](auto attr) -> bool {
        if (!attr)
          return false;
        auto values = attr.tryGetAsArrayRef();
        if (!values || static_cast<int64_t>(values->size()) !=
                           type.getNumElements())
          return false;
        for (auto x : *values)
          t.data.push_back(truncate(static_cast<int64_t>(x), elt));
        return true;
      };
      if (fromBlob(dyn_cast<DenseBoolResourceElementsAttr>(c.getValue())) ||
          fromBlob(dyn_cast<DenseI8ResourceElementsAttr>(c.getValue())) ||
          fromBlob(dyn_cast<DenseI32ResourceElementsAttr>(c.getValue())) ||
          fromBlob(dyn_cast<DenseI64ResourceElementsAttr>(c.getValue())))
        return t;
      auto dense = dyn_cast<DenseIntElementsAttr>(c.getValue());
      if (!dense)
        return failure();
      for (APInt x : dense.getValues<APInt>())
        t.data.push_back(truncate(x.getSExtValue(), elt));
      return t;
    }
    if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def)) {
      FailureOr<IntTensor> src = eval(def->getOperand(0));
      if (failed(src))
        return failure();
      t.data = src->data; // row-major order is unchanged by reshapes
      return t;
    }
    if (auto fill = dyn_cast<linalg::FillOp>(def)) {
      std::optional<int64_t> c = getConstantIntValue(fill.getInputs()[0]);
      if (!c)
        return failure();
      t.data.assign(type.getNumElements(), truncate(*c, type.getElementType()));
      return t;
    }
    auto g = dyn_cast<linalg::GenericOp>(def);
    if (!g || !g.hasPureTensorSemantics() || g.getNumDpsInits() != 1 ||
        !allParallel(g) || !g.getIndexingMapsArray().back().isIdentity() ||
        g.getNumLoops() != type.getRank())
      return failure();
    SmallVector<IntTensor> inputs;
    for (Value in : g.getDpsInputs()) {
      FailureOr<IntTensor> x = eval(in);
      if (failed(x))
        return failure();
      inputs.push_back(*x);
    }
    SmallVector<AffineMap> maps = g.getIndexingMapsArray();
    int64_t n = type.getNumElements(), rank = type.getRank();
    int64_t bodyOps = static_cast<int64_t>(g.getBody()->getOperations().size());
    if (!charge(n * bodyOps, 0))
      return failure();
    t.data.resize(n);
    SmallVector<int64_t> iv(rank, 0);
    for (int64_t flat = 0; flat < n; ++flat) {
      for (int64_t d = rank - 1, r = flat; d >= 0; --d) {
        iv[d] = r % t.shape[d];
        r /= t.shape[d];
      }
      DenseMap<Value, int64_t> env;
      Block *body = g.getBody();
      for (auto [i, in] : llvm::enumerate(inputs)) {
        int64_t off = 0;
        ArrayRef<AffineExpr> results = maps[i].getResults();
        if (results.size() != in.shape.size())
          return failure();
        for (auto [r, e] : llvm::enumerate(results)) {
          int64_t idx;
          if (auto dim = dyn_cast<AffineDimExpr>(e))
            idx = iv[dim.getPosition()];
          else if (auto c = dyn_cast<AffineConstantExpr>(e))
            idx = c.getValue();
          else
            return failure();
          if (idx < 0 || idx >= in.shape[r])
            return failure();
          off = off * in.shape[r] + idx;
        }
        env[body->getArgument(i)] = in.data[off];
      }
      FailureOr<int64_t> result = evalBody(g, iv, env);
      if (failed(result))
        return failure();
      t.data[flat] = truncate(*result, type.getElementType());
    }
    return t;
  }

  FailureOr<int64_t> evalBody(linalg::GenericOp g, ArrayRef<int64_t> iv,
                              DenseMap<Value, int64_t> &env) {
    auto value = [&](Value v) -> std::optional<int64_t> {
      auto it = env.find(v);
      if (it != env.end())
        return it->second;
      // A constant defined anywhere, held as its type holds it.
      if (std::optional<int64_t> c = getConstantIntValue(v))
        return truncate(*c, v.getType());
      return std::nullopt;
    };
    for (Operation &op : g.getBody()->without_terminator()) {
      Value r = op.getNumResults() == 1 ? op.getResult(0) : Value();
      if (!r || !r.getType().isIntOrIndex())
        return failure();
      if (auto index = dyn_cast<linalg::IndexOp>(op)) {
        env[r] = iv[index.getDim()];
        continue;
      }
      if (auto c = dyn_cast<arith::ConstantOp>(op)) {
        std::optional<int64_t> x = value(c.getResult());
        if (!x)
          return failure();
        env[r] = *x;
        continue;
      }
      SmallVector<int64_t> a;
      for (Value o : op.getOperands()) {
        std::optional<int64_t> x = value(o);
        if (!x)
          return failure();
        a.push_back(*x);
      }
      int64_t x;
      if (isa<arith::IndexCastOp, arith::ExtSIOp, arith::TruncIOp>(op))
        x = a[0];
      else if (isa<arith::ExtUIOp>(op))
        x = a[0] & ((int64_t(1) << op.getOperand(0).getType()
                                       .getIntOrFloatBitWidth()) - 1);
      else if (isa<arith::AddIOp>(op))
        x = a[0] + a[1];
      else if (isa<arith::SubIOp>(op))
        x = a[0] - a[1];
      else if (isa<arith::MulIOp>(op))
        x = a[0] * a[1];
      else if (isa<arith::AndIOp>(op))
        x = a[0] & a[1];
      else if (isa<arith::OrIOp>(op))
        x = a[0] | a[1];
      else if (isa<arith::XOrIOp>(op))
        x = a[0] ^ a[1];
      else if (isa<arith::SelectOp>(op))
        x = a[0] ? a[1] : a[2];
      else if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
        uint64_t u0 = a[0], u1 = a[1];
        switch (cmp.getPredicate()) {
        case arith::CmpIPredicate::eq: x = a[0] == a[1]; break;
        case arith::CmpIPredicate::ne: x = a[0] != a[1]; break;
        case arith::CmpIPredicate::slt: x = a[0] < a[1]; break;
        case arith::CmpIPredicate::sle: x = a[0] <= a[1]; break;
        case arith::CmpIPredicate::sgt: x = a[0] > a[1]; break;
        case arith::CmpIPredicate::sge: x = a[0] >= a[1]; break;
        case arith::CmpIPredicate::ult: x = u0 < u1; break;
        case arith::CmpIPredicate::ule: x = u0 <= u1; break;
        case arith::CmpIPredicate::ugt: x = u0 > u1; break;
        case arith::CmpIPredicate::uge: x = u0 >= u1; break;
        }
      } else {
        return failure();
      }
      env[r] = truncate(x, r.getType());
    }
    auto yield = cast<linalg::YieldOp>(g.getBody()->getTerminator());
    std::optional<int64_t> out = value(yield.getOperand(0));
    if (!out)
      return failure();
    return *out;
  }

  DenseMap<Value, IntTensor> memo;
  int64_t usedSteps = 0, usedElements = 0;
};

} // namespace

FailureOr<IntTensor> mlir::attn::evaluateIntTensor(Value v,
                                                   bool *overBudget) {
  MaskEvaluator evaluator;
  FailureOr<IntTensor> result = evaluator.eval(v);
  if (overBudget)
    *overBudget = evaluator.overBudget;
  return result;
}

MaskKindAttrInterface mlir::attn::classifyBand(MLIRContext *ctx,
                                              ArrayRef<int64_t> keep,
                                              int64_t sq, int64_t sk) {
  // A causal mask of either alignment wins over a window that describes the
  // same keys (bottom-right causal is also a top-left window).
  MaskKindAttrInterface window;
  for (MaskAlignment align :
       {MaskAlignment::TopLeft, MaskAlignment::BottomRight}) {
    int64_t shift = align == MaskAlignment::BottomRight ? sk - sq : 0;
    // The band of the kept keys, relative to the shifted diagonal.
    int64_t lower = std::numeric_limits<int64_t>::max(),
            upper = std::numeric_limits<int64_t>::min();
    bool any = false;
    for (int64_t i = 0; i < sq; ++i)
      for (int64_t j = 0; j < sk; ++j)
        if (keep[i * sk + j]) {
          lower = std::min(lower, j - i - shift);
          upper = std::max(upper, j - i - shift);
          any = true;
        }
    if (!any || lower > 0 || upper < 0)
      continue; // the mask kinds' bands contain the diagonal
    bool exact = true;
    for (int64_t i = 0; i < sq && exact; ++i) {
      bool rowKeeps = false;
      for (int64_t j = 0; j < sk && exact; ++j) {
        int64_t d = j - i - shift;
        bool inBand = d >= lower && d <= upper;
        exact = inBand == (keep[i * sk + j] != 0);
        rowKeeps |= inBand;
      }
      exact &= rowKeeps;
    }
    if (!exact)
      continue;
    // Causal when the left edge hides no key of any row (the last row's edge
    // is the rightmost) and nothing right of the diagonal is kept.
    bool leftFree = sq - 1 + shift + lower <= 0;
    if (upper == 0 && leftFree)
      return CausalAttr::get(ctx, align);
    if (!window)
      window = SlidingWindowAttr::get(ctx, -lower, upper, align);
  }
  return window;
}

