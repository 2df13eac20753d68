//===- TileSizes.h - the tile sizes of attn-tile-attention ------*- C++ -*-===//
//
// The one representation of tile sizes, from a pipeline option, attn-run's
// --tile-sizes, the C API or Python, through the runtime's CompileOptions to
// the kernel's KernelInfo and the disk cache, and the one check of sizes a
// user gives. Light on purpose (no MLIR IR headers): the runtime's public
// headers include it.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_TILESIZES_H
#define ATTN_TRANSFORMS_TILESIZES_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/LogicalResult.h"

#include <array>
#include <cstdint>
#include <string>

namespace mlir {
namespace attn {

/// The largest query or key tile, in rows.
constexpr int64_t kMaxTileRows = 1024;

/// Tile sizes of attn-tile-attention, in elements: (batch, heads, query,
/// key). The head tile must divide q_heads and either divide or be a
/// multiple of the GQA group size (attn-tile-attention checks that against
/// the op).
struct AttentionTileSizes {
  int64_t batch = 1, heads = 1, query = 64, key = 64;

  /// From a (batch, heads, query, key) list of 4 positive sizes; an empty
  /// list gives the defaults. Fails for another count or a size <= 0.
  static llvm::FailureOr<AttentionTileSizes>
  fromList(llvm::ArrayRef<int64_t> sizes);
  std::array<int64_t, 4> toArray() const { return {batch, heads, query, key}; }
  bool operator==(const AttentionTileSizes &o) const {
    return toArray() == o.toArray();
  }
  bool operator!=(const AttentionTileSizes &o) const { return !(*this == o); }
};

/// The workgroup grid attn-tile-attention builds over (batch, q_heads,
/// q_len) for `sizes`: ceil(batch / tb) batch blocks, q_heads / th head
/// groups, ceil(q_len / tq) query blocks. The one formula of the CPU
/// workgroup count and the CUDA launch grid (attn-tile-attention builds the
/// same counts as IR for run-time sizes).
struct WorkgroupGrid {
  int64_t batchBlocks, headGroups, queryBlocks;
  int64_t count() const { return batchBlocks * headGroups * queryBlocks; }
};
inline WorkgroupGrid getWorkgroupGrid(int64_t batch, int64_t qHeads,
                                      int64_t qLen,
                                      const AttentionTileSizes &sizes) {
  auto ceilDiv = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  return {ceilDiv(batch, sizes.batch), qHeads / sizes.heads,
          ceilDiv(qLen, sizes.query)};
}

/// Which code generator tiles are checked for.
enum class TileTarget { Generic, CPU, CUDA };

/// The one check of tile sizes a user gives (attn-tile-attention's
/// tile-sizes, the runtime's CompileOptions): every size positive, batch and
/// head tiles below 2^31, query and key tiles at most kMaxTileRows, and on
/// the CPU the stack scratch of one workgroup (getCPUTileScratchBytes, with
/// head_dim `headDim` / `vHeadDim` and AMX buffers for bf16 when `amx`)
/// within kMaxCPUTileScratchBytes. Returns "" when they are valid, else the
/// reason, e.g. "query and key tile sizes must be at most 1024, got 2048,64".
std::string verifyTileSizes(const AttentionTileSizes &sizes, TileTarget target,
                            int64_t headDim = 64, int64_t vHeadDim = 64,
                            bool amx = false);

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_TILESIZES_H
