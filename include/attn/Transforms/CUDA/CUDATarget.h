//===- CUDATarget.h - what the CUDA lowering knows about a chip -*- C++ -*-===//
//
// The small target description behind which the CUDA-specific code generation
// keeps its knobs (after Triton's TargetInfoBase): which chip, which PTX ISA
// features, which matrix instructions exist, and the per-block / per-SM limits
// that decide whether a kernel fits. Everything target-neutral (tiling, the
// online-softmax rewrite) never looks at it.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_CUDA_CUDATARGET_H
#define ATTN_TRANSFORMS_CUDA_CUDATARGET_H

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
struct CUDATarget {
  /// "sm_80" or "sm_90".
  llvm::StringRef chip;
  /// 80 or 90.
  unsigned smVersion;
  /// PTX ISA features for nvvm-attach-target, e.g. "+ptx80".
  llvm::StringRef ptxFeatures;
  /// Largest dynamic shared memory one block may opt into, in bytes
  /// (163 KB on sm_80, 227 KB on sm_90).
  int64_t maxSharedBytesPerBlock;
  /// Shared memory of one SM, in bytes (164 KB / 228 KB).
  int64_t sharedBytesPerSM;
  /// 32-bit registers of one SM and the most one thread may use.
  int64_t registersPerSM = 65536;
  int64_t maxRegistersPerThread = 255;
  int64_t maxThreadsPerSM = 2048;
  int64_t maxThreadsPerBlock = 1024;
  /// cp.async (global -> shared without registers) exists from sm_80.
  bool hasAsyncCopy = true;
  /// mma.sync.aligned.m16n8k16 with f16 and bf16 operands, f32 accumulators,
  /// exists from sm_80. (sm_90's warpgroup wgmma is not used: the kernels use
  /// mma.sync on both chips.)
  bool hasMmaM16N8K16 = true;

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
