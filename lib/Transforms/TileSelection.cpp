//===- TileSelection.cpp - the compiler's choice of tile sizes ------------===//

#include "attn/Transforms/TileSelection.h"
#include "dialect/attn/IR/AttnOpDetail.h"


#include <algorithm>

using namespace mlir;
using namespace mlir::attn;

FailureOr<AttentionProblem> AttentionProblem::get(Operation *op) {
  if (!isa<AttentionOp, OnlineAttentionOp>(op))
    return failure();
  AttentionOpDetail detail(op);
  AttentionDims d = detail.dims();
  if (ShapedType::isDynamic(d.qHeads) || ShapedType::isDynamic(d.kvHeads) ||
      ShapedType::isDynamic(d.headDim) || ShapedType::isDynamic(d.vHeadDim))
    return failure();
  AttentionProblem p;
  p.batch = d.batch;
  p.qHeads = d.qHeads;
  p.kvHeads = d.kvHeads;
  p.qLen = d.qLen;
  p.kvLen = d.kvLen;
  p.headDim = d.headDim;
  p.vHeadDim = d.vHeadDim;
  Type elt = getElementTypeOrSelf(detail.query().getType());
  if (elt.isF32())
    p.elementType = ElementType::F32;
  else if (elt.isF16())
    p.elementType = ElementType::F16;
  else if (elt.isBF16())
    p.elementType = ElementType::BF16;
  else
    return failure();
  p.slidingWindow = isa_and_nonnull<SlidingWindowAttr>(detail.maskKind());
  p.keyPadding = detail.kvLens() != nullptr;
  return p;
}


static int64_t roundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

AttentionTileSizes mlir::attn::selectCPUTileSizes(const AttentionProblem &p,
                                                  const CPUTargetInfo &target) {
  AttentionTileSizes sizes;
  bool amxTiles = target.amxBf16 &&
                  p.elementType == AttentionProblem::ElementType::BF16;
  // Query rows sit on the f32 lanes: tiles of 64 rows (128 on AMX, keys in
  // whole 32-key reductions), or the (rounded) sequence when it is shorter,
  // and the same for dynamic lengths; decoding (up to 4 rows) uses the exact
  // row count, which the CPU lowering handles with keys on the lanes.
  const int64_t maxTile = amxTiles ? 128 : 64, keyAlign = amxTiles ? 32 : 8;
  const int64_t lanes = std::max<int64_t>(1, target.vectorWidth);
  sizes.query = sizes.key = maxTile;
  if (!ShapedType::isDynamic(p.qLen))
    sizes.query = p.qLen <= kMaxCPUDecodeTileRows
                      ? std::max<int64_t>(1, p.qLen)
                              : std::min(maxTile, roundUp(p.qLen, lanes));
  if (!ShapedType::isDynamic(p.kvLen))
    sizes.key = std::min(maxTile, roundUp(std::max<int64_t>(1, p.kvLen),
                                          keyAlign));
  // GQA/MQA: one workgroup takes a whole group of query heads, so that each
  // key/value block is loaded once for the group, or the largest divisor of
  // the group whose tile fits the CPU code generator's stack scratch.
  int64_t group = p.kvHeads > 0 ? std::max<int64_t>(1, p.qHeads / p.kvHeads) : 1;
  sizes.heads = 1;
  for (int64_t h = group; h >= 1; --h)
    if (group % h == 0 &&
        getCPUTileScratchBytes(1, h, sizes.query, sizes.key, p.headDim,
                               p.vHeadDim, lanes, amxTiles) <=
            kMaxCPUTileScratchBytes) {
      sizes.heads = h;
      break;
    }
  return sizes;
}

AttentionTileSizes mlir::attn::selectCUDATileSizes(const AttentionProblem &p) {
  int64_t qLen = ShapedType::isDynamic(p.qLen) ? int64_t(1) << 30 : p.qLen;
  AttentionTileSizes sizes;
  if (p.elementType == AttentionProblem::ElementType::F32) {
    // 128 threads (4 rows x 4 keys each) for a 64 x 32 tile.
    sizes.query = qLen < 64 ? std::max<int64_t>(16, roundUp(qLen, 16)) : 64;
    sizes.key = 32;
    return sizes;
  }
  // Tensor cores: a warp per 16 query rows, 64 keys per block; 32 keys when
  // head_dim > 64 and blocks need extra element masks (see the header).
  sizes.query = qLen < 128 ? std::max<int64_t>(16, roundUp(qLen, 16)) : 128;
  bool extraMasks = ShapedType::isDynamic(p.kvLen) || p.kvLen % 64 != 0 ||
                    ShapedType::isDynamic(p.batch) ||
                    ShapedType::isDynamic(p.qLen) || p.slidingWindow ||
                    p.keyPadding;
  sizes.key = std::max(p.headDim, p.vHeadDim) > 64 && extraMasks ? 32 : 64;
  return sizes;
}

FailureOr<AttentionTileSizes>
AttentionTileSizes::fromList(ArrayRef<int64_t> sizes) {
  AttentionTileSizes result;
  if (sizes.empty())
    return result;
  if (sizes.size() != 4 || llvm::any_of(sizes, [](int64_t s) { return s <= 0; }))
    return failure();
  result.batch = sizes[0];
  result.heads = sizes[1];
  result.query = sizes[2];
  result.key = sizes[3];
  return result;
}

std::string mlir::attn::verifyTileSizes(const AttentionTileSizes &t,
                                        TileTarget target, int64_t headDim,
                                        int64_t vHeadDim, bool amx) {
  // Built only for a message: getKernel checks its options on every call.
  auto shown = [&] {
    return std::to_string(t.batch) + "," + std::to_string(t.heads) + "," +
           std::to_string(t.query) + "," + std::to_string(t.key);
  };
  if (llvm::any_of(t.toArray(), [](int64_t v) { return v <= 0; }))
    return "tile sizes must be 4 positive integers (batch, heads, query, "
           "key), got " + shown();
  if (t.query > kMaxTileRows || t.key > kMaxTileRows || t.batch > INT32_MAX ||
      t.heads > INT32_MAX)
    return "query and key tile sizes must be at most " +
           std::to_string(kMaxTileRows) + " (batch and heads below 2^31), "
           "got " + shown();
  if (target == TileTarget::CPU) {
    // The widest vector (16 f32 lanes) pads the most.
    int64_t bytes = getCPUTileScratchBytes(t.batch, t.heads, t.query, t.key,
                                           headDim, vHeadDim, 16, amx);
    if (bytes > kMaxCPUTileScratchBytes)
      return "tile sizes " + shown() + " need " + std::to_string(bytes) +
             " bytes of stack scratch per workgroup, more than the " +
             std::to_string(kMaxCPUTileScratchBytes) +
             " the CPU code generator allows";
  }
  return "";
}
