//===- GPUTarget.h - what the GPU workgroup lowering asks of a GPU -*- C++ -*-===//
//
// The target-neutral half of a GPU target description (after Triton's
// TargetInfoBase): the limits that decide whether a kernel fits and the
// capabilities the workgroup lowering chooses between. The workgroup
// analysis and emitter (lib/Transforms/GPU) see only this; a target's own
// code generation (lib/Transforms/CUDA for NVIDIA: CUDATarget) extends it
// with what only it knows (PTX features, chip names). A second GPU target
// gets a description of this type and a code generator of its own.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_GPU_GPUTARGET_H
#define ATTN_TRANSFORMS_GPU_GPUTARGET_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>

namespace mlir {
namespace attn {

struct GPUTargetInfo {
  /// Threads of a subgroup (warp) that shuffles exchange values within.
  unsigned subgroupSize = 32;
  /// Largest dynamic shared (workgroup) memory one block may use, and the
  /// shared memory of one multiprocessor, in bytes.
  int64_t maxSharedBytesPerBlock = 48 * 1024;
  int64_t sharedBytesPerSM = 64 * 1024;
  /// 32-bit registers of one multiprocessor and the most one thread may use.
  int64_t registersPerSM = 65536;
  int64_t maxRegistersPerThread = 255;
  int64_t maxThreadsPerSM = 2048;
  int64_t maxThreadsPerBlock = 1024;
  /// Global -> shared copies that bypass registers and complete
  /// asynchronously (CUDA: cp.async), for the double-buffered key loop.
  bool hasAsyncCopy = false;
  /// Warp-level 16 x 8 x 16 matrix products of f16 / bf16 with f32
  /// accumulators (CUDA: mma.sync.aligned.m16n8k16).
  bool hasMatrixMultiply = false;
  /// LLVM intrinsics for the softmax's fast exp2 and log2 (CUDA:
  /// ex2.approx.ftz / lg2.approx.ftz); empty: math.exp2 / math.log2.
  llvm::StringRef exp2Intrinsic, log2Intrinsic;
};

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_GPU_GPUTARGET_H
