//===- CPUTileDecode.cpp - keys on the lanes (decode tiles) -----------------===//

#include "CPUTileLowering.h"

namespace mlir {
namespace attn {
namespace cpu {

Value TileLowering::transposeReduce(SmallVector<Value> parts) {
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

Value TileLowering::keyLanesKept(Value j0, Value m, Value jLo, Value jHi, Value qOff,
                   Value kOff) {
  VectorType iv = vecType(VL, i32);
  SmallVector<int32_t> lanes;
  for (int64_t l = 0; l < VL; ++l)
    lanes.push_back(static_cast<int32_t>(l));
  Value iota = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(iv, ArrayRef<int32_t>(lanes)));
  auto toI32 = [&](Value x) {
    return bcast(arith::IndexCastOp::create(b, loc, i32, x).getResult(), VL);
  };
  Value j = arith::AddIOp::create(b, loc, toI32(j0), iota);
  Value keep = arith::AndIOp::create(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j, toI32(jLo)),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j, toI32(jHi)));
  if (!band.isUnbounded()) {
    Value rel = arith::SubIOp::create(
        b, loc, arith::AddIOp::create(b, loc, j, toI32(kOff)),
        toI32(add(qOff, m)));
    keep = arith::AndIOp::create(b, loc, keep, band.buildKeeps(b, loc, rel));
  }
  return keep;
}

void TileLowering::emitRowMajorSoftmax(Value sr, Value alphaBuf, Value bIdx, Value h,
                         Value hk, Value jLo, Value jHi, Value qOff,
                         Value kOff) {
  int64_t dChunks = D / VL, nBlocks = (N + VL - 1) / VL;
  Value scale = splat(static_cast<float>(detail.scale()), VL);
  auto rowLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(1));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(rowLoop.getBody()->getTerminator());
  Value m = rowLoop.getInductionVar();
  SmallVector<Value> qrow;
  for (int64_t dc = 0; dc < dChunks; ++dc)
    qrow.push_back(arith::MulFOp::create(
        b, loc, loadVec(query, {bIdx, h, m, idx(dc * VL)}, VL), scale));
  // Scores, VL keys at a time.
  auto blockLoop = scf::ForOp::create(b, loc, idx(0), idx(nBlocks * VL), idx(VL));
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPoint(blockLoop.getBody()->getTerminator());
    Value j0 = blockLoop.getInductionVar();
    SmallVector<Value> parts;
    for (int64_t jj = 0; jj < VL; ++jj) {
      // Keys past the tile (N % VL != 0) read the last key; masked below.
      Value j = minI(add(j0, idx(jj)), idx(N - 1));
      Value acc = splat(0.0f, VL);
      for (int64_t dc = 0; dc < dChunks; ++dc)
        acc = fma(loadVec(key, {bIdx, hk, j, idx(dc * VL)}, VL), qrow[dc], acc);
      parts.push_back(acc);
    }
    Value s = transposeReduce(parts);
    if (bias) {
      SmallVector<Value> elems;
      auto t = cast<MemRefType>(bias.getType());
      for (int64_t l = 0; l < VL; ++l)
        elems.push_back(loadScalar(
            bias, {t.getDimSize(0) == 1 ? idx(0) : bIdx,
                   t.getDimSize(1) == 1 ? idx(0) : h,
                   t.getDimSize(2) == 1 ? idx(0) : m,
                   minI(add(j0, idx(l)), idx(N - 1))}));
      s = arith::AddFOp::create(
          b, loc, s, vector::FromElementsOp::create(b, loc, vecType(VL, f32), elems));
    }
    Value keep = keyLanesKept(j0, m, jLo, jHi, qOff, kOff);
    if (mask) {
      SmallVector<Value> elems;
      auto t = cast<MemRefType>(mask.getType());
      for (int64_t l = 0; l < VL; ++l)
        elems.push_back(memref::LoadOp::create(
            b, loc, mask,
            ValueRange{t.getDimSize(0) == 1 ? idx(0) : bIdx,
                       t.getDimSize(1) == 1 ? idx(0) : h,
                       t.getDimSize(2) == 1 ? idx(0) : m,
                       minI(add(j0, idx(l)), idx(N - 1))}));
      keep = arith::AndIOp::create(
          b, loc, keep,
          vector::FromElementsOp::create(b, loc, vecType(VL, b.getI1Type()), elems));
    }
    s = arith::SelectOp::create(b, loc, keep, s, splat(kNegInf, VL));
    vector::StoreOp::create(b, loc, s, sr, ValueRange{m, j0});
  }
  // Row statistics (horizontal over the key lanes).
  auto maxLoop = scf::ForOp::create(b, loc, idx(0), idx(nBlocks * VL), idx(VL),
                                    ValueRange{splat(kNegInf, VL)});
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(maxLoop.getBody());
    Value sv = vector::LoadOp::create(b, loc, vecType(VL, f32), sr,
                                      ValueRange{m, maxLoop.getInductionVar()});
    scf::YieldOp::create(b, loc, runningMax(maxLoop.getRegionIterArgs()[0], sv));
  }
  Value rowMax = vector::ReductionOp::create(b, loc, vector::CombiningKind::MAXIMUMF,
                                             maxLoop.getResult(0));
  Value mOld = memref::LoadOp::create(b, loc, max, ValueRange{bIdx, h, m});
  Value lOld = memref::LoadOp::create(b, loc, sum, ValueRange{bIdx, h, m});
  Value mNew = arith::MaximumFOp::create(b, loc, mOld, rowMax);
  Value isNegInf = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, mNew,
                                         fconst(kNegInf));
  Value mSafe = arith::SelectOp::create(b, loc, isNegInf, fconst(0.0f), mNew);
  Value alpha = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, mOld, mSafe));
  Value mSafeV = bcast(mSafe, VL);
  auto sumLoop = scf::ForOp::create(b, loc, idx(0), idx(nBlocks * VL), idx(VL),
                                    ValueRange{splat(0.0f, VL)});
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(sumLoop.getBody());
    Value j0 = sumLoop.getInductionVar();
    Value sv = vector::LoadOp::create(b, loc, vecType(VL, f32), sr, ValueRange{m, j0});
    Value p = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, sv, mSafeV));
    vector::StoreOp::create(b, loc, p, sr, ValueRange{m, j0});
    scf::YieldOp::create(
        b, loc, arith::AddFOp::create(b, loc, sumLoop.getRegionIterArgs()[0], p)
                    .getResult());
  }
  Value rowSum = vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                             sumLoop.getResult(0));
  Value lNew = arith::AddFOp::create(b, loc, arith::MulFOp::create(b, loc, lOld, alpha),
                                     rowSum);
  memref::StoreOp::create(b, loc, mNew, max, ValueRange{bIdx, h, m});
  memref::StoreOp::create(b, loc, lNew, sum, ValueRange{bIdx, h, m});
  memref::StoreOp::create(b, loc, alpha, alphaBuf, ValueRange{m});
}

} // namespace cpu
} // namespace attn
} // namespace mlir
