//===- ConvertToOnlineAttention.cpp - attention -> online form ------------===//

#include "attn/Transforms/LinalgBuilders.h"
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
      op.getKvLens(), op.getCaptures(), op.getOffsets(), op.getKvBound(),
      op.getQBound(),
      op.getScaleAttr(),
      op.getMaskKindAttr(), ValueRange{acc, max, sum});
  copyModRegions(rewriter, loc, op, online, OpFoldResult());
  SmallVector<Value> results = builders::buildNormalization(
      rewriter, loc, online.getResult(0), online.getResult(1),
      online.getResult(2), op.getOutputs());
  rewriter.replaceOp(op, results);
  return results;
}

SmallVector<Value> mlir::attn::mergeOnlineAttentionPartials(
    OpBuilder &b, Location loc, Value acc, Value max, Value sum,
    ValueRange outInits) {
  return builders::buildMergePartials(b, loc, acc, max, sum, outInits);
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
