//===- LinalgBuilders.cpp - linalg building blocks of attention -----------===//

#include "attn/Transforms/LinalgBuilders.h"
#include "LinalgBuildersDetail.h"


#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Matchers.h"
#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::builders;
using namespace mlir::attn::builders::detail;


Value builders::expandHeads(OpBuilder &b, Location loc, Value v, int64_t group) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<OpFoldResult> sizes = mixedShape(b, loc, v);
  SmallVector<OpFoldResult> outSizes = {sizes[0]};
  AffineExpr s0 = getAffineSymbolExpr(0, b.getContext());
  outSizes.push_back(affine::makeComposedFoldedAffineApply(
      b, loc, AffineMap::get(0, 1, s0.floorDiv(group)), {sizes[1]}));
  outSizes.push_back(b.getIndexAttr(group));
  outSizes.append(sizes.begin() + 2, sizes.end());
  SmallVector<int64_t> staticShape;
  SmallVector<Value> dynamic;
  dispatchIndexOpFoldResults(outSizes, dynamic, staticShape);
  SmallVector<ReassociationIndices> reassoc = {{0}, {1, 2}};
  for (int64_t i = 2; i < type.getRank(); ++i)
    reassoc.push_back({i + 1});
  auto outType = RankedTensorType::get(staticShape, type.getElementType());
  return tensor::ExpandShapeOp::create(b, loc, outType, v, reassoc, outSizes);
}

Value builders::collapseHeads(OpBuilder &b, Location loc, Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<ReassociationIndices> reassoc = {{0}, {1, 2}};
  for (int64_t i = 3; i < type.getRank(); ++i)
    reassoc.push_back({i});
  return tensor::CollapseShapeOp::create(b, loc, v, reassoc);
}

Value builders::buildFilled(OpBuilder &b, Location loc,
                          ArrayRef<OpFoldResult> shape, double value) {
  Value empty = emptyLike(b, loc, shape, b.getF32Type());
  return linalg::FillOp::create(b, loc, ValueRange{f32Const(b, loc, value)},
                                ValueRange{empty})
      .getResult(0);
}

FailureOr<GroupedOperands> builders::groupOperands(OpBuilder &b,
                                                 AttentionOpDetail &op) {
  Location loc = op.getOperation()->getLoc();
  AttentionDims d = op.dims();
  GroupedOperands g;
  g.group = d.groupSize();
  if (ShapedType::isDynamic(g.group))
    return op.getOperation()->emitOpError()
           << "needs static q_heads and kv_heads to split GQA groups";
  g.query = expandHeads(b, loc, op.query(), g.group);
  g.key = op.key();
  g.value = op.value();
  auto groupMaskLike = [&](Value v, bool &bcastBatch, bool &bcastHead,
                           bool &bcastQuery) {
    if (!v)
      return v;
    bcastBatch = isBroadcastDim(v, kBatchDim) && d.batch != 1;
    bcastHead = isBroadcastDim(v, kHeadsDim);
    bcastQuery = isBroadcastDim(v, kSeqDim) && d.qLen != 1;
    return bcastHead ? v : expandHeads(b, loc, v, g.group);
  };
  g.mask = groupMaskLike(op.mask(), g.maskBcastBatch, g.maskBcastHead,
                         g.maskBcastQuery);
  g.bias = groupMaskLike(op.bias(), g.biasBcastBatch, g.biasBcastHead,
                         g.biasBcastQuery);

  SmallVector<OpFoldResult> qShape = mixedShape(b, loc, g.query);
  g.rowShape.assign(qShape.begin(), qShape.begin() + 4);
  g.kvLen = tensor::getMixedSize(b, loc, op.key(), kSeqDim);
  g.vHeadDim = tensor::getMixedSize(b, loc, op.value(), kFeatureDim);

  g.visible = VisibleKeys::get(b, loc, op);
  g.scale = op.scale();
  g.scoreMod = op.scoreMod();
  g.maskMod = op.maskMod();
  llvm::append_range(g.captures, op.captures());
  g.batchPos = op.batchOffset();
  g.headPos = op.headOffset();
  g.queryPos = op.queryOffset();
  g.keyPos = op.keyOffset();
  return g;
}

