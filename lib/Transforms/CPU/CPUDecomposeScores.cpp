//===- CPUDecomposeScores.cpp - the query, scores and score stages --------===//
//
// The stages of a CPU tile up to the masked scores (CPUDecomposer.h): the
// scaled, transposed query (once per query block), the Q K^T contraction in
// the tile's layout, and the one elementwise score stage (scale, bias,
// tensor mask, band and key range tests through builders::buildScoreElement),
// under an scf.if that skips the band test for a tile inside the band.
//
//===----------------------------------------------------------------------===//

#include "CPUDecomposer.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cpu;

Value Decomposer::buildQueryStage(Value query) {
  Type elt = pairs ? rw.getBF16Type() : rw.getF32Type();
  SmallVector<int64_t> shape = pairs
                                   ? SmallVector<int64_t>{B, Hq, D / 2, 2 * Mp}
                                   : SmallVector<int64_t>{B, Hq, D, Mp};
  Value out = empty(shape, elt);
  linalg::GenericOp g = generic(
      "query", out.getType(), {}, out,
      {AffineMap::getMultiDimIdentityMap(4, rw.getContext())},
      {kPar, kPar, kPar, kPar}, [&](OpBuilder &b, ValueRange) {
        auto index = [&](unsigned i) {
          return linalg::IndexOp::create(b, loc, i);
        };
        Value x = index(2), y = index(3), dIdx = x, m = y;
        auto c = [&](int64_t v) {
          return arith::ConstantIndexOp::create(b, loc, v);
        };
        if (pairs) {
          dIdx = arith::AddIOp::create(b, loc,
                                       arith::MulIOp::create(b, loc, x, c(2)),
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
          Value inside =
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, m, c(M));
          Value zero =
              arith::ConstantOp::create(b, loc, b.getZeroAttr(q.getType()));
          q = arith::SelectOp::create(b, loc, inside, q, zero);
        }
        linalg::YieldOp::create(b, loc, q);
      });
  return g.getResult(0);
}

Value Decomposer::buildScoreStage(const Head &hd, Value st, bool withBand) {
  Value bIdx = hd.bIdx, h = hd.h, qOff = hd.qOff, kOff = hd.kOff, jLo = hd.jLo,
        jHi = hd.jHi;
  bool scaleHere = pairs || keyLanes;
  Value bias = op.getBias(), mask = op.getMask();
  Region *scoreMod = detail.scoreMod(), *maskMod = detail.maskMod();
  if (!scaleHere && !bias && !mask && !withBand && !keyLanes && !scoreMod &&
      !maskMod)
    return st;
  // The regions' absolute batch and query head; their query row and key
  // are clamped to the last real row and key (padding rows and padded tail
  // keys are hidden, but a region may index a capture with them).
  Value batchAbs, headAbs, lastKey;
  if (scoreMod || maskMod) {
    auto plus = [&](Value offset, Value local) {
      return offset ? sb.add(offset, local) : local;
    };
    batchAbs = plus(detail.batchOffset(), bIdx);
    headAbs = plus(detail.headOffset(), h);
    if (Value bound = detail.kvBound())
      lastKey = sb.maxI(sb.sub(bound, idx(1)), idx(0));
  }
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
        auto c = [&](int64_t v) {
          return arith::ConstantIndexOp::create(b, loc, v);
        };
        builders::ModIndices modAt;
        if (scoreMod || maskMod) {
          Value qPos = arith::AddIOp::create(b, loc, qOff, m);
          Value kPos = arith::AddIOp::create(b, loc, kOff, j);
          modAt.batch = batchAbs;
          modAt.head = headAbs;
          modAt.queryRow = arith::MinSIOp::create(b, loc, qPos, hd.qLast);
          modAt.key =
              lastKey
                  ? arith::MinSIOp::create(b, loc, kPos, lastKey).getResult()
                  : kPos;
        }
        Value row;
        // Bias and mask are read at the (clamped) row and key of the
        // element, with broadcast dimensions at 0.
        auto at = [&](Value operand) -> SmallVector<Value> {
          if (!row)
            row = M == 1
                      ? c(0)
                      : arith::MinSIOp::create(b, loc, m, c(M - 1)).getResult();
          auto t = cast<RankedTensorType>(operand.getType());
          return {t.getDimSize(0) == 1 ? c(0) : bIdx,
                  t.getDimSize(1) == 1 ? c(0) : h,
                  t.getDimSize(2) == 1 ? c(0) : row, j};
        };
        auto readBias = [&](OpBuilder &) {
          return bias ? tensor::ExtractOp::create(b, loc, bias, at(bias))
                            .getResult()
                      : Value();
        };
        auto keepOf = [&](OpBuilder &) {
          Value keep;
          auto conj = [&](Value k) {
            keep =
                keep ? arith::AndIOp::create(b, loc, keep, k).getResult() : k;
          };
          if (mask)
            conj(tensor::ExtractOp::create(b, loc, mask, at(mask)));
          if (maskMod)
            conj(builders::buildMaskMod(b, *maskMod, modAt, detail.captures()));
          Value j32 = arith::IndexCastOp::create(b, loc, i32, j);
          if (withBand) {
            // rel = (kv_offset + j) - (q_offset + m), in i32 like the lanes.
            Value kPos = arith::IndexCastOp::create(
                b, loc, i32, arith::AddIOp::create(b, loc, kOff, j));
            Value qPos = arith::IndexCastOp::create(
                b, loc, i32, arith::AddIOp::create(b, loc, qOff, m));
            conj(band.buildKeeps(b, loc,
                                 arith::SubIOp::create(b, loc, kPos, qPos)));
          }
          if (keyLanes) {
            conj(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j32,
                                       lo32));
            conj(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j32,
                                       hi32));
          }
          return keep;
        };
        auto modScore = [&](OpBuilder &mb, Value s) {
          return builders::buildScoreMod(mb, *scoreMod, s, modAt,
                                         detail.captures());
        };
        builders::ScoreElement e;
        e.score = args[0];
        if (scaleHere)
          e.scale = scale();
        e.bias = readBias;
        if (scoreMod)
          e.scoreMod = modScore;
        e.keep = keepOf;
        linalg::YieldOp::create(b, loc, builders::buildScoreElement(b, loc, e));
      });
  return g.getResult(0);
}

