//===- CPUTileReductions.cpp - the max and exp_sum stages' microkernels ----===//
//
// The row statistics of a tile's online softmax (see CPUTileLowering.h for
// the stage contract): the running row max and exp_sum (P = exp(S -
// safe(m')), l += P), lane-wise over queries with no horizontal reduction
// (queries on the lanes) or per row with keys on the lanes.
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"

namespace mlir {
namespace attn {
namespace cpu {

void StageBuilder::emitRowMaxLanes(Value st, Value mx, Value jLo, Value jHi,
                                   bool negInfInit) {
  int64_t Mp = dimOf(st, 1);
  auto chunkLoop = scf::ForOp::create(b, loc, idx(0), idx(Mp), idx(VL));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(chunkLoop.getBody()->getTerminator());
  Value c = chunkLoop.getInductionVar();
  auto score = [&](Value j) {
    return vector::LoadOp::create(b, loc, vecType(VL, f32), st, ValueRange{j, c});
  };
  Value init = negInfInit ? splat(kNegInf, VL)
                          : vector::LoadOp::create(b, loc, vecType(VL, f32), mx,
                                                   ValueRange{c}).getResult();
  Value pairsEnd = add(jLo, arith::AndIOp::create(b, loc, sub(jHi, jLo), idx(-2)));
  auto pairs = scf::ForOp::create(b, loc, jLo, pairsEnd, idx(2),
                                  ValueRange{init, splat(kNegInf, VL)});
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(pairs.getBody());
    Value j = pairs.getInductionVar();
    Value r0 = runningMax(pairs.getRegionIterArgs()[0], score(j));
    Value r1 = runningMax(pairs.getRegionIterArgs()[1], score(add(j, idx(1))));
    scf::YieldOp::create(b, loc, ValueRange{r0, r1});
  }
  auto rest = scf::ForOp::create(b, loc, pairsEnd, jHi, idx(1),
                                 ValueRange{pairs.getResult(0)});
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(rest.getBody());
    scf::YieldOp::create(
        b, loc, runningMax(rest.getRegionIterArgs()[0], score(rest.getInductionVar())));
  }
  vector::StoreOp::create(b, loc, runningMax(rest.getResult(0), pairs.getResult(1)),
                          mx, ValueRange{c});
}

void StageBuilder::emitRowMaxRows(Value st, Value mx, bool negInfInit) {
  int64_t M = dimOf(st, 0), N = dimOf(st, 1), full = N / VL * VL;
  auto rowLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(1));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(rowLoop.getBody()->getTerminator());
  Value m = rowLoop.getInductionVar();
  Value acc = negInfInit ? fconst(kNegInf)
                         : memref::LoadOp::create(b, loc, mx, ValueRange{m}).getResult();
  if (full) {
    auto loop = scf::ForOp::create(b, loc, idx(0), idx(full), idx(VL),
                                   ValueRange{splat(kNegInf, VL)});
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(loop.getBody());
      Value s = vector::LoadOp::create(b, loc, vecType(VL, f32), st,
                                       ValueRange{m, loop.getInductionVar()});
      scf::YieldOp::create(b, loc, runningMax(loop.getRegionIterArgs()[0], s));
    }
    acc = runningMax(acc, vector::ReductionOp::create(
                              b, loc, vector::CombiningKind::MAXIMUMF, loop.getResult(0)));
  }
  if (N != full) {
    Value s = vector::LoadOp::create(b, loc, vecType(N - full, f32), st,
                                     ValueRange{m, idx(full)});
    acc = runningMax(acc, vector::ReductionOp::create(
                              b, loc, vector::CombiningKind::MAXIMUMF, s));
  }
  memref::StoreOp::create(b, loc, acc, mx, ValueRange{m});
}

void StageBuilder::emitExpSumLanes(Value st, Value l, Value mNew, Value jLo,
                                   Value jHi) {
  int64_t Mp = dimOf(st, 1);
  auto chunkLoop = scf::ForOp::create(b, loc, idx(0), idx(Mp), idx(VL));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(chunkLoop.getBody()->getTerminator());
  Value c = chunkLoop.getInductionVar();
  Value mSafe = safeMax(vector::LoadOp::create(b, loc, vecType(VL, f32), mNew, ValueRange{c}));
  Value lInit = vector::LoadOp::create(b, loc, vecType(VL, f32), l, ValueRange{c});
  auto sumLoop = scf::ForOp::create(b, loc, jLo, jHi, idx(1), ValueRange{lInit});
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(sumLoop.getBody());
    Value j = sumLoop.getInductionVar();
    Value s = vector::LoadOp::create(b, loc, vecType(VL, f32), st, ValueRange{j, c});
    Value p = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, s, mSafe));
    vector::StoreOp::create(b, loc, p, st, ValueRange{j, c});
    scf::YieldOp::create(
        b, loc, arith::AddFOp::create(b, loc, sumLoop.getRegionIterArgs()[0], p)
                    .getResult());
  }
  vector::StoreOp::create(b, loc, sumLoop.getResult(0), l, ValueRange{c});
}

void StageBuilder::emitExpSumRows(Value st, Value l, Value mNew) {
  int64_t M = dimOf(st, 0), N = dimOf(st, 1), full = N / VL * VL;
  auto rowLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(1));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(rowLoop.getBody()->getTerminator());
  Value m = rowLoop.getInductionVar();
  Value mSafe = safeMax(memref::LoadOp::create(b, loc, mNew, ValueRange{m}));
  auto expAt = [&](Value j0, int64_t width) {
    Value s = vector::LoadOp::create(b, loc, vecType(width, f32), st, ValueRange{m, j0});
    Value p = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, s, bcast(mSafe, width)));
    vector::StoreOp::create(b, loc, p, st, ValueRange{m, j0});
    return p;
  };
  Value acc = memref::LoadOp::create(b, loc, l, ValueRange{m});
  if (full) {
    auto loop = scf::ForOp::create(b, loc, idx(0), idx(full), idx(VL),
                                   ValueRange{splat(0.0f, VL)});
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(loop.getBody());
      Value p = expAt(loop.getInductionVar(), VL);
      scf::YieldOp::create(
          b, loc, arith::AddFOp::create(b, loc, loop.getRegionIterArgs()[0], p).getResult());
    }
    acc = arith::AddFOp::create(
        b, loc, acc,
        vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, loop.getResult(0)));
  }
  if (N != full)
    acc = arith::AddFOp::create(
        b, loc, acc,
        vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                    expAt(idx(full), N - full)));
  memref::StoreOp::create(b, loc, acc, l, ValueRange{m});
}

} // namespace cpu
} // namespace attn
} // namespace mlir
