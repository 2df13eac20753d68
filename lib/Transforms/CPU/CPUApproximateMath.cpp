//===- CPUApproximateMath.cpp - polynomial exp ----------------------------===//
//
// math.exp -> a polynomial that vectorizes. With `avx512`, exp of
// vector<16xf32> (the online softmax's) is expanded here, after the usual
// AVX-512 scheme (Cephes expf's range reduction and polynomial, the exponent
// applied with vscalefps): 15 instructions, about half of the generic
// expansion, which has to rebuild 2^k by integer bit manipulation and patch
// the overflow, underflow and NaN cases with selects. Other exps get MLIR's
// generic expansion.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CPUAPPROXIMATEMATHPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;

namespace {

/// exp(x) on vector<16xf32> with AVX-512:
///   x  = clamp(x, -110, 100)           (NaN kept: compare-and-select)
///   k  = roundeven(x * log2(e))
///   r  = x - k * ln2                   (ln2 in two parts, Cody-Waite)
///   e^r ~ 1 + r + r^2 * P(r)           (Cephes expf, |r| <= ln2 / 2)
///   exp(x) = vscalefps(e^r, k) = e^r * 2^k
/// vscalefps handles the whole exponent range: 2^k overflows to +inf for
/// x > ln(FLT_MAX), and rounds to denormals and then to exactly 0 below
/// ln(2^-126); the clamp keeps -inf (masked scores) and +inf away from the
/// inf - inf of the reduction, so exp(-inf) = 0 and exp(+inf) = +inf.
/// Error: at most 1 ulp over [-87, 88] (test/unittests/CodegenTest.cpp).
struct AVX512ExpPattern : OpRewritePattern<math::ExpOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(math::ExpOp op,
                                PatternRewriter &rewriter) const override {
    auto type = dyn_cast<VectorType>(op.getType());
    if (!type || type.getRank() != 1 || type.getNumElements() != 16 ||
        !type.getElementType().isF32() || type.isScalable())
      return rewriter.notifyMatchFailure(op, "not a vector<16xf32>");
    Location loc = op.getLoc();
    ImplicitLocOpBuilder b(loc, rewriter);
    auto cst = [&](float v) -> Value {
      return arith::ConstantOp::create(
          b, DenseElementsAttr::get(type, b.getF32FloatAttr(v)));
    };
    auto fma = [&](Value a, Value x, Value c) -> Value {
      return math::FmaOp::create(b, a, x, c);
    };
    Value x = op.getOperand();
    Value lo = cst(-110.0f), hi = cst(100.0f);
    x = arith::SelectOp::create(
        b, arith::CmpFOp::create(b, arith::CmpFPredicate::OLT, x, lo), lo, x);
    x = arith::SelectOp::create(
        b, arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, x, hi), hi, x);
    Value k = math::RoundEvenOp::create(
        b, arith::MulFOp::create(b, x, cst(1.44269504088896341f)));
    Value r = fma(k, cst(-0.693359375f), x);
    r = fma(k, cst(2.12194440e-4f), r);
    Value p = cst(1.9875691500e-4f);
    for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                    1.6666665459e-1f, 5.0000001201e-1f})
      p = fma(p, r, cst(c));
    Value r2 = arith::MulFOp::create(b, r, r);
    Value er = arith::AddFOp::create(b, fma(p, r2, r), cst(1.0f));
    Value allLanes = arith::ConstantOp::create(b, b.getI16IntegerAttr(-1));
    Value currentRounding = arith::ConstantOp::create(b, b.getI32IntegerAttr(4));
    // The op's operands go to llvm.x86.avx512.mask.scalef.ps.512(a, b,
    // passthru, mask, rounding) in order: (er, k, er) computes er * 2^k.
    rewriter.replaceOp(op, x86vector::MaskScaleFOp::create(
                               b, type, er, k, er, allLanes, currentRounding));
    return success();
  }
};

struct CPUApproximateMathPass
    : attn::impl::CPUApproximateMathPassBase<CPUApproximateMathPass> {
  using Base::Base;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    if (avx512)
      patterns.add<AVX512ExpPattern>(&getContext(), /*benefit=*/2);
    // exp, and tanh (softcapping), which would otherwise be a libm call
    // per element that a JIT-compiled kernel cannot link.
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
      return name == math::ExpOp::getOperationName() ||
             name == math::TanhOp::getOperationName();
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
