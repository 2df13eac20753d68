//===- CPUDecomposeOnlineAttention.cpp - CPU tiles -> linalg stages
//--------===//
//
// Rewrites each tile's attn.online_attention (tensors, static sizes) into
// the linalg.generic stages of CPUTileLowering.h, per (batch, query head) of
// the tile, in the layout the CPU target wants:
//
//   QT[d][m]   = scale * query[m][d]        query stage, hoisted out of the
//                                            key loop (bf16 pairs for
//                                            AVX512-BF16 / AMX, unscaled)
//   ST[j][m]   = sum_d key[j][d] * QT[d][m]  scores (queries on the lanes)
//   ST[j][m]   = mask(scale? * ST + bias)    score stage, where a tile that
//                                            straddles the band tests it
//   r[m]       = max_j ST[j][m]              max, over the keys [jLo, jHi)
//                                            that some row keeps
//   m', alpha, alpha * l                     alpha
//   ST = exp(ST - m'), l' = alpha l + sum_j  exp_sum
//   acc        = alpha * acc + P V           rescale, pv (per-row guards)
//
// Tiles of at most kMaxCPUDecodeTileRows rows put the keys on the lanes
// instead (S[m][j], the scale applied in the score stage). The algorithm is
// FlashAttention-2's (Dao, 2023, Algorithm 1); the decomposition into
// linalg stages follows IREE's decomposition of online_attention.
//
// The Decomposer (CPUDecomposer.h) has one builder per stage: the query,
// scores and score stages are in CPUDecomposeScores.cpp; the head, the row
// statistics, exp_sum, rescale and P V stages and the pass are here.
//
//===----------------------------------------------------------------------===//

#include "CPUDecomposer.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/TileSelection.h"

#include <limits>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CPUDECOMPOSEONLINEATTENTIONPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cpu;

Decomposer::Head Decomposer::beginHead(Value bIdx, Value h, Value acc4,
                                       Value max4, Value sum4) {
  Head hd;
  hd.bIdx = bIdx;
  hd.h = h;
  OpFoldResult bF = bIdx, hF = h, z = rw.getIndexAttr(0);
  Value hk =
      G == 1 ? h : arith::DivUIOp::create(rw, loc, h, idx(G)).getResult();
  OpFoldResult hkF = hk;
  hd.k2 = slice(op.getKey(), {bF, hkF, z, z}, {1, 1, N, D}, 2);
  hd.v2 = slice(op.getValue(), {bF, hkF, z, z}, {1, 1, N, Dv}, 2);
  hd.acc2 = slice(acc4, {bF, hF, z, z}, {1, 1, M, Dv}, 2);
  hd.m1 = slice(max4, {bF, hF, z}, {1, 1, M}, 2);
  hd.l1 = slice(sum4, {bF, hF, z}, {1, 1, M}, 2);

  // Positions of the first row (on the diagonal) and key, and the keys
  // [jLo, jHi) that some row of the tile sees.
  VisibleKeys visible = VisibleKeys::get(rw, loc, detail);
  hd.qOff = visible.rowPos;
  hd.kOff = visible.keyPos;
  hd.qLast = visible.lastRow(rw, loc, hd.qOff, idx(M));
  hd.jLo = idx(0);
  hd.jHi = idx(N);
  visible.narrowToSomeRow(
      rw, loc, hd.qOff, hd.qLast,
      visible.keyLimits(rw, loc, visible.readKvLen(rw, loc, hd.bIdx)), hd.jLo,
      hd.jHi);
  hd.jLo = sb.minI(hd.jLo, idx(N));
  hd.jHi = sb.maxI(hd.jHi, hd.jLo);
  return hd;
}