Value builders::buildScores(OpBuilder &b, Location loc,
                          const GroupedOperands &ops) {
  MLIRContext *ctx = b.getContext();
  SmallVector<OpFoldResult> shape = ops.rowShape;
  shape.push_back(ops.kvLen);
  Value init = buildFilled(b, loc, shape, 0.0);
  // Loops (b, k, g, m, n, d).
  SmallVector<AffineMap> maps = {mapOf(ctx, 6, {0, 1, 2, 3, 5}),
                                 mapOf(ctx, 6, {0, 1, 4, 5}),
                                 mapOf(ctx, 6, {0, 1, 2, 3, 4})};
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), ValueRange{ops.query, ops.key}, ValueRange{init},
      maps, SmallVector<IteratorType>{kPar, kPar, kPar, kPar, kPar, kRed},
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value prod = arith::MulFOp::create(nb, nl, toF32(nb, nl, args[0]),
                                           toF32(nb, nl, args[1]), contract(nb));
        Value sum = arith::AddFOp::create(nb, nl, args[2], prod, contract(nb));
        linalg::YieldOp::create(nb, nl, sum);
      });
  return generic.getResult(0);
}


static Value buildRowReduction(OpBuilder &b, Location loc, Value in, Value init,
                               bool isMax) {
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineMap> maps = {mapOf(ctx, 5, {0, 1, 2, 3, 4}),
                                 mapOf(ctx, 5, {0, 1, 2, 3})};
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{in}, ValueRange{init}, maps,
             SmallVector<IteratorType>{kPar, kPar, kPar, kPar, kRed},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value r =
                   isMax ? arith::MaximumFOp::create(nb, nl, args[0], args[1])
                               .getResult()
                         : arith::AddFOp::create(nb, nl, args[0], args[1])
                               .getResult();
               linalg::YieldOp::create(nb, nl, r);
             })
      .getResult(0);
}

Value builders::buildRowMax(OpBuilder &b, Location loc, Value scores,
                          Value init) {
  return buildRowReduction(b, loc, scores, init, /*isMax=*/true);
}

Value builders::buildRowSum(OpBuilder &b, Location loc, Value probs, Value init) {
  return buildRowReduction(b, loc, probs, init, /*isMax=*/false);
}

Value builders::buildExpSubRow(OpBuilder &b, Location loc, Value a,
                               Value row) {
  MLIRContext *ctx = b.getContext();
  auto type = cast<RankedTensorType>(a.getType());
  unsigned rank = type.getRank();
  Value init = emptyLike(b, loc, mixedShape(b, loc, a), b.getF32Type());
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, ctx),
                                 mapOf(ctx, rank, {0, 1, 2, 3}),
                                 AffineMap::getMultiDimIdentityMap(rank, ctx)};
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{a, row}, ValueRange{init}, maps,
             SmallVector<IteratorType>(rank, kPar),
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value diff = arith::SubFOp::create(nb, nl, args[0],
                                                  buildSafeMax(nb, nl, args[1]));
               linalg::YieldOp::create(nb, nl,
                                       math::ExpOp::create(nb, nl, diff).getResult());
             })
      .getResult(0);
}

std::pair<Value, Value> builders::buildMaxUpdate(OpBuilder &b, Location loc,
                                                 Value maxOld, Value rowMax) {
  MLIRContext *ctx = b.getContext();
  AffineMap id = AffineMap::getMultiDimIdentityMap(4, ctx);
  Value alphaInit =
      emptyLike(b, loc, mixedShape(b, loc, maxOld), b.getF32Type());
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{maxOld.getType(), alphaInit.getType()},
      ValueRange{rowMax}, ValueRange{maxOld, alphaInit},
      SmallVector<AffineMap>{id, id, id}, SmallVector<IteratorType>(4, kPar),
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value maxNew = arith::MaximumFOp::create(nb, nl, args[1], args[0]);
        Value alpha = math::ExpOp::create(
            nb, nl,
            arith::SubFOp::create(nb, nl, args[1], buildSafeMax(nb, nl, maxNew)));
        linalg::YieldOp::create(nb, nl, ValueRange{maxNew, alpha});
      });
  return {generic.getResult(0), generic.getResult(1)};
}

Value builders::buildScaleRows(OpBuilder &b, Location loc, Value init,
                             Value row) {
  MLIRContext *ctx = b.getContext();
  unsigned rank = cast<RankedTensorType>(init.getType()).getRank();
  SmallVector<AffineMap> maps = {mapOf(ctx, rank, {0, 1, 2, 3}),
                                 AffineMap::getMultiDimIdentityMap(rank, ctx)};
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{row}, ValueRange{init}, maps,
             SmallVector<IteratorType>(rank, kPar),
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(
                   nb, nl,
                   arith::MulFOp::create(nb, nl, args[1], args[0]).getResult());
             })
      .getResult(0);
}

