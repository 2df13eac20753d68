//===- MaskEvaluation.h - constant masks, evaluated and classified --*- C++ -*-===//
//
// For attn-fuse-attention: evaluates an integer (i1, int, index) tensor that
// an exported program computes from constants and linalg.index (torch's
// tril / triu / arange comparisons), and says which attn mask kind, if any,
// keeps exactly the keys such a mask keeps. Internal to lib/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_MASKEVALUATION_H
#define ATTN_LIB_TRANSFORMS_MASKEVALUATION_H

#include "dialect/attn/IR/AttnOps.h"

#include "mlir/IR/Value.h"

#include <vector>

namespace mlir {
namespace attn {

/// Masks larger than this many elements are not evaluated (left unfused).
constexpr int64_t kMaxEvaluatedMask = int64_t(1) << 24;
/// The budget of one evaluateIntTensor call, over every tensor it computes:
/// element evaluations times the ops of each body (work), and elements held
/// (memory, 8 bytes each). Beyond either, the evaluation fails and says so.
constexpr int64_t kMaxMaskEvaluationSteps = int64_t(1) << 26;
constexpr int64_t kMaxMaskEvaluationElements = int64_t(1) << 24;

/// A constant integer tensor (i1, integers, index), row-major. Every value
/// is held sign-extended from its bit width, i1 included: true is -1,
/// whether a constant or computed (so `cmpi ne %keep, %true` and `extsi`
/// mean what they say); a mask keeps where the value is non-zero.
struct IntTensor {
  SmallVector<int64_t> shape;
  std::vector<int64_t> data;
};

/// The value of an integer tensor computed from constants (dense and
/// dense_resource) and linalg.index by elementwise (all-parallel,
/// projected-map) linalg.generics with arith integer ops, fills and
/// reshapes, for static shapes of at most kMaxEvaluatedMask elements;
/// failure for anything else, and when the evaluation would exceed
/// kMaxMaskEvaluationSteps or kMaxMaskEvaluationElements (then
/// `overBudget`, when given, is set).
FailureOr<IntTensor> evaluateIntTensor(Value v, bool *overBudget = nullptr);

/// The mask kind that keeps exactly keep[i][j] (Sq x Sk, row-major), or null:
/// a causal mask or a sliding window around the diagonal (left, right >= 0,
/// clipped at the matrix), top-left or bottom-right aligned, causal
/// preferred where both fit. Every row must keep a key (a fully hidden row
/// would give 0 instead of the framework's NaN).
MaskKindAttrInterface classifyBand(MLIRContext *ctx, ArrayRef<int64_t> keep,
                                   int64_t sq, int64_t sk);

} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_MASKEVALUATION_H