Decomposer::RowStats Decomposer::buildMaxAndAlphaStages(const Head &hd,
                                                        Value st) {
  Type f32 = rw.getF32Type();
  int64_t statRows = keyLanes ? M : Mp;
  Value mOld = hd.m1, lOld = hd.l1;
  if (statRows != M) {
    OpFoldResult z0 = rw.getIndexAttr(0);
    mOld = insert(hd.m1, filled({statRows}, kNegInf), {z0}, {M});
    lOld = insert(hd.l1, filled({statRows}, 0.0), {z0}, {M});
  }
  Value rowMaxInit = filled({statRows}, kNegInf);
  Value rowMax;
  if (keyLanes) {
    AffineExpr m = dim(0), j = dim(1);
    rowMax =
        generic(
            "max", rowMaxInit.getType(), {st}, rowMaxInit,
            {map(2, {m, j}), map(2, {m})}, {kPar, kRed},
            [&](OpBuilder &b, ValueRange a) {
              Value gt = arith::CmpFOp::create(
                  b, loc, arith::CmpFPredicate::OGT, a[0], a[1]);
              linalg::YieldOp::create(
                  b, loc,
                  arith::SelectOp::create(b, loc, gt, a[0], a[1]).getResult());
            })
            .getResult(0);
  } else {
    AffineExpr j = dim(0), m = dim(1);
    rowMax =
        generic("max", rowMaxInit.getType(), {st, hd.jLo, hd.jHi}, rowMaxInit,
                {map(2, {j, m}), scalarMap(2), scalarMap(2), map(2, {m})},
                {kRed, kPar},
                [&](OpBuilder &b, ValueRange a) {
                  Value jv = linalg::IndexOp::create(b, loc, 0);
                  Value gt = arith::CmpFOp::create(
                      b, loc, arith::CmpFPredicate::OGT, a[0], a[3]);
                  Value mx = arith::SelectOp::create(b, loc, gt, a[0], a[3]);
                  linalg::YieldOp::create(
                      b, loc,
                      arith::SelectOp::create(
                          b, loc, inRange(b, loc, jv, a[1], a[2]), mx, a[3])
                          .getResult());
                })
            .getResult(0);
  }
  // m' = max(m, r), alpha = exp(m - safe(m')), alpha * l.
  AffineMap id1 = AffineMap::getMultiDimIdentityMap(1, rw.getContext());
  Value alphaInit = empty({statRows}, f32);
  linalg::GenericOp alphaStage = generic(
      "alpha", TypeRange{mOld.getType(), alphaInit.getType(), lOld.getType()},
      {rowMax}, {mOld, alphaInit, lOld}, {id1, id1, id1, id1}, {kPar},
      [&](OpBuilder &b, ValueRange a) {
        Value mNew = arith::MaximumFOp::create(b, loc, a[1], a[0]);
        Value alpha = math::ExpOp::create(
            b, loc,
            arith::SubFOp::create(b, loc, a[1],
                                  builders::buildSafeMax(b, loc, mNew)));
        linalg::YieldOp::create(
            b, loc,
            ValueRange{mNew, alpha,
                       arith::MulFOp::create(b, loc, a[3], alpha)});
      });
  Value mNew = alphaStage.getResult(0), alpha = alphaStage.getResult(1),
        lScaled = alphaStage.getResult(2);
  return {statRows, mNew, alpha, lScaled};
}

std::pair<Value, Value> Decomposer::buildExpSumStage(const Head &hd, Value st,
                                                     const RowStats &stats) {
  Value mNew = stats.mNew, lScaled = stats.lScaled;
  linalg::GenericOp expSum;
  if (keyLanes) {
    AffineExpr m = dim(0), j = dim(1);
    expSum = generic(
        "exp_sum", TypeRange{st.getType(), lScaled.getType()}, {mNew},
        {st, lScaled}, {map(2, {m}), map(2, {m, j}), map(2, {m})}, {kPar, kRed},
        [&](OpBuilder &b, ValueRange a) {
          Value p = math::ExpOp::create(
              b, loc,
              arith::SubFOp::create(b, loc, a[1],
                                    builders::buildSafeMax(b, loc, a[0])));
          linalg::YieldOp::create(
              b, loc, ValueRange{p, arith::AddFOp::create(b, loc, a[2], p)});
        });
  } else {
    AffineExpr j = dim(0), m = dim(1);
    expSum = generic(
        "exp_sum", TypeRange{st.getType(), lScaled.getType()},
        {mNew, hd.jLo, hd.jHi}, {st, lScaled},
        {map(2, {m}), scalarMap(2), scalarMap(2), map(2, {j, m}), map(2, {m})},
        {kRed, kPar}, [&](OpBuilder &b, ValueRange a) {
          Value jv = linalg::IndexOp::create(b, loc, 0);
          Value keep = inRange(b, loc, jv, a[1], a[2]);
          Value p = math::ExpOp::create(
              b, loc,
              arith::SubFOp::create(b, loc, a[3],
                                    builders::buildSafeMax(b, loc, a[0])));
          linalg::YieldOp::create(
              b, loc,
              ValueRange{arith::SelectOp::create(b, loc, keep, p, a[3]),
                         arith::SelectOp::create(
                             b, loc, keep,
                             arith::AddFOp::create(b, loc, a[4], p), a[4])});
        });
  }
  return {expSum.getResult(0), expSum.getResult(1)};
}

