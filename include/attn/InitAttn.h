//===- InitAttn.h - register the attn dialect, passes, pipelines -*- C++ -*-===//
#ifndef ATTN_INITATTN_H
#define ATTN_INITATTN_H

#include "attn/Conversion/Passes.h"
#include "attn/Pipelines/Pipelines.h"
#include "attn/Transforms/Passes.h"
#include "dialect/attn/IR/AttnDialect.h"
#include "dialect/attn/IR/BufferizableOpInterfaceImpl.h"
#include "mlir/IR/DialectRegistry.h"

namespace mlir {
namespace attn {

/// Adds the attn dialect and its external interface models (bufferization)
/// to `registry`.
inline void registerAttnDialect(DialectRegistry &registry) {
  registry.insert<AttnDialect>();
  registerBufferizableOpInterfaceExternalModels(registry);
}

/// Registers every attn pass and pipeline with the global registry (for
/// attn-opt and PassManager::parsePassPipeline).
inline void registerAllAttnPassesAndPipelines() {
  registerAttnPasses();
  registerAttnConversionPasses();
  registerAttnPipelines();
}

} // namespace attn
} // namespace mlir

#endif // ATTN_INITATTN_H
