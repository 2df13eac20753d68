//===- AttnAttrs.cpp - attn dialect attributes ----------------------------===//

#include "dialect/attn/IR/AttnAttrs.h"
#include "dialect/attn/IR/AttnDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;

#include "dialect/attn/IR/AttnAttrInterfaces.cpp.inc"
#include "dialect/attn/IR/AttnEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/attn/IR/AttnAttrs.cpp.inc"

void AttnDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialect/attn/IR/AttnAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// CausalAttr: keys j <= i (+ shift).
//===----------------------------------------------------------------------===//

std::optional<int64_t> CausalAttr::getBandLower() const { return std::nullopt; }
std::optional<int64_t> CausalAttr::getBandUpper() const { return 0; }
MaskAlignment CausalAttr::getBandAlignment() const { return getAlignment(); }

//===----------------------------------------------------------------------===//
// SlidingWindowAttr: keys i - left <= j <= i + right (+ shift).
//===----------------------------------------------------------------------===//

LogicalResult
SlidingWindowAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                          int64_t left, int64_t right, MaskAlignment) {
  if (left < 0 || right < 0)
    return emitError() << "sliding_window bounds must be >= 0, got left = "
                       << left << ", right = " << right;
  return success();
}

std::optional<int64_t> SlidingWindowAttr::getBandLower() const {
  return -getLeft();
}
std::optional<int64_t> SlidingWindowAttr::getBandUpper() const {
  return getRight();
}
MaskAlignment SlidingWindowAttr::getBandAlignment() const {
  return getAlignment();
}
