//===- CPUPipeline.cpp - attn-cpu-pipeline --------------------------------===//

#include "attn/Pipelines/Pipelines.h"
#include "attn/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::attn;

/// Bufferization and the standard lowering to the LLVM dialect.
static constexpr const char *kBufferizePipeline =
    "one-shot-bufferize{bufferize-function-boundaries=1 "
    "function-boundary-type-conversion=identity-layout-map},"
    "canonicalize,cse,"
    "func.func(attn-cpu-hoist-static-allocations),"
    "func.func(promote-buffers-to-stack{max-alloc-size-in-bytes=1048576 "
    "max-rank-of-allocated-memref=6}),"
    "buffer-deallocation-pipeline";

static constexpr const char *kLLVMPipeline =
    "func.func(attn-cpu-lower-copies,convert-linalg-to-loops),"
    "affine-expand-index-ops,lower-affine,"
    "convert-scf-to-cf,canonicalize,cse,"
    "expand-strided-metadata,lower-affine,"
    "convert-math-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,"
    "finalize-memref-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,"
    "reconcile-unrealized-casts";

void mlir::attn::buildCPUPipeline(OpPassManager &pm,
                                  const CPUPipelineOptions &options) {
  TileAttentionPassOptions tileOptions;
  tileOptions.tileSizes.assign(options.tileSizes.begin(),
                               options.tileSizes.end());
  pm.addPass(createTileAttentionPass(tileOptions));
  pm.addPass(createDecomposeOnlineAttentionPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addNestedPass<func::FuncOp>(createCPUDistributeWorkgroupsPass());
  auto addText = [&](const char *text) {
    if (failed(parsePassPipeline(text, pm, llvm::errs())))
      llvm::report_fatal_error("attn-cpu-pipeline: malformed internal pipeline");
  };
  addText(kBufferizePipeline);
  if (options.lowerToLLVM)
    addText(kLLVMPipeline);
}

void mlir::attn::registerAttnPipelines() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "attn-cpu-pipeline",
      "Lower attn.attention to LLVM for the host CPU through the flash path",
      buildCPUPipeline);
}
