//===- LinalgBuildersDetail.h - helpers of the linalg builders --*- C++ -*-===//
//
// Small IR helpers shared by the linalg building blocks of attention
// (LinalgBuilders.cpp) and the one score stage (LinalgScoreStage.cpp).
// Internal to lib/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_LINALGBUILDERSDETAIL_H
#define ATTN_LIB_TRANSFORMS_LINALGBUILDERSDETAIL_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir {
namespace attn {
namespace builders {
namespace detail {

using utils::IteratorType;
constexpr IteratorType kPar = IteratorType::parallel;
constexpr IteratorType kRed = IteratorType::reduction;

inline Value f32Const(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

inline Value toF32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

inline arith::FastMathFlagsAttr contract(OpBuilder &b) {
  return arith::FastMathFlagsAttr::get(b.getContext(),
                                       arith::FastMathFlags::contract);
}

/// Map from `numDims` loops to the listed loop dims (or constant 0 for -1).
inline AffineMap mapOf(MLIRContext *ctx, unsigned numDims,
                       ArrayRef<int64_t> dims) {
  SmallVector<AffineExpr> exprs;
  for (int64_t d : dims)
    exprs.push_back(d < 0 ? getAffineConstantExpr(0, ctx)
                          : getAffineDimExpr(d, ctx));
  return AffineMap::get(numDims, 0, exprs, ctx);
}

inline Value emptyLike(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> shape,
                       Type elementType) {
  return tensor::EmptyOp::create(b, loc, shape, elementType);
}

inline SmallVector<OpFoldResult> mixedShape(OpBuilder &b, Location loc,
                                            Value v) {
  return tensor::getMixedSizes(b, loc, v);
}

/// The conjunction of keep conditions inside a generic body.
struct Conjunction {
  OpBuilder &b;
  Location loc;
  Value keep;

  void conj(Value c) {
    if (c)
      keep = keep ? arith::AndIOp::create(b, loc, keep, c).getResult() : c;
  }
};

} // namespace detail
} // namespace builders
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_LINALGBUILDERSDETAIL_H
