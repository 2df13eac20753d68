//===- Version.cpp - the compiler's identity ------------------------------===//

#include "attn/Runtime/Runtime.h"

#include "AttnVersion.inc"

#include "llvm/Config/llvm-config.h"

const char *attn::compilerVersion() {
  return "attn-mlir " ATTN_MLIR_VERSION " (" ATTN_MLIR_REVISION
         ") LLVM " LLVM_VERSION_STRING;
}
