//===- CPUTileDecode.cpp - keys on the lanes (decode tiles) -----------------===//
//
// For tiles of a few query rows (kMaxCPUDecodeTileRows), Q K^T with keys on
// the vector lanes: each query row stays in registers and VL keys are
// reduced at once, their horizontal sums done together by transposeReduce.
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"

namespace mlir {
namespace attn {
namespace cpu {

Value StageBuilder::transposeReduce(SmallVector<Value> parts) {
  int64_t lanes = VL;
  while (parts.size() > 1) {
    int64_t keysPer = VL / lanes; // keys held by each input vector
    SmallVector<int64_t> lowMask, highMask;
    for (int64_t src = 0; src < 2; ++src)
      for (int64_t kk = 0; kk < keysPer; ++kk)
        for (int64_t t = 0; t < lanes / 2; ++t) {
          lowMask.push_back(src * VL + kk * lanes + t);
          highMask.push_back(src * VL + kk * lanes + lanes / 2 + t);
        }
    SmallVector<Value> next;
    for (size_t i = 0; i < parts.size(); i += 2) {
      Value lo = vector::ShuffleOp::create(b, loc, parts[i], parts[i + 1], lowMask);
      Value hi = vector::ShuffleOp::create(b, loc, parts[i], parts[i + 1], highMask);
      next.push_back(arith::AddFOp::create(b, loc, lo, hi));
    }
    parts = next;
    lanes /= 2;
  }
  return parts.front();
}

void StageBuilder::emitScoresRows(Value query, Value key, Value st) {
  int64_t M = dimOf(st, 0), N = dimOf(st, 1), D = dimOf(query, 1);
  int64_t dChunks = D / VL;
  auto rowLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(1));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(rowLoop.getBody()->getTerminator());
  Value m = rowLoop.getInductionVar();
  SmallVector<Value> qrow;
  for (int64_t dc = 0; dc < dChunks; ++dc)
    qrow.push_back(loadVec(query, {m, idx(dc * VL)}, VL));
  forBlocks(b, loc, N, VL, [&](Value j0, int64_t width) {
    SmallVector<Value> parts;
    for (int64_t jj = 0; jj < VL; ++jj) {
      // Lanes past the last key of a partial block repeat it; they are not
      // stored.
      Value j = add(j0, idx(std::min(jj, width - 1)));
      Value acc = splat(0.0f, VL);
      for (int64_t dc = 0; dc < dChunks; ++dc)
        acc = fma(loadVec(key, {j, idx(dc * VL)}, VL), qrow[dc], acc);
      parts.push_back(acc);
    }
    Value s = transposeReduce(parts);
    if (width != VL) {
      SmallVector<int64_t> lanes;
      for (int64_t l = 0; l < width; ++l)
        lanes.push_back(l);
      s = vector::ShuffleOp::create(b, loc, s, s, lanes);
    }
    vector::StoreOp::create(b, loc, s, st, ValueRange{m, j0});
  });
}

} // namespace cpu
} // namespace attn
} // namespace mlir
