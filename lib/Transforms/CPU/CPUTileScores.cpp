//===- CPUTileScores.cpp - score stages of a CPU tile -----------------------===//

#include "CPUTileLowering.h"

namespace mlir {
namespace attn {
namespace cpu {

Operation *TileLowering::emitQueryCopy(function_ref<Value(Value)> convert,
                         function_ref<void(ValueRange, Value)> store) {
  scf::LoopNest nest = scf::buildLoopNest(
      b, loc, ValueRange{idx(0), idx(0), idx(0), idx(0)},
      ValueRange{idx(B), idx(Hq), idx(Mp), idx(D)},
      ValueRange{idx(1), idx(1), idx(1), idx(1)},
      [&](OpBuilder &nb, Location, ValueRange iv) {
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        Value row = minI(iv[2], idx(M - 1));
        Value q = memref::LoadOp::create(b, loc, query,
                                         ValueRange{iv[0], iv[1], row, iv[3]});
        if (convert)
          q = convert(q);
        if (Mp != M) {
          Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                               iv[2], idx(M));
          Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(q.getType()));
          q = arith::SelectOp::create(b, loc, inside, q, zero);
        }
        store(iv, q);
      });
  return nest.loops.front();
}

void TileLowering::emitScoresBF16(Value qt, Value st, Value bIdx, Value h, Value hk) {
  int64_t chunks = Mp / VL;
  int64_t mrv = std::min<int64_t>(4, chunks);
  int64_t jr = std::max<int64_t>(1, 24 / mrv);
  Type bf16 = b.getBF16Type();
  Value scale = splat(static_cast<float>(detail.scale()), VL);
  forBlocks(b, loc, N, jr, [&](Value j0, int64_t nj) {
    forBlocks(b, loc, chunks, mrv, [&](Value c0, int64_t nc) {
      Value m0 = arith::MulIOp::create(b, loc, c0, idx(VL));
      SmallVector<Value> init(nj * nc, splat(0.0f, VL));
      auto loop = scf::ForOp::create(b, loc, idx(0), idx(D / 2), idx(1), init);
      {
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(loop.getBody());
        Value p = loop.getInductionVar();
        SmallVector<Value> qv;
        for (int64_t r = 0; r < nc; ++r)
          qv.push_back(vector::LoadOp::create(
              b, loc, vecType(2 * VL, bf16), qt,
              ValueRange{bIdx, h, p,
                         arith::MulIOp::create(b, loc, add(m0, idx(r * VL)), idx(2))}));
        Value d = arith::MulIOp::create(b, loc, p, idx(2));
        SmallVector<Value> next(loop.getRegionIterArgs());
        for (int64_t jj = 0; jj < nj; ++jj) {
          Value pair = vector::LoadOp::create(b, loc, vecType(2, bf16), key,
                                              ValueRange{bIdx, hk, add(j0, idx(jj)), d});
          Value bits = vector::BitCastOp::create(b, loc, vecType(1, i32), pair);
          Value word = vector::ExtractOp::create(b, loc, bits, ArrayRef<int64_t>{0});
          Value kb = vector::BitCastOp::create(b, loc, vecType(2 * VL, bf16),
                                               bcast(word, VL));
          for (int64_t r = 0; r < nc; ++r)
            next[jj * nc + r] = x86vector::DotBF16Op::create(
                b, loc, vecType(VL, f32), next[jj * nc + r], kb, qv[r]);
        }
        scf::YieldOp::create(b, loc, next);
      }
      for (int64_t jj = 0; jj < nj; ++jj)
        for (int64_t r = 0; r < nc; ++r)
          vector::StoreOp::create(
              b, loc, arith::MulFOp::create(b, loc, loop.getResult(jj * nc + r), scale),
              st, ValueRange{add(j0, idx(jj)), add(m0, idx(r * VL))});
    });
  });
}

void TileLowering::emitScores(Value qt, Value st, Value bIdx, Value h, Value hk) {
  if (bf16Dot)
    return emitScoresBF16(qt, st, bIdx, h, hk);
  int64_t chunks = Mp / VL;
  int64_t mrv = std::min<int64_t>(4, chunks);
  int64_t jr = std::max<int64_t>(1, 24 / mrv);
  constexpr int64_t kDChunk = 64;
  for (int64_t d0 = 0; d0 < D; d0 += kDChunk) {
    int64_t d1 = std::min(D, d0 + kDChunk);
    forBlocks(b, loc, N, jr, [&](Value j0, int64_t nj) {
      forBlocks(b, loc, chunks, mrv, [&](Value c0, int64_t nc) {
        Value m0 = arith::MulIOp::create(b, loc, c0, idx(VL));
        SmallVector<Value> init;
        for (int64_t jj = 0; jj < nj; ++jj)
          for (int64_t r = 0; r < nc; ++r)
            init.push_back(d0 == 0 ? splat(0.0f, VL)
                                   : vector::LoadOp::create(
                                         b, loc, vecType(VL, f32), st,
                                         ValueRange{add(j0, idx(jj)),
                                                    add(m0, idx(r * VL))})
                                         .getResult());
        auto loop = scf::ForOp::create(b, loc, idx(d0), idx(d1), idx(1), init);
        {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(loop.getBody());
          Value d = loop.getInductionVar();
          SmallVector<Value> qv;
          for (int64_t r = 0; r < nc; ++r)
            qv.push_back(loadVec(qt, {bIdx, h, d, add(m0, idx(r * VL))}, VL));
          SmallVector<Value> next(loop.getRegionIterArgs());
          for (int64_t jj = 0; jj < nj; ++jj) {
            Value kb =
                bcast(loadScalar(key, {bIdx, hk, add(j0, idx(jj)), d}), VL);
            for (int64_t r = 0; r < nc; ++r)
              next[jj * nc + r] = fma(kb, qv[r], next[jj * nc + r]);
          }
          scf::YieldOp::create(b, loc, next);
        }
        for (int64_t jj = 0; jj < nj; ++jj)
          for (int64_t r = 0; r < nc; ++r)
            vector::StoreOp::create(
                b, loc, loop.getResult(jj * nc + r), st,
                ValueRange{add(j0, idx(jj)), add(m0, idx(r * VL))});
      });
    });
  }
}

std::pair<Value, Value> TileLowering::maskScores(Value s, Value j, Value c, Value bIdx,
                                   Value h, Value qOff, Value kOff,
                                   bool applyBand) {
  VectorType iv = vecType(VL, i32), bv = vecType(VL, b.getI1Type());
  Value keep;
  auto conj = [&](Value k) {
    keep = keep ? arith::AndIOp::create(b, loc, keep, k).getResult() : k;
  };
  // Row index of each lane, clamped into the tile for gathers.
  auto laneRows = [&](function_ref<Value(Value)> loadAt) {
    SmallVector<Value> elems;
    for (int64_t l = 0; l < VL; ++l)
      elems.push_back(loadAt(minI(add(c, idx(l)), idx(M - 1))));
    return vector::FromElementsOp::create(
        b, loc, vecType(VL, elems.front().getType()), elems);
  };
  auto maskIndex = [&](Value v, Value row) -> SmallVector<Value> {
    auto t = cast<MemRefType>(v.getType());
    return {t.getDimSize(0) == 1 ? idx(0) : bIdx,
            t.getDimSize(1) == 1 ? idx(0) : h, row, j};
  };
  auto isRowBroadcast = [&](Value v) {
    return cast<MemRefType>(v.getType()).getDimSize(2) == 1 && M != 1;
  };
  if (bias) {
    Value bv2 = isRowBroadcast(bias)
                    ? bcast(loadScalar(bias, maskIndex(bias, idx(0))), VL)
                    : laneRows([&](Value row) {
                        return loadScalar(bias, maskIndex(bias, row));
                      });
    s = arith::AddFOp::create(b, loc, s, bv2);
  }
  if (mask) {
    Value mv = isRowBroadcast(mask)
                   ? bcast(memref::LoadOp::create(b, loc, mask,
                                                  maskIndex(mask, idx(0))),
                           VL)
                   : laneRows([&](Value row) -> Value {
                       return memref::LoadOp::create(b, loc, mask,
                                                     maskIndex(mask, row));
                     });
    conj(mv);
  }
  if (applyBand) {
    // diff = (kOff + j) - (qOff + c + lane)
    auto toI32 = [&](Value x) {
      return arith::IndexCastOp::create(b, loc, i32, x).getResult();
    };
    Value kpos = bcast(toI32(add(kOff, j)), VL);
    Value qbase = bcast(toI32(add(qOff, c)), VL);
    SmallVector<int32_t> lanes;
    for (int64_t l = 0; l < VL; ++l)
      lanes.push_back(static_cast<int32_t>(l));
    Value iota = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(iv, ArrayRef<int32_t>(lanes)));
    Value diff = arith::SubIOp::create(
        b, loc, kpos, arith::AddIOp::create(b, loc, qbase, iota));
    conj(band.buildKeeps(b, loc, diff));
  }
  (void)bv;
  if (keep)
    s = arith::SelectOp::create(b, loc, keep, s, splat(kNegInf, VL));
  return {s, keep};
}