Value builders::buildProbsTimesValue(OpBuilder &b, Location loc, Value probs,
                                   Value value, Value acc) {
  MLIRContext *ctx = b.getContext();
  // Loops (b, k, g, m, e, n).
  SmallVector<AffineMap> maps = {mapOf(ctx, 6, {0, 1, 2, 3, 5}),
                                 mapOf(ctx, 6, {0, 1, 5, 4}),
                                 mapOf(ctx, 6, {0, 1, 2, 3, 4})};
  return linalg::GenericOp::create(
             b, loc, acc.getType(), ValueRange{probs, value}, ValueRange{acc},
             maps, SmallVector<IteratorType>{kPar, kPar, kPar, kPar, kPar, kRed},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value prod = arith::MulFOp::create(nb, nl, args[0],
                                                  toF32(nb, nl, args[1]),
                                                  contract(nb));
               Value sum = arith::AddFOp::create(nb, nl, args[2], prod,
                                                 contract(nb));
               // A hidden key (p = 0) must not bring in a NaN value.
               Value hidden = arith::CmpFOp::create(
                   nb, nl, arith::CmpFPredicate::OEQ, args[0],
                   f32Const(nb, nl, 0.0));
               linalg::YieldOp::create(
                   nb, nl,
                   arith::SelectOp::create(nb, nl, hidden, args[2], sum)
                       .getResult());
             })
      .getResult(0);
}

Value builders::buildGuardedValue(OpBuilder &b, Location loc,
                                const GroupedOperands &ops) {
  const VisibleKeys &visible = ops.visible;
  bool positional = visible.hasPositionRules();
  if (!positional && !ops.mask)
    return ops.value;
  MLIRContext *ctx = b.getContext();

  // colAny[b', k', n] = OR over the mask's rows (g, m): some row keeps n.
  Value colAny;
  bool anyBcastBatch = ops.maskBcastBatch, anyBcastHead = ops.maskBcastHead;
  if (ops.mask) {
    auto maskType = cast<RankedTensorType>(ops.mask.getType());
    SmallVector<OpFoldResult> maskShape = mixedShape(b, loc, ops.mask);
    unsigned rank = maskType.getRank(); // 4 (head broadcast) or 5
    SmallVector<OpFoldResult> outShape = {maskShape[0], maskShape[1],
                                          maskShape[rank - 1]};
    Value init = emptyLike(b, loc, outShape, b.getI1Type());
    Value falseV = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
    init = linalg::FillOp::create(b, loc, ValueRange{falseV}, ValueRange{init})
               .getResult(0);
    SmallVector<IteratorType> iters(rank, kRed);
    iters[0] = iters[1] = iters[rank - 1] = kPar;
    SmallVector<AffineMap> maps = {
        AffineMap::getMultiDimIdentityMap(rank, ctx),
        mapOf(ctx, rank, {0, 1, rank - 1})};
    colAny = linalg::GenericOp::create(
                 b, loc, init.getType(), ValueRange{ops.mask}, ValueRange{init},
                 maps, iters,
                 [&](OpBuilder &nb, Location nl, ValueRange args) {
                   linalg::YieldOp::create(
                       nb, nl,
                       arith::OrIOp::create(nb, nl, args[0], args[1])
                           .getResult());
                 })
                 .getResult(0);
  }

  // Loops (b, k, n, e) over the value tensor.
  SmallVector<Value> inputs = {ops.value};
  SmallVector<AffineMap> maps = {mapOf(ctx, 4, {0, 1, 2, 3})};
  int lensIdx = -1, anyIdx = -1;
  if (visible.kvLens) {
    lensIdx = inputs.size();
    inputs.push_back(visible.kvLens);
    maps.push_back(mapOf(ctx, 4, {0}));
  }
  if (colAny) {
    anyIdx = inputs.size();
    inputs.push_back(colAny);
    maps.push_back(mapOf(ctx, 4, {anyBcastBatch ? -1 : 0,
                                  anyBcastHead ? -1 : 1, 2}));
  }
  maps.push_back(mapOf(ctx, 4, {0, 1, 2, 3}));
  Type elt = getElementTypeOrSelf(ops.value.getType());
  Value init = emptyLike(b, loc, mixedShape(b, loc, ops.value), elt);
  // The query rows of this op span diagonal positions [rowPos, lastRow].
  Value lastRow = visible.lastRow(
      b, loc, visible.rowPos,
      getValueOrCreateConstantIndexOp(b, loc, ops.rowShape[3]));
  return linalg::GenericOp::create(
             b, loc, init.getType(), inputs, ValueRange{init}, maps,
             SmallVector<IteratorType>(4, kPar),
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Conjunction kb{nb, nl, Value()};
               if (anyIdx >= 0)
                 kb.conj(args[anyIdx]);
               Value n = linalg::IndexOp::create(nb, nl, 2);
               Value kpos = arith::AddIOp::create(nb, nl, visible.keyPos, n);
               kb.conj(visible.buildKeepForSomeRow(
                   nb, nl, visible.rowPos, lastRow, kpos,
                   visible.keyLimits(nb, nl,
                                     lensIdx >= 0 ? args[lensIdx] : Value())));
               Value v = args[0];
               if (kb.keep) {
                 Value zero = arith::ConstantOp::create(
                     nb, nl, nb.getZeroAttr(v.getType()));
                 v = arith::SelectOp::create(nb, nl, kb.keep, v, zero);
               }
               linalg::YieldOp::create(nb, nl, v);
             })
      .getResult(0);
}