void Decomposer::yieldMulAdd(OpBuilder &b, ValueRange a) {
  auto f32 = [&](Value v) -> Value {
    return v.getType().isF32()
               ? v
               : arith::ExtFOp::create(b, loc, b.getF32Type(), v).getResult();
  };
  linalg::YieldOp::create(
      b, loc,
      arith::AddFOp::create(b, loc, a[2],
                            arith::MulFOp::create(b, loc, f32(a[0]), f32(a[1])))
          .getResult());
}

Value Decomposer::buildScoresStage(const Head &hd, Value qt) {
  OpFoldResult bF = hd.bIdx, hF = hd.h, z = rw.getIndexAttr(0);
  int64_t rows = keyLanes ? M : N, cols = keyLanes ? N : Mp;
  Value st0 = filled({rows, cols}, 0.0);
  Value st;
  if (keyLanes) {
    Value q2 = slice(op.getQuery(), {bF, hF, z, z}, {1, 1, M, D}, 2);
    AffineExpr m = dim(0), j = dim(1), dd = dim(2);
    st = generic("scores", st0.getType(), {q2, hd.k2}, st0,
                 {map(3, {m, dd}), map(3, {j, dd}), map(3, {m, j})},
                 {kPar, kPar, kRed},
                 [&](OpBuilder &b, ValueRange a) { yieldMulAdd(b, a); })
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
    linalg::GenericOp g =
        generic("scores", st0.getType(), {lhs, rhs}, st0, maps, iters,
                [&](OpBuilder &b, ValueRange a) { yieldMulAdd(b, a); });
    g->setAttr(kSchemeAttr, rw.getStringAttr(amx        ? "amx"
                                             : usePairs ? "bf16_dot"
                                                        : "fma"));
    st = g.getResult(0);
  }

  return st;
}

Value Decomposer::buildMaskedScoreStage(const Head &hd, Value st) {
  if (!keyLanes && !band.isUnbounded()) {
    Value hiKey = sb.add(hd.kOff, sb.sub(hd.jHi, idx(1))),
          loKey = sb.add(hd.kOff, hd.jLo);
    Value inside = band.buildKeepsAnyAll(rw, loc, sb.sub(loKey, hd.qLast),
                                         sb.sub(hiKey, hd.qOff))
                       .second;
    auto ifOp = scf::IfOp::create(rw, loc, TypeRange{st.getType()}, inside,
                                  /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard g(rw);
      rw.setInsertionPointToStart(ifOp.thenBlock());
      scf::YieldOp::create(rw, loc, buildScoreStage(hd, st, false));
      rw.setInsertionPointToStart(ifOp.elseBlock());
      scf::YieldOp::create(rw, loc, buildScoreStage(hd, st, true));
    }
    st = ifOp.getResult(0);
  } else {
    st = buildScoreStage(hd, st, keyLanes && !band.isUnbounded());
  }

  return st;
}
