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
LogicalResult AttentionOp::verifyRegions() { return verifyModRegions(*this); }
LogicalResult OnlineAttentionOp::verifyRegions() {
  return verifyModRegions(*this);
}

double AttentionOp::getScaleValue() {
  return AttentionOpDetail(*this).scale();
}
double OnlineAttentionOp::getScaleValue() {
  return AttentionOpDetail(*this).scale();
}

void OnlineAttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  // On tensors the op is pure; on memrefs it reads every buffer and writes
  // its acc, max and sum buffers.
  for (OpOperand &operand : getOperation()->getOpOperands()) {
    if (!isa<MemRefType>(operand.get().getType()))
      continue;
    effects.emplace_back(MemoryEffects::Read::get(), &operand,
                         SideEffects::DefaultResource::get());
    if (isDpsInit(&operand))
      effects.emplace_back(MemoryEffects::Write::get(), &operand,
                           SideEffects::DefaultResource::get());
  }
}

Speculation::Speculatability OnlineAttentionOp::getSpeculatability() {
  return hasPureTensorSemantics() ? Speculation::Speculatable
                                  : Speculation::NotSpeculatable;
}
