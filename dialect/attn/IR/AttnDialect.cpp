//===- AttnDialect.cpp - attn dialect -------------------------------------===//

#include "dialect/attn/IR/AttnDialect.h"
#include "dialect/attn/IR/AttnOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;

#include "dialect/attn/IR/AttnDialect.cpp.inc"

void AttnDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialect/attn/IR/AttnOps.cpp.inc"
      >();
  registerAttributes();
}