/// out = sum == 0 ? 0 : acc / sum, and lse = sum == 0 ? -inf : max + log(sum).
SmallVector<Value> builders::buildNormalization(OpBuilder &b, Location loc,
                                                Value acc, Value max, Value sum,
                                                ValueRange outInits) {
  MLIRContext *ctx = b.getContext();
  using utils::IteratorType;
  AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
  AffineMap rows4 = AffineMap::get(
      4, 0, {b.getAffineDimExpr(0), b.getAffineDimExpr(1), b.getAffineDimExpr(2)},
      ctx);
  auto zeroSum = [](OpBuilder &nb, Location nl, Value s) {
    Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0));
    return arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ, s, zero);
  };
  SmallVector<Value> results;
  Value outInit = outInits[0];
  Type outElt = getElementTypeOrSelf(outInit.getType());
  results.push_back(
      linalg::GenericOp::create(
          b, loc, outInit.getType(), ValueRange{acc, sum}, ValueRange{outInit},
          SmallVector<AffineMap>{id4, rows4, id4},
          SmallVector<IteratorType>(4, IteratorType::parallel),
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0));
            Value div = arith::DivFOp::create(nb, nl, args[0], args[1]);
            Value r = arith::SelectOp::create(nb, nl, zeroSum(nb, nl, args[1]),
                                              zero, div);
            if (outElt != r.getType())
              r = arith::TruncFOp::create(nb, nl, outElt, r);
            linalg::YieldOp::create(nb, nl, r);
          })
          .getResult(0));
  if (outInits.size() == 2) {
    AffineMap id3 = AffineMap::getMultiDimIdentityMap(3, ctx);
    results.push_back(
        linalg::GenericOp::create(
            b, loc, outInits[1].getType(), ValueRange{max, sum},
            ValueRange{outInits[1]}, SmallVector<AffineMap>{id3, id3, id3},
            SmallVector<IteratorType>(3, IteratorType::parallel),
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value negInf = arith::ConstantOp::create(
                  nb, nl,
                  nb.getF32FloatAttr(-std::numeric_limits<float>::infinity()));
              Value lse = arith::AddFOp::create(
                  nb, nl, args[0], math::LogOp::create(nb, nl, args[1]));
              Value r = arith::SelectOp::create(
                  nb, nl, zeroSum(nb, nl, args[1]), negInf, lse);
              linalg::YieldOp::create(nb, nl, r);
            })
            .getResult(0));
  }
  return results;
}


