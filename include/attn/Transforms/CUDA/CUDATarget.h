//===- CUDATarget.h - what the CUDA lowering knows about a chip -*- C++ -*-===//
//
// The NVIDIA GPU target description: the target-neutral GPUTargetInfo
// (limits, async copy, matrix products, shuffles, fast exp2) filled in for a
// chip, plus what only the CUDA code generation uses (chip name, PTX ISA
// features). Everything target-neutral (tiling, the online-softmax rewrite)
// never looks at it.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_CUDA_CUDATARGET_H
#define ATTN_TRANSFORMS_CUDA_CUDATARGET_H

#include "attn/Transforms/GPU/GPUTarget.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace mlir {
namespace attn {

/// One CUDA chip the compiler can generate code for. Limits are those of the
/// CUDA C Programming Guide's "Technical Specifications per Compute
/// Capability" table; `numSMs` and the peak figures describe the reference
/// board used by docs/gpu-performance-model.md (A100 SXM for sm_80, H100 SXM
/// for sm_90).
/// GPUTargetInfo for a chip: shared memory of 163 KB per block / 164 KB per
/// SM on sm_80 and 227 / 228 KB on sm_90; cp.async and
/// mma.sync.aligned.m16n8k16 on both (sm_90's warpgroup wgmma is not used);
/// exp2 / log2 as ex2.approx.ftz.f32 / lg2.approx.ftz.f32.
struct CUDATarget : GPUTargetInfo {
  /// "sm_80" or "sm_90".
  llvm::StringRef chip;
  /// 80 or 90.
  unsigned smVersion = 0;
  /// PTX ISA features for nvvm-attach-target, e.g. "+ptx80".
  llvm::StringRef ptxFeatures;

  /// The description of `chip`, or nullopt when it is not supported.
  static std::optional<CUDATarget> get(llvm::StringRef chip);
  /// "sm_80", "sm_90".
  static llvm::ArrayRef<llvm::StringRef> supportedChips();
  /// "sm_80 or sm_90", for error messages.
  static const char *supportedChipsString();
};

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_CUDA_CUDATARGET_H
