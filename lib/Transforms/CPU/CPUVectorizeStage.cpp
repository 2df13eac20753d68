//===- CPUVectorizeStage.cpp - vectorize an elementwise stage's region ------===//
//
// Lowers an elementwise linalg.generic on buffers (every loop parallel,
// static ranges) to vector code along its innermost loop, VL lanes at a
// time, by cloning its region with vector types. This is what puts a score
// stage's arbitrary region (bias, masks, a band test, later a score_mod) on
// the lanes at the cost of the operations it contains:
//   * the innermost linalg.index is tracked as "base + lane" until an
//     operation needs it as a vector, so a band test costs one broadcast and
//     one add of a constant step, in the type the region casts it to (i32);
//   * memref.load in the region (a bufferized tensor.extract: bias and
//     masks read with clamped rows) becomes one scalar load when its indices
//     do not depend on the lane, else one load per lane;
//   * operands read through their indexing maps are vector loads when the
//     innermost loop is their contiguous dimension, else broadcast scalars.
// linalg::vectorize vectorizes whole tiles (a vector<N x Mp> for a score
// tile, and no memref.load in the region), which is why the stages use this.
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cpu;

namespace {

/// A region value on `width` lanes: the same scalar on every lane, a
/// vector, or the scalar `base` plus the lane number.
struct LaneValue {
  enum Kind { Scalar, Vector, Lanes } kind;
  Value v;
};

bool isSupported(Operation &op) {
  if (isa<linalg::IndexOp, linalg::YieldOp, memref::LoadOp, arith::ConstantOp>(op))
    return true;
  StringRef ns = op.getDialect() ? op.getDialect()->getNamespace() : "";
  return (ns == "arith" || ns == "math") && op.getNumRegions() == 0 &&
         op.hasTrait<OpTrait::Elementwise>();
}

bool hasUnitInnerStride(MemRefType t) {
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(t.getStridesAndOffset(strides, offset)) &&
         (strides.empty() || strides.back() == 1);
}

struct RegionVectorizer {
  StageBuilder &sb;
  linalg::GenericOp op;
  int64_t width;
  SmallVector<Value> ivs; // outer ivs, then the chunk start
  IRMapping scalars;      // region values that are the same on every lane
  DenseMap<Value, LaneValue> lanes;

  RegionVectorizer(StageBuilder &sb, linalg::GenericOp op, int64_t width)
      : sb(sb), op(op), width(width) {}

  OpBuilder &b() { return sb.b; }

  LaneValue get(Value v) {
    auto it = lanes.find(v);
    if (it != lanes.end())
      return it->second;
    return {LaneValue::Scalar, scalars.lookupOrDefault(v)};
  }

  Value materialize(LaneValue lv) {
    Location loc = sb.loc;
    if (lv.kind == LaneValue::Vector)
      return lv.v;
    Value splat = sb.bcast(lv.v, width);
    if (lv.kind == LaneValue::Scalar)
      return splat;
    Type elt = lv.v.getType();
    SmallVector<Attribute> steps;
    for (int64_t l = 0; l < width; ++l)
      steps.push_back(b().getIntegerAttr(elt, l));
    Value step = arith::ConstantOp::create(
        b(), loc, DenseElementsAttr::get(sb.vecType(width, elt), steps));
    return arith::AddIOp::create(b(), loc, splat, step);
  }

  /// The lane `l` of an index operand as a scalar.
  Value laneOf(LaneValue lv, int64_t l) {
    switch (lv.kind) {
    case LaneValue::Scalar:
      return lv.v;
    case LaneValue::Lanes:
      return sb.add(lv.v, arith::ConstantOp::create(
                              b(), sb.loc, b().getIntegerAttr(lv.v.getType(), l)));
    case LaneValue::Vector:
      return vector::ExtractOp::create(b(), sb.loc, lv.v, ArrayRef<int64_t>{l});
    }
    llvm_unreachable("lane kind");
  }

