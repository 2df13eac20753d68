//===- CUDAPipeline.cpp - attn-cuda-pipeline ------------------------------===//
//
// attn.attention (in a function on tensors or on the kernel memrefs) ->
// attn-memref-kernel-interface -> attn-tile-attention ->
// attn-cuda-lower-attention
// (gpu.launch with cp.async double buffering and mma.sync) -> upstream:
// gpu-kernel-outlining, nvvm-attach-target, the gpu.module lowering to the
// NVVM / LLVM dialects, and gpu-module-to-binary with format=isa (PTX text
// in a gpu.binary). The host function keeps its gpu.launch_func: the attn
// runtime launches the kernel itself through the CUDA driver API, so the
// host side is never lowered.
//
//===----------------------------------------------------------------------===//

#include "attn/Pipelines/Pipelines.h"
#include "attn/Transforms/CUDA/CUDATarget.h"
#include "attn/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::attn;

void mlir::attn::buildCUDAPipeline(OpPassManager &pm,
                                   const CUDAPipelineOptions &options) {
  // Tensor-form functions (as the CPU pipeline takes them) get the kernel
  // modules' memref interface; memref-form ones are left alone.
  pm.addPass(createMemRefKernelInterfacePass());
  TileAttentionPassOptions tileOptions;
  tileOptions.tileSizes.assign(options.tileSizes.begin(),
                               options.tileSizes.end());
  // Without tile-sizes the compiler chooses them for CUDA.
  tileOptions.target = "cuda";
  pm.addPass(createTileAttentionPass(tileOptions));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  CUDALowerAttentionPassOptions lowerOptions;
  lowerOptions.chip = options.chip;
  pm.addNestedPass<func::FuncOp>(createCUDALowerAttentionPass(lowerOptions));
  if (options.emit == "kernel") {
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    return;
  }

  // Outline before any CSE, which would let the kernel reuse host values
  // (the kernel's parameters must be the memrefs only); constants and
  // memref.dim ops move into the launch first.
  pm.addNestedPass<func::FuncOp>(createGpuLaunchSinkIndexComputationsPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  std::optional<CUDATarget> desc = CUDATarget::get(options.chip);
  target.features = desc ? desc->ptxFeatures.str() : "+ptx80";
  target.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(target));
  OpPassManager &device = pm.nest<gpu::GPUModuleOp>();
  device.addPass(createLowerAffinePass());
  device.addPass(arith::createArithExpandOpsPass());
  device.addPass(createSCFToControlFlowPass());
  device.addPass(createConvertNVGPUToNVVMPass());
  device.addPass(createConvertGpuOpsToNVVMOps());
  device.addPass(createConvertNVVMToLLVMPass());
  device.addPass(createCanonicalizerPass());
  device.addPass(createCSEPass());
  device.addPass(createReconcileUnrealizedCastsPass());
  if (options.emit == "nvvm")
    return;

  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = "isa";
  pm.addPass(createGpuModuleToBinaryPass(binary));
}
