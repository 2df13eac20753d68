//===- DecomposeOnlineAttention.cpp - online_attention -> linalg ----------===//
//
// One step of the online softmax (FlashAttention-2, Dao 2023, Alg. 1 lines
// 8-10) on tensors:
//
//   S     = scale * Q K^T + bias, hidden keys -> -inf
//   m'    = max(m, rowmax(S))      alpha = exp(m - m')  (one generic, in place)
//   P     = exp(S - m')
//   l'    = alpha * l + rowsum(P)
//   acc'  = alpha * acc + P V
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/LinalgBuilders.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include <limits>


namespace mlir {
namespace attn {
#define GEN_PASS_DEF_DECOMPOSEONLINEATTENTIONPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::builders;

FailureOr<SmallVector<Value>>
mlir::attn::decomposeOnlineAttention(RewriterBase &rewriter,
                                     OnlineAttentionOp op) {
  // The decomposition builds linalg on tensors from the op's operands.
  if (!op.hasPureTensorSemantics())
    return op.emitOpError("decomposition needs tensor operands (run it "
                          "before bufferization)");
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  AttentionOpDetail detail(op);
  FailureOr<GroupedOperands> grouped = groupOperands(rewriter, detail);
  if (failed(grouped))
    return failure();
  int64_t group = grouped->group;

  Value accIn = expandHeads(rewriter, loc, op.getAccInit(), group);
  Value maxIn = expandHeads(rewriter, loc, op.getMaxInit(), group);
  Value sumIn = expandHeads(rewriter, loc, op.getSumInit(), group);

  Value scores = buildScores(rewriter, loc, *grouped);
  scores = buildMaskedScores(rewriter, loc, *grouped, scores);
  Value rowMax = buildRowMax(
      rewriter, loc, scores,
      buildFilled(rewriter, loc, grouped->rowShape,
                  -std::numeric_limits<double>::infinity()));
  auto [maxNew, alpha] = buildMaxUpdate(rewriter, loc, maxIn, rowMax);
  Value probs = buildExpSubRow(rewriter, loc, scores, maxNew);
  Value sumNew = buildRowSum(rewriter, loc, probs,
                             buildScaleRows(rewriter, loc, sumIn, alpha));
  Value value = buildGuardedValue(rewriter, loc, *grouped);
  Value accNew = buildProbsTimesValue(
      rewriter, loc, probs, value, buildScaleRows(rewriter, loc, accIn, alpha));

  SmallVector<Value> results = {collapseHeads(rewriter, loc, accNew),
                                collapseHeads(rewriter, loc, maxNew),
                                collapseHeads(rewriter, loc, sumNew)};
  rewriter.replaceOp(op, results);
  return results;
}

namespace {
struct DecomposeOnlineAttentionPattern : OpRewritePattern<OnlineAttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(OnlineAttentionOp op,
                                PatternRewriter &rewriter) const override {
    return success(succeeded(decomposeOnlineAttention(rewriter, op)));
  }
};

struct DecomposeOnlineAttentionPass
    : attn::impl::DecomposeOnlineAttentionPassBase<
          DecomposeOnlineAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<OnlineAttentionOp> ops;
    getOperation()->walk([&](OnlineAttentionOp op) { ops.push_back(op); });
    for (OnlineAttentionOp op : ops)
      if (failed(decomposeOnlineAttention(rewriter, op)))
        return signalPassFailure();
  }
};
} // namespace

void mlir::attn::populateDecomposeOnlineAttentionPatterns(
    RewritePatternSet &patterns) {
  patterns.add<DecomposeOnlineAttentionPattern>(patterns.getContext());
}