  void emitChunk() {
    Location loc = sb.loc;
    unsigned inner = ivs.size() - 1;
    Block &body = op.getRegion().front();
    // Block arguments: the inputs, then the outputs.
    for (OpOperand &operand : op->getOpOperands()) {
      BlockArgument arg = body.getArgument(operand.getOperandNumber());
      Value v = operand.get();
      if (!isa<MemRefType>(v.getType())) {
        scalars.map(arg, v);
        continue;
      }
      AffineMap map = op.getMatchingIndexingMap(&operand);
      SmallVector<Value> indices;
      bool onLanes = false;
      for (AffineExpr e : map.getResults()) {
        if (auto d = dyn_cast<AffineDimExpr>(e)) {
          indices.push_back(ivs[d.getPosition()]);
          onLanes |= d.getPosition() == inner;
        } else {
          indices.push_back(sb.idx(cast<AffineConstantExpr>(e).getValue()));
        }
      }
      // Outputs are read only when the region uses them.
      if (arg.use_empty())
        continue;
      if (onLanes)
        lanes[arg] = {LaneValue::Vector,
                      vector::LoadOp::create(
                          b(), loc,
                          sb.vecType(width, cast<MemRefType>(v.getType()).getElementType()),
                          v, indices)};
      else
        scalars.map(arg, memref::LoadOp::create(b(), loc, v, indices));
    }
    for (Operation &inst : body.without_terminator()) {
      if (auto index = dyn_cast<linalg::IndexOp>(inst)) {
        unsigned d = index.getDim();
        if (d == inner)
          lanes[index] = {LaneValue::Lanes, ivs[inner]};
        else
          scalars.map(index.getResult(), ivs[d]);
        continue;
      }
      SmallVector<LaneValue> operands;
      bool allScalar = true;
      for (Value o : inst.getOperands()) {
        operands.push_back(get(o));
        allScalar &= operands.back().kind == LaneValue::Scalar;
      }
      if (allScalar) {
        b().clone(inst, scalars);
        continue;
      }
      Value result = inst.getNumResults() == 1 ? inst.getResult(0) : Value();
      // base + lane stays in that form through adds and subtractions of a
      // scalar and through casts.
      if (isa<arith::AddIOp>(inst) && operands.size() == 2 &&
          operands[0].kind != operands[1].kind &&
          operands[0].kind != LaneValue::Vector &&
          operands[1].kind != LaneValue::Vector) {
        Value base = operands[0].kind == LaneValue::Lanes ? operands[0].v : operands[1].v;
        Value other = operands[0].kind == LaneValue::Lanes ? operands[1].v : operands[0].v;
        lanes[result] = {LaneValue::Lanes, sb.add(base, other)};
        continue;
      }
      if (isa<arith::SubIOp>(inst) && operands[0].kind == LaneValue::Lanes &&
          operands[1].kind == LaneValue::Scalar) {
        lanes[result] = {LaneValue::Lanes, sb.sub(operands[0].v, operands[1].v)};
        continue;
      }
      if (isa<arith::IndexCastOp>(inst) && operands[0].kind == LaneValue::Lanes) {
        lanes[result] = {LaneValue::Lanes,
                         arith::IndexCastOp::create(b(), loc, result.getType(),
                                                    operands[0].v)};
        continue;
      }
      if (auto load = dyn_cast<memref::LoadOp>(inst)) {
        SmallVector<Value> elems;
        for (int64_t l = 0; l < width; ++l) {
          SmallVector<Value> indices;
          for (LaneValue lv : ArrayRef(operands).drop_front())
            indices.push_back(laneOf(lv, l));
          elems.push_back(memref::LoadOp::create(b(), loc, operands[0].v, indices));
        }
        lanes[result] = {LaneValue::Vector,
                         vector::FromElementsOp::create(
                             b(), loc, sb.vecType(width, result.getType()), elems)};
        continue;
      }
      OperationState state(inst.getLoc(), inst.getName());
      for (LaneValue lv : operands)
        state.addOperands(materialize(lv));
      for (Type t : inst.getResultTypes())
        state.addTypes(sb.vecType(width, t));
      state.addAttributes(inst.getAttrs());
      Operation *vec = b().create(state);
      for (auto [r, v] : llvm::zip(inst.getResults(), vec->getResults()))
        lanes[r] = {LaneValue::Vector, v};
    }
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    for (auto [value, out] : llvm::zip(yield.getValues(), op.getOutputs())) {
      Value v = materialize(get(value));
      vector::StoreOp::create(b(), loc, v, out, ivs);
    }
  }
};

} // namespace

LogicalResult mlir::attn::cpu::vectorizeElementwiseStage(RewriterBase &rewriter,
                                                          linalg::GenericOp op,
                                                          int64_t vectorWidth) {
  if (!op.hasPureBufferSemantics() ||
      op.getNumReductionLoops() != 0 || op.getNumLoops() == 0)
    return failure();
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  if (llvm::any_of(ranges, ShapedType::isDynamic))
    return failure();
  unsigned inner = ranges.size() - 1;
  // One lane: the loops are as good.
  if (ranges[inner] == 1)
    return failure();
  for (OpOperand &operand : op->getOpOperands()) {
    auto t = dyn_cast<MemRefType>(operand.get().getType());
    if (!t)
      continue;
    AffineMap map = op.getMatchingIndexingMap(&operand);
    bool isInit = op.isDpsInit(&operand);
    if (isInit && !map.isIdentity())
      return failure();
    for (auto [i, e] : llvm::enumerate(map.getResults())) {
      auto d = dyn_cast<AffineDimExpr>(e);
      if (!d && !isa<AffineConstantExpr>(e))
        return failure();
      if (d && d.getPosition() == inner &&
          (i + 1 != map.getNumResults() || !hasUnitInnerStride(t) ||
           t.getElementType().isInteger(1)))
        return failure();
    }
  }
  for (Operation &inst : op.getRegion().front())
    if (!isSupported(inst))
      return failure();

  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  StageBuilder sb(rewriter, loc, vectorWidth);
  SmallVector<Value> lbs, ubs, steps;
  for (int64_t r : ArrayRef(ranges).drop_back()) {
    lbs.push_back(sb.idx(0));
    ubs.push_back(sb.idx(r));
    steps.push_back(sb.idx(1));
  }
  scf::buildLoopNest(
      rewriter, loc, lbs, ubs, steps,
      [&](OpBuilder &nb, Location, ValueRange outer) {
        OpBuilder::InsertionGuard g(rewriter);
        rewriter.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        forBlocks(rewriter, loc, ranges[inner], vectorWidth,
                  [&](Value start, int64_t width) {
                    RegionVectorizer rv(sb, op, width);
                    rv.ivs.assign(outer.begin(), outer.end());
                    rv.ivs.push_back(start);
                    rv.emitChunk();
                  });
      });
  rewriter.eraseOp(op);
  return success();
}
