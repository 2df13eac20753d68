//===- FragmentLayout.h - which lane holds which element --------*- C++ -*-===//
//
// The thread -> element maps of the CUDA attention kernels, as affine maps of
// the lane (or thread) id. The kernel generator builds its addresses with
// these maps (affine.apply), and the unit tests evaluate the same maps on the
// CPU against an independent transcription of the PTX ISA fragment tables
// (test/unittests/FragmentLayoutTest.cpp), so a wrong layout fails a test on
// a machine without a GPU.
//
// Tensor cores: mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16} (PTX ISA,
// "Matrix Fragments for mma.m16n8k16 with floating point type"), with
// groupID = lane / 4 and threadID_in_group = lane % 4:
//
//   A (16x16) vector<4x2xT>[reg][e] -> row groupID + 8 * (reg % 2),
//                                      col 2 * tig + e + 8 * (reg / 2)
//   B (16x8)  vector<2x2xT>[reg][e] -> k 2 * tig + e + 8 * reg, n groupID
//   C/D (16x8) vector<2x2xf32>[r][e] -> row groupID + 8 * r, col 2 * tig + e
//
// (tig = threadID_in_group).
//
// ldmatrix.m8n8.x{1,2,4}: lane L supplies the address of row L % 8 of matrix
// L / 8; register m of lane L receives elements (L / 4, 2 * (L % 4) + e) of
// matrix m, or (2 * (L % 4) + e, L / 4) with .trans.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_CUDA_FRAGMENTLAYOUT_H
#define ATTN_TRANSFORMS_CUDA_FRAGMENTLAYOUT_H

#include "mlir/IR/AffineMap.h"

#include <utility>

namespace mlir {
namespace attn {
namespace cuda {

//===----------------------------------------------------------------------===//
// mma.m16n8k16 fragments: (lane) -> (row, col)
//===----------------------------------------------------------------------===//

/// Element [r][e] of the f32 accumulator fragment vector<2x2xf32>.
AffineMap getMmaAccumulatorMap(MLIRContext *ctx, int64_t r, int64_t e);
/// Element [reg][e] of the A fragment vector<4x2xT> (16 x 16, row major).
AffineMap getMmaAMap(MLIRContext *ctx, int64_t reg, int64_t e);
/// Element [reg][e] of the B fragment vector<2x2xT>: (k, n) of the 16 x 8 B.
AffineMap getMmaBMap(MLIRContext *ctx, int64_t reg, int64_t e);

//===----------------------------------------------------------------------===//
// ldmatrix addresses of the attention kernel: (lane) -> (row, col) of the
// shared-memory tile, relative to the corner named below.
//===----------------------------------------------------------------------===//

/// S = Q K^T: the B operands of one n-tile (8 keys) for two k-steps (32
/// values of d) with one ldmatrix.x4 (no transpose) from the key tile
/// [key][d]; corner (8 * nTile, 32 * dChunk). Registers 0, 1 are the B
/// fragment of the first k-step, 2, 3 of the second.
AffineMap getKeyLdmatrixX4Map(MLIRContext *ctx);
/// The same for one k-step (16 values of d) with ldmatrix.x2 (head_dim % 32
/// == 16); corner (8 * nTile, 16 * dStep).
AffineMap getKeyLdmatrixX2Map(MLIRContext *ctx);
/// O += P V: the B operands of one n-tile (8 columns of v_head_dim) for two
/// k-steps (32 keys) with one ldmatrix.x4.trans from the value tile [key][dv];
/// corner (32 * keyChunk, 8 * nTile). Registers 0, 1: first k-step; 2, 3:
/// second.
AffineMap getValueLdmatrixX4Map(MLIRContext *ctx);
/// The same for one k-step (16 keys) with ldmatrix.x2.trans; corner
/// (16 * keyStep, 8 * nTile).
AffineMap getValueLdmatrixX2Map(MLIRContext *ctx);

/// P V reads P from the S accumulators (FlashAttention-2): register `reg` of
/// the A fragment of k-step kk (keys 16 kk .. 16 kk + 15) is row half
/// `second` of the accumulator of S n-tile 2 kk + `first`.
std::pair<int64_t, int64_t> getScoreSourceOfA(int64_t reg);

//===----------------------------------------------------------------------===//
// SIMT (f32) kernel: (thread) -> row / column of the block's tiles
//===----------------------------------------------------------------------===//

/// Threads per SIMT row group: the lanes that share rows and reduce them
/// with shuffles (xor 1, 2, 4).
constexpr int64_t kSimtGroupLanes = 8;
/// Rows per SIMT thread.
constexpr int64_t kSimtRowsPerThread = 4;
/// Row `i` (0..3) of the query tile owned by a thread.
AffineMap getSimtRowMap(MLIRContext *ctx, int64_t i);
/// Score column `j` (0 .. block_k / 8 - 1) of the key tile owned by a thread.
AffineMap getSimtScoreColMap(MLIRContext *ctx, int64_t j);
/// First of the four contiguous output columns of chunk `y` (0 .. Dv / 32 - 1)
/// owned by a thread.
AffineMap getSimtOutputColMap(MLIRContext *ctx, int64_t y);

} // namespace cuda
} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_CUDA_FRAGMENTLAYOUT_H
