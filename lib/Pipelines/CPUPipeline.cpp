//===- CPUPipeline.cpp - attn-cpu-pipeline --------------------------------===//

#include "attn/Pipelines/Pipelines.h"
#include "attn/Conversion/Passes.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/TileSelection.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Affine/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::attn;

/// Bufferization: kernel arguments keep their (strided) memref types; tile
/// temporaries are hoisted to the function entry and put on the stack.
static void addBufferization(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addNestedPass<func::FuncOp>(createCPUHoistStaticAllocationsPass());
  bufferization::PromoteBuffersToStackPassOptions stack;
  stack.maxAllocSizeInBytes = 1 << 20;
  stack.maxRankOfAllocatedMemRef = 6;
  pm.addNestedPass<func::FuncOp>(
      bufferization::createPromoteBuffersToStackPass(stack));
  bufferization::buildBufferDeallocationPipeline(pm);
}

FailureOr<CPUTargetInfo>
mlir::attn::resolveCPUTarget(const CPUPipelineOptions &options,
                             std::string &error) {
  CPUTargetInfo target;
  if (options.cpu == "host") {
    target = CPUTargetInfo::host();
  } else if (const CPUTargetInfo *level = CPUTargetInfo::lookup(options.cpu)) {
    target = *level;
  } else {
    error = "cpu: unknown CPU target '" + options.cpu +
            "' (known: host, generic, " + CPUTargetInfo::levelNames() + ")";
    return failure();
  }
  if (options.vectorWidth.hasValue())
    target.vectorWidth = options.vectorWidth;
  if (options.avx512.hasValue())
    target.avx512f = options.avx512;
  if (options.bf16Dot.hasValue())
    target.avx512bf16 = options.bf16Dot;
  if (options.amx.hasValue())
    target.amxBf16 = options.amx;
  return target;
}

/// The standard lowering to the LLVM dialect.
static void addLowerToLLVM(OpPassManager &pm, const CPUTargetInfo &target) {
  pm.addNestedPass<func::FuncOp>(createCPULowerCopiesPass());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  CPUApproximateMathPassOptions mathOptions;
  mathOptions.avx512 = target.avx512f;
  pm.addNestedPass<func::FuncOp>(createCPUApproximateMathPass(mathOptions));
  // Without AVX512-BF16, LLVM would call compiler-rt for f32 -> bf16:
  // the conversions as integer arithmetic here, bf16 stores as i16 below.
  if (!target.avx512bf16)
    pm.addPass(createCPUExpandBF16Pass());
  pm.addPass(affine::createAffineExpandIndexOpsPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  ConvertVectorToLLVMPassOptions vectorOptions;
  vectorOptions.reassociateFPReductions = true;
  vectorOptions.x86Vector = true;
  vectorOptions.amx = target.amxBf16;
  pm.addPass(createConvertVectorToLLVMPass(vectorOptions));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  if (!target.avx512bf16)
    pm.addPass(createCPUExpandBF16Pass());
}

LogicalResult mlir::attn::buildCPUPipeline(
    OpPassManager &pm, const CPUPipelineOptions &options,
    function_ref<LogicalResult(const Twine &)> errorHandler) {
  std::string error;
  FailureOr<CPUTargetInfo> resolved = resolveCPUTarget(options, error);
  if (failed(resolved))
    return errorHandler ? errorHandler(error) : failure();
  const CPUTargetInfo &target = *resolved;
  TileAttentionPassOptions tileOptions;
  tileOptions.tileSizes.assign(options.tileSizes.begin(),
                               options.tileSizes.end());
  // Without tile-sizes the compiler chooses them for this CPU target.
  tileOptions.target = "cpu";
  tileOptions.cpuAmx = target.amxBf16;
  tileOptions.cpuVectorWidth = target.vectorWidth;
  if (options.reference) {
    pm.addPass(createConvertAttnToLinalgPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    pm.addNestedPass<func::FuncOp>(createCPUDistributeWorkgroupsPass());
    addBufferization(pm);
    if (options.lowerToLLVM)
      addLowerToLLVM(pm, target);
    return success();
  }
  bool vectorCodegen = options.codegen == CPUPipelineOptions::Codegen::Vector;
  // The band a mask_mod implies, before the tiles are chosen and skipped.
  pm.addPass(createInferMaskBandPass());
  pm.addPass(createTileAttentionPass(tileOptions));
  if (vectorCodegen) {
    // Each tile becomes linalg stages on tensors, in the target's layout;
    // canonical first, so that a query block is one value for all its tiles.
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    CPUDecomposeOnlineAttentionPassOptions decomposeOptions;
    decomposeOptions.vectorWidth = target.vectorWidth;
    decomposeOptions.bf16Dot = target.avx512bf16;
    decomposeOptions.amx = target.amxBf16;
    pm.addNestedPass<func::FuncOp>(
        createCPUDecomposeOnlineAttentionPass(decomposeOptions));
  } else {
    pm.addPass(createDecomposeOnlineAttentionPass());
  }
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addNestedPass<func::FuncOp>(createCPUDistributeWorkgroupsPass());
  // The stages' lowering is decided on tensors, where a stage's init is an
  // SSA value, and carried out on buffers.
  if (vectorCodegen)
    pm.addNestedPass<func::FuncOp>(createCPUPlanStagesPass());
  addBufferization(pm);
  if (vectorCodegen) {
    CPULowerStagesPassOptions lowerOptions;
    lowerOptions.vectorWidth = target.vectorWidth;
    lowerOptions.vectorRegisters = target.vectorRegisters;
    pm.addNestedPass<func::FuncOp>(createCPULowerStagesPass(lowerOptions));
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
  }
  if (options.lowerToLLVM)
    addLowerToLLVM(pm, target);
  return success();
}

void mlir::attn::registerAttnPipelines() {
  // Registered with an error handler: an unknown `cpu` is reported.
  registerPassPipeline(
      "attn-cpu-pipeline",
      "Lower attn.attention to LLVM for a CPU target level (default: the "
      "host's) through the flash path",
      [](OpPassManager &pm, StringRef optionsStr,
         function_ref<LogicalResult(const Twine &)> errorHandler) {
        CPUPipelineOptions options;
        if (failed(options.parseFromString(optionsStr)))
          return failure();
        return buildCPUPipeline(pm, options, errorHandler);
      },
      [](function_ref<void(const mlir::detail::PassOptions &)> optHandler) {
        optHandler(CPUPipelineOptions());
      });
  PassPipelineRegistration<CUDAPipelineOptions>(
      "attn-cuda-pipeline",
      "Lower attn.attention to a CUDA kernel (PTX for sm_80 / sm_90) through "
      "the flash path: cp.async double buffering, mma.sync tensor cores",
      buildCUDAPipeline);
}
