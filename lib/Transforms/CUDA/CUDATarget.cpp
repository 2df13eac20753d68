//===- CUDATarget.cpp - what the CUDA lowering knows about a chip ---------===//

#include "attn/Transforms/CUDA/CUDATarget.h"

using namespace mlir::attn;

std::optional<CUDATarget> CUDATarget::get(llvm::StringRef chip) {
  CUDATarget t;
  t.chip = chip;
  t.subgroupSize = 32;
  t.hasAsyncCopy = true;
  t.hasMatrixMultiply = true;
  t.exp2Intrinsic = "llvm.nvvm.ex2.approx.ftz.f32";
  t.log2Intrinsic = "llvm.nvvm.lg2.approx.ftz.f";
  if (chip == "sm_80") {
    t.chip = "sm_80";
    t.smVersion = 80;
    t.ptxFeatures = "+ptx80";
    t.maxSharedBytesPerBlock = 163 * 1024;
    t.sharedBytesPerSM = 164 * 1024;
    return t;
  }
  if (chip == "sm_90") {
    t.chip = "sm_90";
    t.smVersion = 90;
    t.ptxFeatures = "+ptx80";
    t.maxSharedBytesPerBlock = 227 * 1024;
    t.sharedBytesPerSM = 228 * 1024;
    return t;
  }
  return std::nullopt;
}

llvm::ArrayRef<llvm::StringRef> CUDATarget::supportedChips() {
  static const llvm::StringRef chips[] = {"sm_80", "sm_90"};
  return chips;
}

const char *CUDATarget::supportedChipsString() { return "sm_80 or sm_90"; }
