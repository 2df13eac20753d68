//===- AttnToLinalg.cpp - unfused reference lowering ----------------------===//
//
// The textbook attention: S = scale * Q K^T (+ bias, masked), P =
// softmax(S) row-wise with the whole [B, Hq, Sq, Sk] score matrix in memory,
// O = P V. Baseline for benchmarks and a cross-check of the flash path.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/LinalgBuilders.h"
#include "attn/Conversion/Passes.h"
#include "attn/Transforms/Transforms.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include <limits>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CONVERTATTNTOLINALGPASS
#include "attn/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::builders;
using utils::IteratorType;

FailureOr<SmallVector<Value>>
mlir::attn::lowerAttentionToLinalg(RewriterBase &rewriter, AttentionOp op) {
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  MLIRContext *ctx = rewriter.getContext();
  AttentionOpDetail detail(op);
  FailureOr<GroupedOperands> grouped = groupOperands(rewriter, detail);
  if (failed(grouped))
    return failure();

  const double negInf = -std::numeric_limits<double>::infinity();
  Value scores = buildScores(rewriter, loc, *grouped);
  scores = buildMaskedScores(rewriter, loc, *grouped, scores);
  Value rowMax = buildRowMax(rewriter, loc, scores,
                             buildFilled(rewriter, loc, grouped->rowShape, negInf));
  Value exps = buildExpSubRow(rewriter, loc, scores, rowMax);
  Value rowSum = buildRowSum(rewriter, loc, exps,
                             buildFilled(rewriter, loc, grouped->rowShape, 0.0));

  // probs = exps / rowSum (0 for rows without kept keys), in place.
  AffineMap id5 = AffineMap::getMultiDimIdentityMap(5, ctx);
  AffineMap rows5 = AffineMap::get(5, 0,
                                   {rewriter.getAffineDimExpr(0),
                                    rewriter.getAffineDimExpr(1),
                                    rewriter.getAffineDimExpr(2),
                                    rewriter.getAffineDimExpr(3)},
                                   ctx);
  Value probs =
      linalg::GenericOp::create(
          rewriter, loc, exps.getType(), ValueRange{rowSum}, ValueRange{exps},
          SmallVector<AffineMap>{rows5, id5},
          SmallVector<IteratorType>(5, IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value zero = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0));
            Value isZero = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ,
                                                 args[0], zero);
            Value p = arith::DivFOp::create(b, l, args[1], args[0]);
            linalg::YieldOp::create(
                b, l, arith::SelectOp::create(b, l, isZero, zero, p).getResult());
          })
          .getResult(0);

  SmallVector<OpFoldResult> accShape = grouped->rowShape;
  accShape.push_back(grouped->vHeadDim);
  Value out = buildProbsTimesValue(rewriter, loc, probs,
                                   buildGuardedValue(rewriter, loc, *grouped),
                                   buildFilled(rewriter, loc, accShape, 0.0));
  out = collapseHeads(rewriter, loc, out);

  // Copy (and round) into the output init.
  Value outInit = op.getOutputInit();
  Type outElt = getElementTypeOrSelf(outInit.getType());
  AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
  SmallVector<Value> results;
  results.push_back(
      linalg::GenericOp::create(
          rewriter, loc, outInit.getType(), ValueRange{out}, ValueRange{outInit},
          SmallVector<AffineMap>{id4, id4},
          SmallVector<IteratorType>(4, IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value v = args[0];
            if (v.getType() != outElt)
              v = arith::TruncFOp::create(b, l, outElt, v);
            linalg::YieldOp::create(b, l, v);
          })
          .getResult(0));

  if (op.hasLogSumExp()) {
    Value maxQ = collapseHeads(rewriter, loc, rowMax);
    Value sumQ = collapseHeads(rewriter, loc, rowSum);
    AffineMap id3 = AffineMap::getMultiDimIdentityMap(3, ctx);
    Value lseInit = op.getOutputs()[1];
    results.push_back(
        linalg::GenericOp::create(
            rewriter, loc, lseInit.getType(), ValueRange{maxQ, sumQ},
            ValueRange{lseInit}, SmallVector<AffineMap>{id3, id3, id3},
            SmallVector<IteratorType>(3, IteratorType::parallel),
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value zero = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0));
              Value ninf = arith::ConstantOp::create(b, l, b.getF32FloatAttr(negInf));
              Value isZero = arith::CmpFOp::create(
                  b, l, arith::CmpFPredicate::OEQ, args[1], zero);
              Value lse = arith::AddFOp::create(
                  b, l, args[0], math::LogOp::create(b, l, args[1]));
              linalg::YieldOp::create(
                  b, l,
                  arith::SelectOp::create(b, l, isZero, ninf, lse).getResult());
            })
            .getResult(0));
  }
  rewriter.replaceOp(op, results);
  return results;
}

namespace {
struct AttentionToLinalgPattern : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    return success(succeeded(lowerAttentionToLinalg(rewriter, op)));
  }
};

struct ConvertAttnToLinalgPass
    : attn::impl::ConvertAttnToLinalgPassBase<ConvertAttnToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) { ops.push_back(op); });
    for (AttentionOp op : ops)
      if (failed(lowerAttentionToLinalg(rewriter, op)))
        return signalPassFailure();
  }
};
} // namespace

void mlir::attn::populateAttnToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionToLinalgPattern>(patterns.getContext());
}
