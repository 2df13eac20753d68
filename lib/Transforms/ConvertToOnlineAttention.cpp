//===- ConvertToOnlineAttention.cpp - attention -> online form ------------===//

#include "LinalgBuilders.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include <limits>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CONVERTTOONLINEATTENTIONPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

/// out = sum == 0 ? 0 : acc / sum, and lse = sum == 0 ? -inf : max + log(sum).
static SmallVector<Value> buildNormalization(OpBuilder &b, Location loc,
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

FailureOr<SmallVector<Value>>
mlir::attn::convertToOnlineAttention(RewriterBase &rewriter, AttentionOp op) {
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  SmallVector<OpFoldResult> outShape =
      tensor::getMixedSizes(rewriter, loc, op.getOutputInit());
  SmallVector<OpFoldResult> rowShape(outShape.begin(), outShape.begin() + 3);
  Value acc = builders::buildFilled(rewriter, loc, outShape, 0.0);
  Value max = builders::buildFilled(rewriter, loc, rowShape,
                                  -std::numeric_limits<double>::infinity());
  Value sum = builders::buildFilled(rewriter, loc, rowShape, 0.0);

  auto online = OnlineAttentionOp::create(
      rewriter, loc, TypeRange{acc.getType(), max.getType(), sum.getType()},
      op.getQuery(), op.getKey(), op.getValue(), op.getMask(), op.getBias(),
      op.getKvLens(), op.getOffsets(), op.getKvBound(), op.getQBound(),
      op.getScaleAttr(),
      op.getMaskKindAttr(), ValueRange{acc, max, sum});
  SmallVector<Value> results = buildNormalization(
      rewriter, loc, online.getResult(0), online.getResult(1),
      online.getResult(2), op.getOutputs());
  rewriter.replaceOp(op, results);
  return results;
}

namespace {
struct ConvertToOnlineAttentionPattern : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    return success(succeeded(convertToOnlineAttention(rewriter, op)));
  }
};

struct ConvertToOnlineAttentionPass
    : attn::impl::ConvertToOnlineAttentionPassBase<
          ConvertToOnlineAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) { ops.push_back(op); });
    for (AttentionOp op : ops)
      if (failed(convertToOnlineAttention(rewriter, op)))
        return signalPassFailure();
  }
};
} // namespace

void mlir::attn::populateConvertToOnlineAttentionPatterns(
    RewritePatternSet &patterns) {
  patterns.add<ConvertToOnlineAttentionPattern>(patterns.getContext());
}
