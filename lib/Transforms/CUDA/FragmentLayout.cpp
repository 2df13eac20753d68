//===- FragmentLayout.cpp - which lane holds which element ----------------===//

#include "attn/Transforms/CUDA/FragmentLayout.h"

#include "mlir/IR/AffineExpr.h"

using namespace mlir;
using namespace mlir::attn;

namespace {
/// (lane) -> (row, col).
AffineMap map2(MLIRContext *ctx, AffineExpr row, AffineExpr col) {
  return AffineMap::get(1, 0, {row, col}, ctx);
}
AffineExpr lane(MLIRContext *ctx) { return getAffineDimExpr(0, ctx); }
AffineExpr groupId(MLIRContext *ctx) { return lane(ctx).floorDiv(4); }
AffineExpr threadInGroup(MLIRContext *ctx) { return lane(ctx) % 4; }
} // namespace

AffineMap cuda::getMmaAccumulatorMap(MLIRContext *ctx, int64_t r, int64_t e) {
  return map2(ctx, groupId(ctx) + 8 * r, threadInGroup(ctx) * 2 + e);
}

AffineMap cuda::getMmaAMap(MLIRContext *ctx, int64_t reg, int64_t e) {
  return map2(ctx, groupId(ctx) + 8 * (reg % 2),
              threadInGroup(ctx) * 2 + e + 8 * (reg / 2));
}

AffineMap cuda::getMmaBMap(MLIRContext *ctx, int64_t reg, int64_t e) {
  return map2(ctx, threadInGroup(ctx) * 2 + e + 8 * reg, groupId(ctx));
}

// Matrix m = lane / 8 of the x4 load covers d columns [8 m, 8 m + 8) of the
// key rows 8 nTile + (lane % 8): matrices 0, 1 are the k-rows 0..7 and 8..15
// of the first B fragment (registers b0,b1 / b2,b3), matrices 2, 3 those of
// the second.
AffineMap cuda::getKeyLdmatrixX4Map(MLIRContext *ctx) {
  return map2(ctx, lane(ctx) % 8, lane(ctx).floorDiv(8) * 8);
}

AffineMap cuda::getKeyLdmatrixX2Map(MLIRContext *ctx) {
  return map2(ctx, lane(ctx) % 8, (lane(ctx).floorDiv(8) % 2) * 8);
}

// Matrix m = lane / 8 of the x4.trans load covers keys [8 m, 8 m + 8) of the
// chunk, dv columns [8 nTile, 8 nTile + 8): transposed, each is k-rows
// 0..7 or 8..15 of a B fragment.
AffineMap cuda::getValueLdmatrixX4Map(MLIRContext *ctx) {
  return map2(ctx, lane(ctx), getAffineConstantExpr(0, ctx));
}

AffineMap cuda::getValueLdmatrixX2Map(MLIRContext *ctx) {
  return map2(ctx, lane(ctx) % 16, getAffineConstantExpr(0, ctx));
}

std::pair<int64_t, int64_t> cuda::getScoreSourceOfA(int64_t reg) {
  return {reg / 2, reg % 2};
}

AffineMap cuda::getSimtRowMap(MLIRContext *ctx, int64_t i) {
  return AffineMap::get(
      1, 0, lane(ctx).floorDiv(kSimtGroupLanes) * kSimtRowsPerThread + i, ctx);
}

AffineMap cuda::getSimtScoreColMap(MLIRContext *ctx, int64_t j) {
  return AffineMap::get(1, 0, lane(ctx) % kSimtGroupLanes + kSimtGroupLanes * j,
                        ctx);
}

AffineMap cuda::getSimtOutputColMap(MLIRContext *ctx, int64_t y) {
  return AffineMap::get(
      1, 0, (lane(ctx) % kSimtGroupLanes) * 4 + 4 * kSimtGroupLanes * y, ctx);
}