Value Decomposer::buildRescaleAndPVStages(const Head &hd, Value probs,
                                          const RowStats &stats) {
  Type f32 = rw.getF32Type();
  int64_t statRows = stats.statRows;
  Value alpha = stats.alpha;
  OpFoldResult z0 = rw.getIndexAttr(0);
  Value alphaM = statRows == M ? alpha : slice(alpha, {z0}, {M}, 0);
  Value rescaled =
      generic("rescale", hd.acc2.getType(), {alphaM}, hd.acc2,
              {map(2, {dim(0)}),
               AffineMap::getMultiDimIdentityMap(2, rw.getContext())},
              {kPar, kPar},
              [&](OpBuilder &b, ValueRange a) {
                linalg::YieldOp::create(
                    b, loc,
                    arith::MulFOp::create(b, loc, a[1], a[0]).getResult());
              })
          .getResult(0);
  Value p2 = (keyLanes || Mp == M) ? probs : slice(probs, {z0, z0}, {N, M}, 0);
  AffineExpr m = dim(0), e = dim(1), j = dim(2);
  // Keys hidden by a tensor mask or a mask_mod are known only from their
  // probability (0): P V skips them by it, so a hidden NaN value stays out.
  bool guardZero = op.getMask() != nullptr || detail.maskMod();
  linalg::GenericOp pv = generic(
      "pv", rescaled.getType(), {p2, hd.v2, hd.jLo, hd.jHi, hd.qOff, hd.kOff},
      rescaled,
      {keyLanes ? map(3, {m, j}) : map(3, {j, m}), map(3, {j, e}), scalarMap(3),
       scalarMap(3), scalarMap(3), scalarMap(3), map(3, {m, e})},
      {kPar, kPar, kRed}, [&](OpBuilder &b, ValueRange a) {
        Value mv = linalg::IndexOp::create(b, loc, 0);
        Value jv = linalg::IndexOp::create(b, loc, 2);
        Value keep = inRange(b, loc, jv, a[2], a[3]);
        if (!band.isUnbounded()) {
          Value rel = arith::SubIOp::create(
              b, loc, arith::AddIOp::create(b, loc, a[5], jv),
              arith::AddIOp::create(b, loc, a[4], mv));
          keep =
              arith::AndIOp::create(b, loc, keep, band.buildKeeps(b, loc, rel));
        }
        if (guardZero)
          keep = arith::AndIOp::create(
              b, loc, keep,
              arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, a[0],
                                    fconst(b, 0.0)));
        Value v = a[1].getType().isF32()
                      ? a[1]
                      : arith::ExtFOp::create(b, loc, f32, a[1]).getResult();
        Value r = arith::AddFOp::create(b, loc, a[6],
                                        arith::MulFOp::create(b, loc, a[0], v));
        linalg::YieldOp::create(
            b, loc, arith::SelectOp::create(b, loc, keep, r, a[6]).getResult());
      });
  pv->setAttr(kSchemeAttr, rw.getStringAttr(amx ? "amx" : "fma"));

  return pv.getResult(0);
}

SmallVector<Value> Decomposer::buildHead(Value qt, Value bIdx, Value h,
                                         Value acc4, Value max4, Value sum4) {
  Head hd = beginHead(bIdx, h, acc4, max4, sum4);
  Value st = buildMaskedScoreStage(hd, buildScoresStage(hd, qt));
  RowStats stats = buildMaxAndAlphaStages(hd, st);
  auto [probs, lNew] = buildExpSumStage(hd, st, stats);
  Value acc = buildRescaleAndPVStages(hd, probs, stats);
  Value mNew = stats.mNew;
  OpFoldResult bF = hd.bIdx, hF = hd.h, z = rw.getIndexAttr(0);
  int64_t statRows = stats.statRows;
  if (statRows != M) {
    mNew = slice(mNew, {z}, {M}, 0);
    lNew = slice(lNew, {z}, {M}, 0);
  }
  return {insert(acc, acc4, {bF, hF, z, z}, {1, 1, M, Dv}),
          insert(mNew, max4, {bF, hF, z}, {1, 1, M}),
          insert(lNew, sum4, {bF, hF, z}, {1, 1, M})};
}

namespace {

/// Where the query stage of `query` goes: right after its definition.
void setQueryInsertionPoint(OpBuilder &b, Value query) {
  if (Operation *def = query.getDefiningOp())
    b.setInsertionPointAfter(def);
  else
    b.setInsertionPointToStart(cast<BlockArgument>(query).getOwner());
}

} // namespace

