//===- CPUDecomposeOnlineAttention.cpp - CPU tiles -> linalg stages --------===//
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
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/TileSelection.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

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

namespace {

using utils::IteratorType;
constexpr IteratorType kPar = IteratorType::parallel, kRed = IteratorType::reduction;

struct Decomposer {
  RewriterBase &rw;
  OnlineAttentionOp op;
  Location loc;
  AttentionOpDetail detail;
  AttentionDims d;
  int64_t VL;
  bool pairs = false, amx = false, keyLanes = false;
  int64_t B, Hq, G, M, N, D, Dv, Mp;
  KeyBand band;
  StageBuilder sb;

  Decomposer(RewriterBase &rw, OnlineAttentionOp op, int64_t vl)
      : rw(rw), op(op), loc(op.getLoc()), detail(op), d(detail.dims()), VL(vl),
        sb(rw, op.getLoc(), vl) {
    B = d.batch;
    Hq = d.qHeads;
    G = d.groupSize();
    M = d.qLen;
    N = d.kvLen;
    D = d.headDim;
    Dv = d.vHeadDim;
    Mp = (M + VL - 1) / VL * VL;
    band = KeyBand::get(detail.maskKind());
  }

  Value idx(int64_t v) { return sb.idx(v); }
  Value fconst(OpBuilder &b, double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  float scale() { return static_cast<float>(detail.scale()); }

  RankedTensorType tensorType(ArrayRef<int64_t> shape, Type elt) {
    return RankedTensorType::get(shape, elt);
  }
  Value empty(ArrayRef<int64_t> shape, Type elt) {
    return tensor::EmptyOp::create(rw, loc, shape, elt);
  }
  Value filled(ArrayRef<int64_t> shape, double v) {
    return linalg::FillOp::create(rw, loc, ValueRange{fconst(rw, v)},
                                  ValueRange{empty(shape, rw.getF32Type())})
        .getResult(0);
  }
  /// source[offsets...] with the leading `drop` dimensions of size 1
  /// dropped from the result.
  Value slice(Value source, ArrayRef<OpFoldResult> offsets,
              ArrayRef<int64_t> sizes, unsigned drop) {
    auto t = cast<RankedTensorType>(source.getType());
    SmallVector<OpFoldResult> sz, strides(sizes.size(), rw.getIndexAttr(1));
    for (int64_t s : sizes)
      sz.push_back(rw.getIndexAttr(s));
    auto result = tensorType(sizes.drop_front(drop), t.getElementType());
    return tensor::ExtractSliceOp::create(rw, loc, result, source, offsets, sz,
                                          strides);
  }
  Value insert(Value source, Value dest, ArrayRef<OpFoldResult> offsets,
               ArrayRef<int64_t> sizes) {
    SmallVector<OpFoldResult> sz, strides(sizes.size(), rw.getIndexAttr(1));
    for (int64_t s : sizes)
      sz.push_back(rw.getIndexAttr(s));
    return tensor::InsertSliceOp::create(rw, loc, source, dest, offsets, sz,
                                         strides);
  }

  linalg::GenericOp generic(StringRef stage, TypeRange results, ValueRange ins,
                            ValueRange outs, ArrayRef<AffineMap> maps,
                            ArrayRef<IteratorType> iters,
                            function_ref<void(OpBuilder &, ValueRange)> body) {
    auto g = linalg::GenericOp::create(
        rw, loc, results, ins, outs, maps, iters,
        [&](OpBuilder &nb, Location, ValueRange args) { body(nb, args); });
    g->setAttr(kStageAttr, rw.getStringAttr(stage));
    g->setAttr(kStageLayoutAttr,
               rw.getStringAttr(keyLanes ? kKeyLanes : kQueryLanes));
    return g;
  }
  AffineMap map(unsigned dims, ArrayRef<AffineExpr> results) {
    return AffineMap::get(dims, 0, results, rw.getContext());
  }
  AffineExpr dim(unsigned i) { return rw.getAffineDimExpr(i); }
  AffineMap scalarMap(unsigned dims) { return map(dims, {}); }

  /// The query stage: QT [B][Hq][D][Mp] f32 = scale * Q^T, or with `pairs`
  /// QP [B][Hq][D/2][2 Mp] bf16; rows >= M are 0.
  Value buildQueryStage(Value query) {
    Type elt = pairs ? rw.getBF16Type() : rw.getF32Type();
    SmallVector<int64_t> shape = pairs ? SmallVector<int64_t>{B, Hq, D / 2, 2 * Mp}
                                       : SmallVector<int64_t>{B, Hq, D, Mp};
    Value out = empty(shape, elt);
    linalg::GenericOp g = generic(
        "query", out.getType(), {}, out, {AffineMap::getMultiDimIdentityMap(4, rw.getContext())},
        {kPar, kPar, kPar, kPar}, [&](OpBuilder &b, ValueRange) {
          auto index = [&](unsigned i) { return linalg::IndexOp::create(b, loc, i); };
          Value x = index(2), y = index(3), dIdx = x, m = y;
          auto c = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); };
          if (pairs) {
            dIdx = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, x, c(2)),
                                         arith::RemUIOp::create(b, loc, y, c(2)));
            m = arith::DivUIOp::create(b, loc, y, c(2));
          }
          Value row = arith::MinSIOp::create(b, loc, m, c(M - 1));
          Value q = tensor::ExtractOp::create(
              b, loc, query, ValueRange{index(0), index(1), row, dIdx});
          if (!pairs) {
            if (!q.getType().isF32())
              q = arith::ExtFOp::create(b, loc, b.getF32Type(), q);
            q = arith::MulFOp::create(b, loc, q, fconst(b, scale()));
          }
          if (Mp != M) {
            Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, m, c(M));
            Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(q.getType()));
            q = arith::SelectOp::create(b, loc, inside, q, zero);
          }
          linalg::YieldOp::create(b, loc, q);
        });
    return g.getResult(0);
  }

  /// The score stage on `st`; nullptr-free: returns `st` when it has
  /// nothing to do.
  Value buildScoreStage(Value st, Value bIdx, Value h, Value qOff, Value kOff,
                        Value jLo, Value jHi, bool withBand) {
    bool scaleHere = pairs || keyLanes;
    Value bias = op.getBias(), mask = op.getMask();
    if (!scaleHere && !bias && !mask && !withBand && !keyLanes)
      return st;
    Type i32 = rw.getI32Type();
    Value lo32, hi32;
    if (keyLanes) {
      lo32 = arith::IndexCastOp::create(rw, loc, i32, jLo);
      hi32 = arith::IndexCastOp::create(rw, loc, i32, jHi);
    }
    AffineMap id = AffineMap::getMultiDimIdentityMap(2, rw.getContext());
    linalg::GenericOp g = generic(
        "score", st.getType(), {}, st, {id}, {kPar, kPar},
        [&](OpBuilder &b, ValueRange args) {
          Value j = linalg::IndexOp::create(b, loc, keyLanes ? 1 : 0);
          Value m = linalg::IndexOp::create(b, loc, keyLanes ? 0 : 1);
          auto c = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); };
          Value row;
          // Bias and mask are read at the (clamped) row and key of the
          // element, with broadcast dimensions at 0.
          auto at = [&](Value operand) -> SmallVector<Value> {
            if (!row)
              row = M == 1 ? c(0) : arith::MinSIOp::create(b, loc, m, c(M - 1)).getResult();
            auto t = cast<RankedTensorType>(operand.getType());
            return {t.getDimSize(0) == 1 ? c(0) : bIdx,
                    t.getDimSize(1) == 1 ? c(0) : h,
                    t.getDimSize(2) == 1 ? c(0) : row, j};
          };
          auto readBias = [&](OpBuilder &) {
            return bias ? tensor::ExtractOp::create(b, loc, bias, at(bias)).getResult()
                        : Value();
          };
          auto keepOf = [&](OpBuilder &) {
            Value keep;
            auto conj = [&](Value k) {
              keep = keep ? arith::AndIOp::create(b, loc, keep, k).getResult() : k;
            };
            if (mask)
              conj(tensor::ExtractOp::create(b, loc, mask, at(mask)));
            Value j32 = arith::IndexCastOp::create(b, loc, i32, j);
            if (withBand) {
              // rel = (kv_offset + j) - (q_offset + m), in i32 like the lanes.
              Value kPos = arith::IndexCastOp::create(b, loc, i32,
                                                      arith::AddIOp::create(b, loc, kOff, j));
              Value qPos = arith::IndexCastOp::create(b, loc, i32,
                                                      arith::AddIOp::create(b, loc, qOff, m));
              conj(band.buildKeeps(b, loc, arith::SubIOp::create(b, loc, kPos, qPos)));
            }
            if (keyLanes) {
              conj(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j32, lo32));
              conj(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j32, hi32));
            }
            return keep;
          };
          builders::ScoreElement e;
          e.score = args[0];
          if (scaleHere)
            e.scale = scale();
          e.bias = readBias;
          e.keep = keepOf;
          linalg::YieldOp::create(b, loc, builders::buildScoreElement(b, loc, e));
        });
    return g.getResult(0);
  }

  /// In-range test j in [lo, hi) inside a stage region.
  static Value inRange(OpBuilder &b, Location loc, Value j, Value lo, Value hi) {
    return arith::AndIOp::create(
        b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j, lo),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j, hi));
  }

  /// One (batch, query head) of the tile as the stages see it: the head's
  /// key and value, its running state, the positions of row 0 (on the
  /// diagonal) and key 0, the last non-padding row and the keys [jLo, jHi)
  /// that some row sees.
  struct Head {
    Value bIdx, h;
    Value k2, v2, acc2, m1, l1;
    Value qOff, kOff, qLast, jLo, jHi;
  };

  /// Slices the head out of the tile and asks VisibleKeys for its key range.
  Head beginHead(Value bIdx, Value h, Value acc4, Value max4, Value sum4) {
    Head hd;
    hd.bIdx = bIdx;
    hd.h = h;
    OpFoldResult bF = bIdx, hF = h, z = rw.getIndexAttr(0);
    Value hk = G == 1 ? h : arith::DivUIOp::create(rw, loc, h, idx(G)).getResult();
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
        visible.keyLimits(rw, loc, visible.readKvLen(rw, loc, hd.bIdx)),
        hd.jLo, hd.jHi);
    hd.jLo = sb.minI(hd.jLo, idx(N));
    hd.jHi = sb.maxI(hd.jHi, hd.jLo);
    return hd;
  }

  /// The scores stage: the Q K^T contraction in the tile's layout (keys on
  /// the lanes, or queries on the lanes as FMA, bf16 pairs or AMX).
  Value buildScoresStage(const Head &hd, Value qt) {
    OpFoldResult bF = hd.bIdx, hF = hd.h, z = rw.getIndexAttr(0);
    Type f32 = rw.getF32Type();
    int64_t rows = keyLanes ? M : N, cols = keyLanes ? N : Mp;
    Value st0 = filled({rows, cols}, 0.0);
    Value st;
    if (keyLanes) {
      Value q2 = slice(op.getQuery(), {bF, hF, z, z}, {1, 1, M, D}, 2);
      AffineExpr m = dim(0), j = dim(1), dd = dim(2);
      st = generic("scores", st0.getType(), {q2, hd.k2}, st0,
                   {map(3, {m, dd}), map(3, {j, dd}), map(3, {m, j})},
                   {kPar, kPar, kRed}, [&](OpBuilder &b, ValueRange a) {
                     auto ext = [&](Value v) {
                       return v.getType().isF32()
                                  ? v
                                  : arith::ExtFOp::create(b, loc, f32, v).getResult();
                     };
                     linalg::YieldOp::create(
                         b, loc,
                         arith::AddFOp::create(b, loc, a[2],
                                               arith::MulFOp::create(b, loc, ext(a[0]), ext(a[1])))
                             .getResult());
                   })
               .getResult(0);
      st.getDefiningOp()->setAttr(kSchemeAttr, rw.getStringAttr("rows"));
    } else {
      bool usePairs = pairs;
      Value q2 = usePairs ? slice(qt, {bF, hF, z, z}, {1, 1, D / 2, 2 * Mp}, 2)
                          : slice(qt, {bF, hF, z, z}, {1, 1, D, Mp}, 2);
      SmallVector<AffineMap> maps;
      SmallVector<IteratorType> iters;
      Value lhs = hd.k2, rhs = q2;
      if (usePairs) {
        // The pairs as a dimension of their own: K [j][p][r], QP [p][m][r].
        auto expand = [&](Value v, ArrayRef<int64_t> shape) {
          auto t = cast<RankedTensorType>(v.getType());
          return tensor::ExpandShapeOp::create(
              rw, loc, tensorType(shape, t.getElementType()), v,
              SmallVector<ReassociationIndices>{{0}, {1, 2}});
        };
        lhs = expand(hd.k2, {N, D / 2, 2});
        rhs = expand(q2, {D / 2, Mp, 2});
        AffineExpr j = dim(0), m = dim(1), p = dim(2), r = dim(3);
        maps = {map(4, {j, p, r}), map(4, {p, m, r}), map(4, {j, m})};
        iters = {kPar, kPar, kRed, kRed};
      } else {
        AffineExpr j = dim(0), m = dim(1), dd = dim(2);
        maps = {map(3, {j, dd}), map(3, {dd, m}), map(3, {j, m})};
        iters = {kPar, kPar, kRed};
      }
      linalg::GenericOp g = generic(
          "scores", st0.getType(), {lhs, rhs}, st0, maps, iters,
          [&](OpBuilder &b, ValueRange a) {
            auto ext = [&](Value v) {
              return v.getType().isF32() ? v
                                         : arith::ExtFOp::create(b, loc, f32, v).getResult();
            };
            linalg::YieldOp::create(
                b, loc,
                arith::AddFOp::create(b, loc, a[2],
                                      arith::MulFOp::create(b, loc, ext(a[0]), ext(a[1])))
                    .getResult());
          });
      g->setAttr(kSchemeAttr,
                 rw.getStringAttr(amx ? "amx" : usePairs ? "bf16_dot" : "fma"));
      st = g.getResult(0);
    }

    return st;
  }

  /// The score stage (buildScoreStage); with queries on the lanes, a tile
  /// inside the band skips the band test.
  Value buildMaskedScoreStage(const Head &hd, Value st) {
    if (!keyLanes && !band.isUnbounded()) {
      Value hiKey = sb.add(hd.kOff, sb.sub(hd.jHi, idx(1))), loKey = sb.add(hd.kOff, hd.jLo);
      Value inside = band.buildKeepsAnyAll(rw, loc, sb.sub(loKey, hd.qLast),
                                           sb.sub(hiKey, hd.qOff))
                         .second;
      auto ifOp = scf::IfOp::create(rw, loc, TypeRange{st.getType()}, inside,
                                    /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard g(rw);
        rw.setInsertionPointToStart(ifOp.thenBlock());
        scf::YieldOp::create(
            rw, loc, buildScoreStage(st, hd.bIdx, hd.h, hd.qOff, hd.kOff, hd.jLo, hd.jHi, false));
        rw.setInsertionPointToStart(ifOp.elseBlock());
        scf::YieldOp::create(
            rw, loc, buildScoreStage(st, hd.bIdx, hd.h, hd.qOff, hd.kOff, hd.jLo, hd.jHi, true));
      }
      st = ifOp.getResult(0);
    } else {
      st = buildScoreStage(st, hd.bIdx, hd.h, hd.qOff, hd.kOff, hd.jLo, hd.jHi,
                           keyLanes && !band.isUnbounded());
    }

    return st;
  }

  /// The row statistics of a head, over `statRows` rows (Mp with queries on
  /// the lanes, padded with -inf max and 0 sum).
  struct RowStats {
    int64_t statRows;
    Value mNew, alpha, lScaled;
  };

  /// The max stage, then the alpha stage: m' = max(m, rowmax),
  /// alpha = exp(m - safe(m')), alpha * l.
  RowStats buildMaxAndAlphaStages(const Head &hd, Value st) {
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
      rowMax = generic("max", rowMaxInit.getType(), {st}, rowMaxInit,
                       {map(2, {m, j}), map(2, {m})}, {kPar, kRed},
                       [&](OpBuilder &b, ValueRange a) {
                         Value gt = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, a[0], a[1]);
                         linalg::YieldOp::create(
                             b, loc, arith::SelectOp::create(b, loc, gt, a[0], a[1]).getResult());
                       })
                   .getResult(0);
    } else {
      AffineExpr j = dim(0), m = dim(1);
      rowMax = generic("max", rowMaxInit.getType(), {st, hd.jLo, hd.jHi}, rowMaxInit,
                       {map(2, {j, m}), scalarMap(2), scalarMap(2), map(2, {m})},
                       {kRed, kPar}, [&](OpBuilder &b, ValueRange a) {
                         Value jv = linalg::IndexOp::create(b, loc, 0);
                         Value gt = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, a[0], a[3]);
                         Value mx = arith::SelectOp::create(b, loc, gt, a[0], a[3]);
                         linalg::YieldOp::create(
                             b, loc,
                             arith::SelectOp::create(b, loc, inRange(b, loc, jv, a[1], a[2]), mx, a[3])
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
              b, loc, arith::SubFOp::create(b, loc, a[1], builders::buildSafeMax(b, loc, mNew)));
          linalg::YieldOp::create(
              b, loc, ValueRange{mNew, alpha, arith::MulFOp::create(b, loc, a[3], alpha)});
        });
    Value mNew = alphaStage.getResult(0), alpha = alphaStage.getResult(1),
          lScaled = alphaStage.getResult(2);
    return {statRows, mNew, alpha, lScaled};
  }

  /// The exp_sum stage: P = exp(S - safe(m')), l' = alpha l + sum_j P.
  /// Returns {P, l'}.
  std::pair<Value, Value> buildExpSumStage(const Head &hd, Value st,
                                           const RowStats &stats) {
    Value mNew = stats.mNew, lScaled = stats.lScaled;
    linalg::GenericOp expSum;
    if (keyLanes) {
      AffineExpr m = dim(0), j = dim(1);
      expSum = generic("exp_sum", TypeRange{st.getType(), lScaled.getType()}, {mNew},
                       {st, lScaled}, {map(2, {m}), map(2, {m, j}), map(2, {m})},
                       {kPar, kRed}, [&](OpBuilder &b, ValueRange a) {
                         Value p = math::ExpOp::create(
                             b, loc, arith::SubFOp::create(b, loc, a[1], builders::buildSafeMax(b, loc, a[0])));
                         linalg::YieldOp::create(
                             b, loc, ValueRange{p, arith::AddFOp::create(b, loc, a[2], p)});
                       });
    } else {
      AffineExpr j = dim(0), m = dim(1);
      expSum = generic(
          "exp_sum", TypeRange{st.getType(), lScaled.getType()}, {mNew, hd.jLo, hd.jHi},
          {st, lScaled}, {map(2, {m}), scalarMap(2), scalarMap(2), map(2, {j, m}), map(2, {m})},
          {kRed, kPar}, [&](OpBuilder &b, ValueRange a) {
            Value jv = linalg::IndexOp::create(b, loc, 0);
            Value keep = inRange(b, loc, jv, a[1], a[2]);
            Value p = math::ExpOp::create(
                b, loc, arith::SubFOp::create(b, loc, a[3], builders::buildSafeMax(b, loc, a[0])));
            linalg::YieldOp::create(
                b, loc,
                ValueRange{arith::SelectOp::create(b, loc, keep, p, a[3]),
                           arith::SelectOp::create(
                               b, loc, keep, arith::AddFOp::create(b, loc, a[4], p), a[4])});
          });
    }
    return {expSum.getResult(0), expSum.getResult(1)};

  }

  /// The rescale stage acc = alpha * acc, then the pv stage acc += P V over
  /// the keys each row sees. Returns the new accumulator.
  Value buildRescaleAndPVStages(const Head &hd, Value probs,
                                const RowStats &stats) {
    Type f32 = rw.getF32Type();
    int64_t statRows = stats.statRows;
    Value alpha = stats.alpha;
    OpFoldResult z0 = rw.getIndexAttr(0);
    Value alphaM = statRows == M ? alpha : slice(alpha, {z0}, {M}, 0);
    Value rescaled =
        generic("rescale", hd.acc2.getType(), {alphaM}, hd.acc2,
                {map(2, {dim(0)}), AffineMap::getMultiDimIdentityMap(2, rw.getContext())},
                {kPar, kPar}, [&](OpBuilder &b, ValueRange a) {
                  linalg::YieldOp::create(b, loc,
                                          arith::MulFOp::create(b, loc, a[1], a[0]).getResult());
                })
            .getResult(0);
    Value p2 = (keyLanes || Mp == M) ? probs : slice(probs, {z0, z0}, {N, M}, 0);
    AffineExpr m = dim(0), e = dim(1), j = dim(2);
    bool guardZero = op.getMask() != nullptr;
    linalg::GenericOp pv = generic(
        "pv", rescaled.getType(), {p2, hd.v2, hd.jLo, hd.jHi, hd.qOff, hd.kOff}, rescaled,
        {keyLanes ? map(3, {m, j}) : map(3, {j, m}), map(3, {j, e}), scalarMap(3),
         scalarMap(3), scalarMap(3), scalarMap(3), map(3, {m, e})},
        {kPar, kPar, kRed}, [&](OpBuilder &b, ValueRange a) {
          Value mv = linalg::IndexOp::create(b, loc, 0);
          Value jv = linalg::IndexOp::create(b, loc, 2);
          Value keep = inRange(b, loc, jv, a[2], a[3]);
          if (!band.isUnbounded()) {
            Value rel = arith::SubIOp::create(b, loc, arith::AddIOp::create(b, loc, a[5], jv),
                                              arith::AddIOp::create(b, loc, a[4], mv));
            keep = arith::AndIOp::create(b, loc, keep, band.buildKeeps(b, loc, rel));
          }
          if (guardZero)
            keep = arith::AndIOp::create(
                b, loc, keep,
                arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, a[0], fconst(b, 0.0)));
          Value v = a[1].getType().isF32() ? a[1]
                                           : arith::ExtFOp::create(b, loc, f32, a[1]).getResult();
          Value r = arith::AddFOp::create(b, loc, a[6], arith::MulFOp::create(b, loc, a[0], v));
          linalg::YieldOp::create(b, loc,
                                  arith::SelectOp::create(b, loc, keep, r, a[6]).getResult());
        });
    pv->setAttr(kSchemeAttr, rw.getStringAttr(amx ? "amx" : "fma"));

    return pv.getResult(0);
  }

  /// One (batch, query head) of the tile; returns the new acc, max, sum.
  SmallVector<Value> buildHead(Value qt, Value bIdx, Value h, Value acc4,
                               Value max4, Value sum4) {
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
};

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
  AttentionDims d = AttentionOpDetail(op).dims();
  for (int64_t s : {d.batch, d.qHeads, d.kvHeads, d.qLen, d.kvLen, d.headDim,
                    d.vHeadDim})
    if (ShapedType::isDynamic(s))
      return op.emitOpError("CPU lowering needs a tile with static sizes");
  bool bf16 = getElementTypeOrSelf(op.getQuery().getType()).isBF16();
  bool keyLanes = useKeyLanes(d, vectorWidth);
  bool amx = target.amxBf16 && vectorWidth == 16 && bf16 && !keyLanes &&
             amxApplies(d, op.getMask() || op.getBias());
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
            RankedTensorType::get(dec.pairs ? ArrayRef<int64_t>{d.batch, d.qHeads, d.headDim / 2, 2 * dec.Mp}
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
        rewriter.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
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
      if (failed(decomposeOnlineAttentionForCPU(rewriter, op, target, queryStages)))
        return signalPassFailure();
  }
};
} // namespace