Value TileLowering::emitRowMax(Value st, Value c, Value jLo, Value jHi, bool masked,
                 bool applyBand, Value bIdx, Value h, Value qOff, Value kOff) {
  auto score = [&](Value j) {
    Value s = vector::LoadOp::create(b, loc, vecType(VL, f32), st, ValueRange{j, c});
    if (amx)
      s = arith::MulFOp::create(b, loc, s, splat(static_cast<float>(detail.scale()), VL));
    if (masked)
      s = maskScores(s, j, c, bIdx, h, qOff, kOff, applyBand).first;
    if (masked || amx)
      vector::StoreOp::create(b, loc, s, st, ValueRange{j, c});
    return s;
  };
  Value pairsEnd = add(jLo, arith::AndIOp::create(b, loc, sub(jHi, jLo), idx(-2)));
  Value negInf = splat(kNegInf, VL);
  auto pairs = scf::ForOp::create(b, loc, jLo, pairsEnd, idx(2),
                                  ValueRange{negInf, negInf});
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(pairs.getBody());
    Value j = pairs.getInductionVar();
    Value r0 = runningMax(pairs.getRegionIterArgs()[0], score(j));
    Value r1 = runningMax(pairs.getRegionIterArgs()[1], score(add(j, idx(1))));
    scf::YieldOp::create(b, loc, ValueRange{r0, r1});
  }
  auto rest = scf::ForOp::create(b, loc, pairsEnd, jHi, idx(1),
                                 ValueRange{pairs.getResult(0)});
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(rest.getBody());
    scf::YieldOp::create(
        b, loc, runningMax(rest.getRegionIterArgs()[0], score(rest.getInductionVar())));
  }
  return runningMax(rest.getResult(0), pairs.getResult(1));
}