LogicalResult mlir::attn::decomposeOnlineAttentionForCPU(
    RewriterBase &rewriter, OnlineAttentionOp op, const CPUTargetInfo &target,
    DenseMap<Value, Value> &queryStages) {
  int64_t vectorWidth = target.vectorWidth;
  if (vectorWidth != 8 && vectorWidth != 16)
    return op.emitOpError() << "CPU lowering supports vector widths of 8 "
                               "(AVX2) and 16 (AVX-512) f32 lanes, got "
                            << vectorWidth;
  if (!op.hasPureTensorSemantics())
    return op.emitOpError("CPU decomposition expects a tile on tensors (run it "
                          "before bufferization)");
  AttentionOpDetail detail(op);
  AttentionDims d = detail.dims();
  for (int64_t s :
       {d.batch, d.qHeads, d.kvHeads, d.qLen, d.kvLen, d.headDim, d.vHeadDim})
    if (ShapedType::isDynamic(s))
      return op.emitOpError("CPU lowering needs a tile with static sizes");
  bool bf16 = getElementTypeOrSelf(op.getQuery().getType()).isBF16();
  bool keyLanes = useKeyLanes(d, vectorWidth);
  bool amx = target.amxBf16 && vectorWidth == 16 && bf16 && !keyLanes &&
             amxApplies(d, op.getMask() || op.getBias() ||
                               detail.hasModRegions());
  bool bf16Dot = !amx && target.avx512bf16 && vectorWidth == 16 && bf16 &&
                 d.headDim % 2 == 0 && !keyLanes;
  int64_t scratchBytes =
      getCPUTileScratchBytes(d.batch, d.qHeads, d.qLen, d.kvLen, d.headDim,
                             d.vHeadDim, vectorWidth, amx);
  if (scratchBytes > kMaxCPUTileScratchBytes)
    return op.emitOpError()
           << "CPU lowering: a tile of " << d.batch << "x" << d.qHeads << "x"
           << d.qLen << " queries and " << d.kvLen << " keys needs "
           << scratchBytes << " bytes of stack scratch, more than the "
           << kMaxCPUTileScratchBytes << " allowed; use smaller tile sizes";

  OpBuilder::InsertionGuard guard(rewriter);
  Decomposer dec(rewriter, op, vectorWidth);
  dec.keyLanes = keyLanes;
  dec.amx = amx;
  dec.pairs = amx || bf16Dot;
  Value query = op.getQuery();
  Value qt;
  if (!keyLanes) {
    auto known = queryStages.find(query);
    if (known != queryStages.end() &&
        known->second.getType() ==
            RankedTensorType::get(
                dec.pairs
                    ? ArrayRef<int64_t>{d.batch, d.qHeads, d.headDim / 2,
                                        2 * dec.Mp}
                    : ArrayRef<int64_t>{d.batch, d.qHeads, d.headDim, dec.Mp},
                dec.pairs ? rewriter.getBF16Type() : rewriter.getF32Type())) {
      qt = known->second;
    } else {
      setQueryInsertionPoint(rewriter, query);
      qt = dec.buildQueryStage(query);
      queryStages[query] = qt;
    }
  }
  rewriter.setInsertionPoint(op);
  Value zero = dec.idx(0), one = dec.idx(1);
  scf::LoopNest nest = scf::buildLoopNest(
      rewriter, op.getLoc(), ValueRange{zero, zero},
      ValueRange{dec.idx(d.batch), dec.idx(d.qHeads)}, ValueRange{one, one},
      op.getOutputs(),
      [&](OpBuilder &nb, Location, ValueRange iv, ValueRange state) {
        OpBuilder::InsertionGuard g(rewriter);
        rewriter.setInsertionPoint(nb.getInsertionBlock(),
                                   nb.getInsertionPoint());
        return scf::ValueVector(
            dec.buildHead(qt, iv[0], iv[1], state[0], state[1], state[2]));
      });
  rewriter.replaceOp(op, nest.results);
  return success();
}

namespace {
struct CPUDecomposeOnlineAttentionPass
    : attn::impl::CPUDecomposeOnlineAttentionPassBase<
          CPUDecomposeOnlineAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    CPUTargetInfo target;
    target.vectorWidth = vectorWidth;
    target.avx512f = true;
    target.avx512bf16 = bf16Dot;
    target.amxBf16 = amx;
    SmallVector<OnlineAttentionOp> ops;
    getOperation()->walk([&](OnlineAttentionOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    DenseMap<Value, Value> queryStages;
    for (OnlineAttentionOp op : ops)
      if (failed(decomposeOnlineAttentionForCPU(rewriter, op, target,
                                                queryStages)))
        return signalPassFailure();
  }
};
} // namespace
