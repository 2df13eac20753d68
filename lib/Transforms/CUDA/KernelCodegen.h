//===- KernelCodegen.h - pieces shared by the CUDA kernels ----*- C++ -*-===//
//
// Internal interface between the workgroup lowering (LowerWorkgroup.cpp),
// which turns the tiled workgroup structure of attn-tile-attention into a
// gpu.launch with a software-pipelined key loop, and the per-block code
// generators (TensorCoreTile.cpp for f16/bf16 with mma.sync, SIMTTile.cpp
// for f32 with FMA), which own the registers of the online softmax.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_CUDA_KERNELCODEGEN_H
#define ATTN_LIB_TRANSFORMS_CUDA_KERNELCODEGEN_H

#include "attn/Transforms/CUDA/CUDATarget.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

#include <limits>
#include <memory>

namespace mlir {
namespace attn {
namespace cuda {

/// Index / float arithmetic at the builder's insertion point.
struct Emitter {
  OpBuilder &b;
  Location loc;

  Value idx(int64_t v);
  Value i32(int64_t v);
  Value f32(double v);
  Value add(Value x, Value y);
  Value sub(Value x, Value y);
  Value mul(Value x, Value y);
  Value minI(Value x, Value y);
  Value maxI(Value x, Value y);
  Value cmpI(arith::CmpIPredicate pred, Value x, Value y);
  Value andI(Value x, Value y);
  Value select(Value cond, Value x, Value y);
  /// Result `result` of `map` applied to `operands` (affine.apply).
  Value apply(AffineMap map, unsigned result, ValueRange operands);
  /// Index -> i32 and back.
  Value toI32(Value v);
  /// exp2 / log2 with the PTX approximations ex2.approx.ftz.f32 and
  /// lg2.approx.ftz.f32 (relative error about 2^-22; no libdevice needed).
  Value exp2(Value x);
  Value log2(Value x);
  /// Butterfly shuffle of an f32 within groups of lanes (shfl.sync.bfly).
  Value shuffleXor(Value x, int32_t mask);
};

/// Static facts of a workgroup tile.
struct TileShape {
  Type elementType;       // of query, key and value: f16, bf16 or f32
  Type outputElementType; // of the output
  int64_t blockQ, blockK, headDim, vHeadDim;
  bool hasLse = false;
};

/// How keys are hidden: a band relative to the diagonal (causal, sliding
/// window) and a limit on absolute key positions (kv_bound, kv_lens).
struct MaskInfo {
  KeyBand band;
  /// The tile's own bottom-right shift (tile kv_len - tile q_len); tiling
  /// folds alignments into the query offset, so this is usually 0.
  int64_t shift = 0;
  bool hasKeyLimit = false;
  bool maskFree() const { return band.isUnbounded() && !hasKeyLimit; }
};

/// Values every block codegen needs, materialised in the kernel before the
/// key loop.
struct KernelInputs {
  Value threadId, warpId, laneId;
  /// query memref and the offsets of the tile's first element; rows of real
  /// data (the rest of the tile is padding, never stored).
  Value query;
  SmallVector<Value> queryOffsets;
  Value queryRows;
  /// Absolute position of query row 0 on the key axis (the op's q_offset).
  Value queryPos;
  Value output;
  SmallVector<Value> outputOffsets;
  Value outputRows;
  Value lse; // optional
  SmallVector<Value> lseOffsets;
};

/// Positions of one key block: its first key's absolute position and the
/// absolute position from which keys are hidden (kv_bound / kv_lens).
struct BlockPositions {
  Value keyPos;   // index
  Value keyLimit; // index; a huge value when nothing limits the keys
};

/// Shared-memory views: key and value tiles of the two pipeline stages,
/// memref<2 x blockK x (dim + pad) x T, workgroup>, and the dynamic shared
/// memory base (memref<?xi8, workgroup>) with the byte offset of the
/// codegen's own scratch.
struct SharedTiles {
  Value keys, values, base;
  int64_t scratchOffset = 0;
};

/// Visibility of a key block for query rows [rowFirst, rowLast] (absolute):
/// `any` when some (row, key) pair is kept, `all` when every pair is.
struct Visibility {
  Value any, all;
};
Visibility getVisibility(Emitter &e, const MaskInfo &mask, Value rowFirst,
                         Value rowLast, const BlockPositions &pos,
                         int64_t blockK);

/// Per-block constants for element masks: for the row at local index `row`
/// and the key at local index `col`, keep(row, col) is
///   lower <= relBase + col - row <= upper  and  col < colLimit.
struct ElementMask {
  Value relBase;  // i32: keyPos - queryPos - shift
  Value colLimit; // i32: keyLimit - keyPos clamped to [0, blockK]
};
ElementMask getElementMask(Emitter &e, const MaskInfo &mask,
                           const KernelInputs &in, const BlockPositions &pos,
                           int64_t blockK);
/// i1: keep(row, col) for i32 `row` and `col` (local indices).
Value keepElement(Emitter &e, const MaskInfo &mask, const ElementMask &em,
                  Value row, Value col);

/// Epilogue: when `writer` holds, stores the log-sum-exp of local row `row`,
/// ln(sum_j exp(scale s_j)) = (m * expFactor + log2 l) * ln 2 for the
/// running max `m` (in score units) and the row sum `l` of exp2 terms, or
/// -inf for a row with no visible key (`empty`). No-op without an LSE
/// output.
void storeLogSumExp(Emitter &e, const KernelInputs &in, Value writer, Value row,
                    Value m, Value l, Value empty, double expFactor);

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

/// Keys at or past this absolute position when nothing limits them.
constexpr int64_t kNoKeyLimit = int64_t(1) << 40;

/// log2(e) and ln(2) (the running max starts at attn::kNegInf).
constexpr double kLog2E = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

} // namespace cuda
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_CUDA_KERNELCODEGEN_H