void TileLowering::emitProbsTimesValue(Value st, Value alphaBuf, Value bIdx, Value h,
                         Value hk, Value jLo, Value jHi, Value qOff,
                         Value kOff, bool rowMajor) {
  SmallVector<std::pair<int64_t, int64_t>> chunks;
  for (int64_t e = 0; e < Dv; e += VL)
    chunks.push_back({e, std::min(VL, Dv - e)});
  int64_t eb = std::min<int64_t>(4, chunks.size());
  int64_t mr = std::max<int64_t>(1, 24 / eb);
  for (size_t e0 = 0; e0 < chunks.size(); e0 += eb) {
    ArrayRef<std::pair<int64_t, int64_t>> block =
        ArrayRef(chunks).slice(e0, std::min<size_t>(eb, chunks.size() - e0));
    int64_t ne = block.size();
    forBlocks(b, loc, M, mr, [&](Value m0, int64_t nm) {
      SmallVector<Value> state;
      for (int64_t i = 0; i < nm; ++i) {
        Value row = add(m0, idx(i));
        Value a = memref::LoadOp::create(b, loc, alphaBuf, ValueRange{row});
        for (auto [off, width] : block) {
          Value cur = vector::LoadOp::create(b, loc, vecType(width, f32), acc,
                                             ValueRange{bIdx, h, row, idx(off)});
          state.push_back(arith::MulFOp::create(b, loc, cur, bcast(a, width)));
        }
      }
      // Key ranges of this row block.
      Value lo = jLo, hi = jHi, cl = jLo, ch = jHi;
      if (!band.isUnbounded()) {
        Value first = add(qOff, m0), last = add(qOff, add(m0, idx(nm - 1)));
        band.narrowToSomeRow(b, loc, first, last, kOff, lo, hi);
        band.narrowToEveryRow(b, loc, first, last, kOff, cl, ch);
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
          vv.push_back(loadVec(value, {bIdx, hk, j, idx(off)}, width));
        SmallVector<Value> next(loop.getRegionIterArgs());
        for (int64_t i = 0; i < nm; ++i) {
          Value row = add(m0, idx(i));
          Value p = memref::LoadOp::create(
              b, loc, st, rowMajor ? ValueRange{row, j} : ValueRange{j, row});
          Value keep;
          if (guardBand) {
            Value rel = sub(add(kOff, j), add(qOff, add(m0, idx(i))));
            keep = band.buildKeeps(b, loc, rel);
          }
          if (mask) {
            Value c = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, p,
                                            fconst(0.0f));
            keep = keep ? arith::AndIOp::create(b, loc, keep, c).getResult() : c;
          }
          for (int64_t e = 0; e < ne; ++e) {
            Value r = fma(bcast(p, block[e].second), vv[e], next[i * ne + e]);
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
                                  ValueRange{bIdx, h, add(m0, idx(i)),
                                             idx(block[e].first)});
    });
  }
}

} // namespace cpu
} // namespace attn
} // namespace mlir
