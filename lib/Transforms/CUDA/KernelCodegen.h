//===- KernelCodegen.h - pieces shared by the CUDA kernels ----*- C++ -*-===//
//
// Internal interface between the CUDA workgroup lowering (LowerWorkgroup.cpp),
// which turns the tiled workgroup structure of attn-tile-attention into a
// gpu.launch with a software-pipelined key loop, and the per-block code
// generators (TensorCoreTile.cpp for f16/bf16 with mma.sync, SIMTTile.cpp
// for f32 with FMA), which own the registers of the online softmax.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_CUDA_KERNELCODEGEN_H
#define ATTN_LIB_TRANSFORMS_CUDA_KERNELCODEGEN_H

#include "../GPU/WorkgroupCodegen.h"
#include "attn/Transforms/CUDA/CUDATarget.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

#include <limits>
#include <memory>

namespace mlir {
namespace attn {
namespace cuda {

// The target-neutral emitter, workgroup facts and mask helpers.
using namespace gpu_lowering;

/// The per-block code of one kind of kernel.
class TileCodegen {
public:
  virtual ~TileCodegen();
  virtual int64_t numThreads() const = 0;
  /// Shared memory beyond the key/value stages, in bytes.
  virtual int64_t scratchBytes() const = 0;
  /// Elements of padding after each key/value row in shared memory.
  virtual int64_t rowPadding() const = 0;
  /// Loads what lives for the whole kernel (query fragments) and returns
  /// the initial online-softmax state, carried by the key loop.
  virtual SmallVector<Value> prologue(Emitter &e, const KernelInputs &in,
                                      const SharedTiles &smem) = 0;
  /// Folds the key block in `stage` into the state.
  virtual SmallVector<Value> block(Emitter &e, const KernelInputs &in,
                                   const SharedTiles &smem, Value stage,
                                   const BlockPositions &pos,
                                   ValueRange state) = 0;
  /// Normalises and stores the output (and log-sum-exp).
  virtual void epilogue(Emitter &e, const KernelInputs &in,
                        ValueRange state) = 0;
};

/// f16 / bf16: one warp per 16 query rows, mma.sync.m16n8k16 with f32
/// accumulators, ldmatrix from the staged tiles. Fails (with a message) for
/// shapes it cannot handle.
FailureOr<std::unique_ptr<TileCodegen>>
createTensorCoreCodegen(const TileShape &shape, const MaskInfo &mask,
                        double scale, std::string &why);
/// f32: a thread per 4 query rows x (blockK / 8) keys, FMA.
FailureOr<std::unique_ptr<TileCodegen>>
createSIMTCodegen(const TileShape &shape, const MaskInfo &mask, double scale,
                  std::string &why);

} // namespace cuda
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_CUDA_KERNELCODEGEN_H
