//===- Pipelines.h - attn pass pipelines ------------------------*- C++ -*-===//
#ifndef ATTN_PIPELINES_PIPELINES_H
#define ATTN_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir {
namespace attn {

/// Options of attn-cpu-pipeline.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  ListOption<int64_t> tileSizes{
      *this, "tile-sizes",
      llvm::cl::desc("Tile sizes (batch, heads, query, key); default 1,1,64,64")};
  Option<bool> lowerToLLVM{
      *this, "lower-to-llvm",
      llvm::cl::desc("Lower all the way to the LLVM dialect (default true); "
                     "false stops after bufferization"),
      llvm::cl::init(true)};
};

/// attn.attention on tensors -> LLVM dialect for the host CPU, through the
/// flash path: attn-tile-attention, attn-decompose-online-attention,
/// workgroup distribution, one-shot bufferization, then the standard
/// lowering to LLVM. The Sq x Sk score matrix is never materialised: only
/// [tile_q, tile_k] score tiles are.
void buildCPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Registers attn-cpu-pipeline (and, when built, attn-cuda-pipeline).
void registerAttnPipelines();

} // namespace attn
} // namespace mlir

#endif // ATTN_PIPELINES_PIPELINES_H
