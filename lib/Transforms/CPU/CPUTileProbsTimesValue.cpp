//===- CPUTileProbsTimesValue.cpp - the pv stage's microkernel (FMA) -------===//
//
// The register-blocked P V of a tile with the value dimension on the lanes
// and each probability broadcast, the row rescale folded into the
// accumulator loads, and per-row guards where a key is kept by only some
// rows of a block (see CPUTileLowering.h for the stage contract; the AMX
// form is in CPUTileAMX.cpp).
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"

namespace mlir {
namespace attn {
namespace cpu {

void StageBuilder::emitProbsTimesValue(Value p, Value value, Value acc,
                                       Value alpha, const KeyGuard &guard,
                                       bool rowMajorP) {
  int64_t M = dimOf(acc, 0), Dv = dimOf(acc, 1);
  const KeyBand &band = guard.band;
  SmallVector<std::pair<int64_t, int64_t>> chunks;
  for (int64_t e = 0; e < Dv; e += VL)
    chunks.push_back({e, std::min(VL, Dv - e)});
  CPUTargetInfo::RegisterBlock registerBlock =
      CPUTargetInfo::fmaRegisterBlock(vectorRegisters, chunks.size());
  int64_t eb = registerBlock.laneBlocks, mr = registerBlock.rows;
  for (size_t e0 = 0; e0 < chunks.size(); e0 += eb) {
    ArrayRef<std::pair<int64_t, int64_t>> block =
        ArrayRef(chunks).slice(e0, std::min<size_t>(eb, chunks.size() - e0));
    int64_t ne = block.size();
    forBlocks(b, loc, M, mr, [&](Value m0, int64_t nm) {
      SmallVector<Value> state;
      for (int64_t i = 0; i < nm; ++i) {
        Value row = add(m0, idx(i));
        Value a = alpha ? memref::LoadOp::create(b, loc, alpha, ValueRange{row})
                              .getResult()
                        : Value();
        for (auto [off, width] : block) {
          Value cur = vector::LoadOp::create(b, loc, vecType(width, f32), acc,
                                             ValueRange{row, idx(off)});
          state.push_back(a ? arith::MulFOp::create(b, loc, cur, bcast(a, width))
                                  .getResult()
                            : cur);
        }
      }
      // Key ranges of this row block.
      Value lo = guard.jLo, hi = guard.jHi, cl = guard.jLo, ch = guard.jHi;
      if (!band.isUnbounded()) {
        Value first = add(guard.qOff, m0),
              last = add(guard.qOff, add(m0, idx(nm - 1)));
        band.narrowToSomeRow(b, loc, first, last, guard.kOff, lo, hi);
        band.narrowToEveryRow(b, loc, first, last, guard.kOff, cl, ch);
        hi = maxI(hi, lo);
        cl = minI(maxI(cl, lo), hi);
        ch = minI(maxI(ch, cl), hi);
      }
      auto reduce = [&](Value from, Value to, bool guardBand) {
        auto loop = scf::ForOp::create(b, loc, from, to, idx(1), state);
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(loop.getBody());
        Value j = loop.getInductionVar();
        SmallVector<Value> vv;
        for (auto [off, width] : block)
          vv.push_back(loadVec(value, {j, idx(off)}, width));
        SmallVector<Value> next(loop.getRegionIterArgs());
        for (int64_t i = 0; i < nm; ++i) {
          Value row = add(m0, idx(i));
          Value pv = memref::LoadOp::create(
              b, loc, p, rowMajorP ? ValueRange{row, j} : ValueRange{j, row});
          Value keep;
          if (guardBand) {
            Value rel = sub(add(guard.kOff, j), add(guard.qOff, row));
            keep = band.buildKeeps(b, loc, rel);
          }
          if (guard.guardZero) {
            Value c = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, pv,
                                            fconst(0.0f));
            keep = keep ? arith::AndIOp::create(b, loc, keep, c).getResult() : c;
          }
          for (int64_t e = 0; e < ne; ++e) {
            Value r = fma(bcast(pv, block[e].second), vv[e], next[i * ne + e]);
            next[i * ne + e] =
                keep ? arith::SelectOp::create(b, loc, keep, r, next[i * ne + e])
                           .getResult()
                     : r;
          }
        }
        scf::YieldOp::create(b, loc, next);
        state.assign(loop.getResults().begin(), loop.getResults().end());
      };
      if (band.isUnbounded()) {
        reduce(lo, hi, false);
      } else {
        reduce(lo, cl, true);
        reduce(cl, ch, false);
        reduce(ch, hi, true);
      }
      for (int64_t i = 0; i < nm; ++i)
        for (int64_t e = 0; e < ne; ++e)
          vector::StoreOp::create(b, loc, state[i * ne + e], acc,
                                  ValueRange{add(m0, idx(i)),
                                             idx(block[e].first)});
    });
  }
}

} // namespace cpu
} // namespace attn
} // namespace mlir
