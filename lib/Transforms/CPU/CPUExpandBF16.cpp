//===- CPUExpandBF16.cpp - no bf16 arithmetic for LLVM --------------------===//
//
// For CPU targets without AVX512-BF16, where LLVM widens every bf16 value in
// a register to f32 and narrows it back with compiler-rt's __truncsfbf2
// (which a JIT-loaded kernel cannot resolve): f32 <-> bf16 conversions
// become integer arithmetic (MLIR's arith::populateExpandBFloat16Patterns:
// round to nearest even, NaN kept), and stores of bf16 values store their
// bits as i16.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CPUEXPANDBF16PASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;

namespace {

/// llvm.store of a bf16 scalar or vector -> llvm.store of its bits as i16
/// (the bitcast's source when the value is one).
struct StoreBF16Bits : OpRewritePattern<LLVM::StoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LLVM::StoreOp op,
                                PatternRewriter &rewriter) const override {
    Type type = op.getValue().getType();
    if (!getElementTypeOrSelf(type).isBF16())
      return failure();
    Type bitsType = rewriter.getI16Type();
    if (auto vector = dyn_cast<VectorType>(type))
      bitsType = vector.clone(bitsType);
    Value bits;
    if (auto cast = op.getValue().getDefiningOp<LLVM::BitcastOp>();
        cast && cast.getArg().getType() == bitsType)
      bits = cast.getArg();
    else
      bits = LLVM::BitcastOp::create(rewriter, op.getLoc(), bitsType,
                                     op.getValue());
    rewriter.modifyOpInPlace(op, [&] { op.getValueMutable().assign(bits); });
    return success();
  }
};

struct CPUExpandBF16Pass
    : public attn::impl::CPUExpandBF16PassBase<CPUExpandBF16Pass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    arith::populateExpandBFloat16Patterns(patterns);
    patterns.add<StoreBF16Bits>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
