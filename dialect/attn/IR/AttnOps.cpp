//===- AttnOps.cpp - attn dialect operations ------------------------------===//

#include "dialect/attn/IR/AttnOps.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::attn;

#define GET_OP_CLASSES
#include "dialect/attn/IR/AttnOps.cpp.inc"

LogicalResult AttentionOp::verify() { return verifyAttentionLikeOp(*this); }
LogicalResult OnlineAttentionOp::verify() {
  return verifyAttentionLikeOp(*this);
}

double AttentionOp::getScaleValue() {
  return AttentionOpDetail(*this).scale();
}
double OnlineAttentionOp::getScaleValue() {
  return AttentionOpDetail(*this).scale();
}
