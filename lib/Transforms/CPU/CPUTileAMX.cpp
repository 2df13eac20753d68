//===- CPUTileAMX.cpp - Q K^T and P V microkernels on AMX tiles (bf16) ------===//
//
// tdpbf16ps (amx.tile_mulf): 16x16 f32 += 16x32 bf16 * 32x16 bf16 in pairs.
// Q K^T reads the key in place against the query pairs QP[d/2][2m + d%2];
// P V transposes the probabilities to P[m][j] in bf16 (the rounding
// FlashAttention applies before P V on tensor cores) and interleaves the
// value rows in pairs VP[j/2][2e + j%2].
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"

namespace mlir {
namespace attn {
namespace cpu {

void StageBuilder::emitTileProducts(int64_t outputs, int64_t steps,
                                    function_ref<Value(int64_t)> init,
                                    function_ref<Value(int64_t)> loadA,
                                    function_ref<Value(int64_t, int64_t)> loadB,
                                    function_ref<void(int64_t, Value)> store) {
  for (int64_t t0 = 0; t0 < outputs; t0 += kTileGroup) {
    int64_t n = std::min(kTileGroup, outputs - t0);
    SmallVector<Value> c;
    for (int64_t i = 0; i < n; ++i)
      c.push_back(init(t0 + i));
    for (int64_t step = 0; step < steps; ++step) {
      Value a = loadA(step);
      for (int64_t i = 0; i < n; ++i)
        c[i] = amx::TileMulFOp::create(b, loc, c[i].getType(), a,
                                       loadB(step, t0 + i), c[i]);
    }
    for (int64_t i = 0; i < n; ++i)
      store(t0 + i, c[i]);
  }
}

void StageBuilder::emitScoresAMX(Value key, Value qp, Value st) {
  int64_t N = dimOf(st, 0), Mp = dimOf(st, 1), D = dimOf(key, 1);
  Type bf16 = b.getBF16Type();
  amx::TileType pairs = tileType(kAMXPairCols, bf16),
                scores = tileType(kAMXTileRows, f32);
  auto loop = scf::ForOp::create(b, loc, idx(0), idx(N), idx(kAMXTileRows));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(loop.getBody()->getTerminator());
  Value j0 = loop.getInductionVar();
  emitTileProducts(
      Mp / kAMXTileRows, D / kAMXPairCols,
      [&](int64_t) { return amx::TileZeroOp::create(b, loc, scores); },
      [&](int64_t step) {
        return amx::TileLoadOp::create(b, loc, pairs, key,
                                       ValueRange{j0, idx(step * kAMXPairCols)});
      },
      [&](int64_t step, int64_t t) {
        return amx::TileLoadOp::create(
            b, loc, pairs, qp,
            ValueRange{idx(step * kAMXPairCols / 2), idx(2 * t * kAMXTileRows)});
      },
      [&](int64_t t, Value c) {
        amx::TileStoreOp::create(b, loc, st, ValueRange{j0, idx(t * kAMXTileRows)}, c);
      });
}

void StageBuilder::transpose16(SmallVector<Value> &r) {
  for (int64_t hw = VL / 2; hw >= 1; hw /= 2) {
    SmallVector<int64_t> upper, lower;
    for (int64_t l = 0; l < VL; ++l) {
      upper.push_back((l & hw) ? VL + l - hw : l);
      lower.push_back((l & hw) ? VL + l : l + hw);
    }
    for (int64_t i = 0; i < VL; ++i) {
      if (i & hw)
        continue;
      Value x = r[i], y = r[i + hw];
      r[i] = vector::ShuffleOp::create(b, loc, x, y, upper);
      r[i + hw] = vector::ShuffleOp::create(b, loc, x, y, lower);
    }
  }
}

void StageBuilder::emitProbsTimesValueAMX(Value p, Value value, Value acc,
                                          Value alpha, Value jLo, Value jHi,
                                          Value probs, Value vp) {
  int64_t M = dimOf(acc, 0), Dv = dimOf(acc, 1), N = dimOf(value, 0);
  Type bf16 = b.getBF16Type();
  // probs[m][j] = bf16(p[j][m]) for the keys of [jLo, jHi), 0 for the
  // others (their scores were not reduced).
  {
    auto loop = scf::ForOp::create(b, loc, idx(0), idx(N), idx(VL));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value j0 = loop.getInductionVar();
    SmallVector<Value> keep;
    for (int64_t i = 0; i < VL; ++i)
      keep.push_back(keyInRange(add(j0, idx(i)), jLo, jHi));
    auto chunkLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(VL));
    b.setInsertionPoint(chunkLoop.getBody()->getTerminator());
    Value c = chunkLoop.getInductionVar();
    SmallVector<Value> rows;
    for (int64_t i = 0; i < VL; ++i) {
      Value s = vector::LoadOp::create(b, loc, vecType(VL, f32), p,
                                       ValueRange{add(j0, idx(i)), c});
      rows.push_back(arith::SelectOp::create(b, loc, keep[i], s, splat(0.0f, VL)));
    }
    transpose16(rows);
    for (int64_t i = 0; i < VL; ++i)
      vector::StoreOp::create(
          b, loc, arith::TruncFOp::create(b, loc, vecType(VL, bf16), rows[i]),
          probs, ValueRange{add(c, idx(i)), j0});
  }
  // vp[j/2][2e + j%2] = value[j][e] for the keys of [jLo, jHi), 0 for the
  // others (a hidden value, even NaN, never meets a zero probability).
  {
    Value zero = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vecType(VL, bf16), b.getZeroAttr(bf16)));
    SmallVector<int64_t> interleave;
    for (int64_t l = 0; l < VL; ++l) {
      interleave.push_back(l);
      interleave.push_back(VL + l);
    }
    auto loop = scf::ForOp::create(b, loc, idx(0), idx(N), idx(2));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value j = loop.getInductionVar();
    Value pair = arith::DivUIOp::create(b, loc, j, idx(2));
    Value keep0 = keyInRange(j, jLo, jHi);
    Value keep1 = keyInRange(add(j, idx(1)), jLo, jHi);
    for (int64_t e0 = 0; e0 < Dv; e0 += VL) {
      Value v0 = vector::LoadOp::create(b, loc, vecType(VL, bf16), value,
                                        ValueRange{j, idx(e0)});
      Value v1 = vector::LoadOp::create(b, loc, vecType(VL, bf16), value,
                                        ValueRange{add(j, idx(1)), idx(e0)});
      v0 = arith::SelectOp::create(b, loc, keep0, v0, zero);
      v1 = arith::SelectOp::create(b, loc, keep1, v1, zero);
      vector::StoreOp::create(b, loc,
                              vector::ShuffleOp::create(b, loc, v0, v1, interleave),
                              vp, ValueRange{pair, idx(2 * e0)});
    }
  }
  // The rescaling.
  if (alpha) {
    auto rowLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(1));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(rowLoop.getBody()->getTerminator());
    Value m = rowLoop.getInductionVar();
    Value a = bcast(memref::LoadOp::create(b, loc, alpha, ValueRange{m}), VL);
    for (int64_t e0 = 0; e0 < Dv; e0 += VL) {
      Value cur = vector::LoadOp::create(b, loc, vecType(VL, f32), acc,
                                         ValueRange{m, idx(e0)});
      vector::StoreOp::create(b, loc, arith::MulFOp::create(b, loc, cur, a),
                              acc, ValueRange{m, idx(e0)});
    }
  }
  amx::TileType pairs = tileType(kAMXPairCols, bf16), out = tileType(kAMXTileRows, f32);
  auto mLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(kAMXTileRows));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(mLoop.getBody()->getTerminator());
  Value m0 = mLoop.getInductionVar();
  auto accAt = [&](int64_t t) {
    return SmallVector<Value, 2>{m0, idx(t * kAMXTileRows)};
  };
  emitTileProducts(
      Dv / kAMXTileRows, N / kAMXPairCols,
      [&](int64_t t) { return amx::TileLoadOp::create(b, loc, out, acc, accAt(t)); },
      [&](int64_t step) {
        return amx::TileLoadOp::create(b, loc, pairs, probs,
                                       ValueRange{m0, idx(step * kAMXPairCols)});
      },
      [&](int64_t step, int64_t t) {
        return amx::TileLoadOp::create(
            b, loc, pairs, vp,
            ValueRange{idx(step * kAMXPairCols / 2), idx(2 * t * kAMXTileRows)});
      },
      [&](int64_t t, Value c) { amx::TileStoreOp::create(b, loc, acc, accAt(t), c); });
}

} // namespace cpu
} // namespace attn
} // namespace mlir