SmallVector<Value> builders::buildMergePartials(OpBuilder &b, Location loc,
                                               Value acc, Value max, Value sum,
                                               ValueRange outInits) {
  MLIRContext *ctx = b.getContext();
  // Loops (s, b, h, m[, e]) with the split s a reduction.
  auto dims = [&](unsigned n, ArrayRef<int64_t> ds) { return mapOf(ctx, n, ds); };
  SmallVector<OpFoldResult> rowShape = mixedShape(b, loc, max);
  rowShape.erase(rowShape.begin());
  SmallVector<OpFoldResult> accShape = mixedShape(b, loc, acc);
  accShape.erase(accShape.begin());
  // The global row maximum.
  Value gmax = linalg::GenericOp::create(
                   b, loc, TypeRange{RankedTensorType::get(
                               cast<RankedTensorType>(max.getType()).getShape().drop_front(),
                               b.getF32Type())},
                   ValueRange{max},
                   ValueRange{buildFilled(b, loc, rowShape,
                                          -std::numeric_limits<double>::infinity())},
                   SmallVector<AffineMap>{dims(4, {0, 1, 2, 3}), dims(4, {1, 2, 3})},
                   SmallVector<IteratorType>{kRed, kPar, kPar, kPar},
                   [&](OpBuilder &nb, Location nl, ValueRange args) {
                     linalg::YieldOp::create(
                         nb, nl, arith::MaximumFOp::create(nb, nl, args[0], args[1])
                                     .getResult());
                   })
                   .getResult(0);
  // sum = sum_s exp(max_s - gmax) * sum_s.
  Value lsum =
      linalg::GenericOp::create(
          b, loc, TypeRange{gmax.getType()}, ValueRange{max, sum, gmax},
          ValueRange{buildFilled(b, loc, rowShape, 0.0)},
          SmallVector<AffineMap>{dims(4, {0, 1, 2, 3}), dims(4, {0, 1, 2, 3}),
                                 dims(4, {1, 2, 3}), dims(4, {1, 2, 3})},
          SmallVector<IteratorType>{kRed, kPar, kPar, kPar},
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value w = math::ExpOp::create(
                nb, nl, arith::SubFOp::create(nb, nl, args[0], buildSafeMax(nb, nl, args[2])));
            Value t = arith::MulFOp::create(nb, nl, w, args[1]);
            linalg::YieldOp::create(
                nb, nl, arith::AddFOp::create(nb, nl, args[3], t).getResult());
          })
          .getResult(0);
  // acc = sum_s exp(max_s - gmax) * acc_s.
  Value accOut =
      linalg::GenericOp::create(
          b, loc,
          TypeRange{RankedTensorType::get(
              cast<RankedTensorType>(acc.getType()).getShape().drop_front(),
              b.getF32Type())},
          ValueRange{max, acc, gmax}, ValueRange{buildFilled(b, loc, accShape, 0.0)},
          SmallVector<AffineMap>{dims(5, {0, 1, 2, 3}), dims(5, {0, 1, 2, 3, 4}),
                                 dims(5, {1, 2, 3}), dims(5, {1, 2, 3, 4})},
          SmallVector<IteratorType>{kRed, kPar, kPar, kPar, kPar},
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value w = math::ExpOp::create(
                nb, nl, arith::SubFOp::create(nb, nl, args[0], buildSafeMax(nb, nl, args[2])));
            // A split without keys has w = 0 and acc = 0.
            Value t = arith::MulFOp::create(nb, nl, w, args[1]);
            linalg::YieldOp::create(
                nb, nl, arith::AddFOp::create(nb, nl, args[3], t).getResult());
          })
          .getResult(0);
  return buildNormalization(b, loc, accOut, gmax, lsum, outInits);
}

Value mlir::attn::builders::buildSafeMax(OpBuilder &b, Location loc, Value m) {
  auto constant = [&](float x) -> Value {
    Attribute value = b.getF32FloatAttr(x);
    if (auto vector = dyn_cast<VectorType>(m.getType()))
      value = DenseElementsAttr::get(vector, value);
    return arith::ConstantOp::create(b, loc, cast<TypedAttr>(value));
  };
  Value isNegInf = arith::CmpFOp::create(
      b, loc, arith::CmpFPredicate::OEQ, m,
      constant(-std::numeric_limits<float>::infinity()));
  return arith::SelectOp::create(b, loc, isNegInf, constant(0.0f), m);
}

bool mlir::attn::builders::isSafeMax(Value v, Value m) {
  auto isConstant = [](Value c, float x) {
    FloatAttr f;
    if (!matchPattern(c, m_Constant(&f))) {
      DenseFPElementsAttr splat;
      if (!matchPattern(c, m_Constant(&splat)) || !splat.isSplat())
        return false;
      return splat.getSplatValue<APFloat>().bitwiseIsEqual(APFloat(x));
    }
    return f.getValue().bitwiseIsEqual(APFloat(x));
  };
  auto select = v.getDefiningOp<arith::SelectOp>();
  if (!select || select.getFalseValue() != m ||
      !isConstant(select.getTrueValue(), 0.0f))
    return false;
  auto cmp = select.getCondition().getDefiningOp<arith::CmpFOp>();
  return cmp && cmp.getPredicate() == arith::CmpFPredicate::OEQ &&
         cmp.getLhs() == m &&
         isConstant(cmp.getRhs(), -std::numeric_limits<float>::infinity());
}
