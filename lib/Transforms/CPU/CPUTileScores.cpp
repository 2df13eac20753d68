//===- CPUTileScores.cpp - the scores stage's microkernels (vector FMA) ----===//
//
// The register-blocked lowerings of a tile's Q K^T contraction on FMA and
// AVX512-BF16 units, queries on the lanes (see CPUTileLowering.h for the
// stage contract; P V is in CPUTileProbsTimesValue.cpp).
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"

namespace mlir {
namespace attn {
namespace cpu {

void forBlocks(OpBuilder &b, Location loc, int64_t total, int64_t block,
               function_ref<void(Value, int64_t)> body) {
  int64_t full = total / block, rest = total % block;
  if (full == 1) {
    body(arith::ConstantIndexOp::create(b, loc, 0), block);
  } else if (full > 1) {
    auto loop = scf::ForOp::create(
        b, loc, arith::ConstantIndexOp::create(b, loc, 0),
        arith::ConstantIndexOp::create(b, loc, full * block),
        arith::ConstantIndexOp::create(b, loc, block));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    body(loop.getInductionVar(), block);
  }
  if (rest)
    body(arith::ConstantIndexOp::create(b, loc, full * block), rest);
}

std::pair<Value, Value> StageBuilder::alignKeys(Value from, Value to,
                                                int64_t align, int64_t n) {
  Value lo = arith::MulIOp::create(
      b, loc, arith::DivUIOp::create(b, loc, from, idx(align)), idx(align));
  Value hi = arith::MulIOp::create(
      b, loc,
      arith::DivUIOp::create(b, loc, add(to, idx(align - 1)), idx(align)),
      idx(align));
  return {lo, minI(hi, idx(n))};
}

void StageBuilder::emitScoresBF16(Value key, Value qp, Value st) {
  int64_t N = dimOf(st, 0), Mp = dimOf(st, 1), D = dimOf(key, 1);
  CPUTargetInfo::RegisterBlock block =
      CPUTargetInfo::fmaRegisterBlock(vectorRegisters, Mp / VL);
  int64_t chunks = Mp / VL, mrv = block.laneBlocks, jr = block.rows;
  Type bf16 = b.getBF16Type();
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
              b, loc, vecType(2 * VL, bf16), qp,
              ValueRange{p, arith::MulIOp::create(b, loc, add(m0, idx(r * VL)),
                                                  idx(2))}));
        Value d = arith::MulIOp::create(b, loc, p, idx(2));
        SmallVector<Value> next(loop.getRegionIterArgs());
        for (int64_t jj = 0; jj < nj; ++jj) {
          Value pair = vector::LoadOp::create(b, loc, vecType(2, bf16), key,
                                              ValueRange{add(j0, idx(jj)), d});
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
          vector::StoreOp::create(b, loc, loop.getResult(jj * nc + r), st,
                                  ValueRange{add(j0, idx(jj)), add(m0, idx(r * VL))});
    });
  });
}

void StageBuilder::emitScores(Value key, Value qt, Value st) {
  int64_t N = dimOf(st, 0), Mp = dimOf(st, 1), D = dimOf(key, 1);
  CPUTargetInfo::RegisterBlock block =
      CPUTargetInfo::fmaRegisterBlock(vectorRegisters, Mp / VL);
  int64_t chunks = Mp / VL, mrv = block.laneBlocks, jr = block.rows;
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
            qv.push_back(loadVec(qt, {d, add(m0, idx(r * VL))}, VL));
          SmallVector<Value> next(loop.getRegionIterArgs());
          for (int64_t jj = 0; jj < nj; ++jj) {
            Value kb = bcast(loadScalar(key, {add(j0, idx(jj)), d}), VL);
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

} // namespace cpu
} // namespace attn
} // namespace mlir
