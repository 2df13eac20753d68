//===- CUDALowerAttention.cpp - attn-cuda-lower-attention -----------------===//
//
// Thin pass around lowerWorkgroupToCUDAKernel (LowerWorkgroup.cpp).
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/CUDA/CUDATarget.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CUDALOWERATTENTIONPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

namespace {
/// True for the workgroup forall of attn-tile-attention.
bool isWorkgroupForall(scf::ForallOp forall) {
  std::optional<ArrayAttr> mapping = forall.getMapping();
  return mapping && !mapping->empty() &&
         llvm::all_of(*mapping, [](Attribute a) {
           return isa<gpu::GPUBlockMappingAttr>(a);
         });
}

struct CUDALowerAttentionPass
    : attn::impl::CUDALowerAttentionPassBase<CUDALowerAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    std::optional<CUDATarget> target = CUDATarget::get(chip);
    if (!target) {
      emitError(getOperation()->getLoc())
          << "attn-cuda-lower-attention: unsupported chip '" << chip
          << "' (expected " << CUDATarget::supportedChipsString() << ")";
      return signalPassFailure();
    }
    SmallVector<scf::ForallOp> foralls;
    getOperation()->walk([&](scf::ForallOp forall) {
      if (isWorkgroupForall(forall))
        foralls.push_back(forall);
    });
    IRRewriter rewriter(&getContext());
    for (scf::ForallOp forall : foralls)
      if (failed(lowerWorkgroupToCUDAKernel(rewriter, forall, *target)))
        return signalPassFailure();
  }
};
} // namespace
