//===- LinalgScoreStage.cpp - the one elementwise score stage
//--------------===//
//
// The element function of the score stage every lowering builds its body
// with (buildScoreElement: scale, bias, score_mod, keep), the inlining of
// the score_mod / mask_mod regions at a score element's absolute indices,
// and the reference / codegen=linalg score stage over the grouped layout
// (buildMaskedScores). See LinalgBuilders.h.
//
//===----------------------------------------------------------------------===//

#include "LinalgBuildersDetail.h"
#include "attn/Transforms/LinalgBuilders.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::builders;
using namespace mlir::attn::builders::detail;

Value builders::buildScoreElement(OpBuilder &b, Location loc,
                                  const ScoreElement &e) {
  Value s = e.score;
  if (e.scale)
    s = arith::MulFOp::create(b, loc, s, f32Const(b, loc, *e.scale));
  Value bias = e.bias ? e.bias(b) : Value();
  if (bias)
    s = arith::AddFOp::create(b, loc, s, toF32(b, loc, bias));
  if (e.scoreMod) {
    Value modified = e.scoreMod(b, s);
    // A -inf bias hides its key (an additive mask): score_mod does not
    // bring it back (softcap would make it -cap).
    if (bias) {
      Value negInf = f32Const(b, loc, -std::numeric_limits<double>::infinity());
      Value hidden =
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, s, negInf);
      modified = arith::SelectOp::create(b, loc, hidden, negInf, modified);
    }
    s = modified;
  }
  if (Value keep = e.keep ? e.keep(b) : Value())
    s = arith::SelectOp::create(
        b, loc, keep, s,
        f32Const(b, loc, -std::numeric_limits<double>::infinity()));
  return s;
}

Value builders::buildScoreMod(OpBuilder &b, Region &scoreMod, Value score,
                              const ModIndices &at, ValueRange captures) {
  SmallVector<Value> args = {score, at.batch, at.head, at.queryRow, at.key};
  llvm::append_range(args, captures);
  return inlineModRegion(b, scoreMod, args);
}

Value builders::buildMaskMod(OpBuilder &b, Region &maskMod,
                             const ModIndices &at, ValueRange captures) {
  SmallVector<Value> args = {at.batch, at.head, at.queryRow, at.key};
  llvm::append_range(args, captures);
  return inlineModRegion(b, maskMod, args);
}

Value builders::buildMaskedScores(OpBuilder &b, Location loc,
                                  const GroupedOperands &ops, Value scores) {
  MLIRContext *ctx = b.getContext();
  // Loops (b, k, g, m, n).
  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  auto addMaskLike = [&](Value v, bool bcastBatch, bool bcastHead,
                         bool bcastQuery) {
    int64_t bd = bcastBatch ? -1 : 0, md = bcastQuery ? -1 : 3;
    inputs.push_back(v);
    maps.push_back(bcastHead ? mapOf(ctx, 5, {bd, -1, md, 4})
                             : mapOf(ctx, 5, {bd, 1, 2, md, 4}));
  };
  int maskIdx = -1, biasIdx = -1, lensIdx = -1;
  if (ops.mask) {
    maskIdx = inputs.size();
    addMaskLike(ops.mask, ops.maskBcastBatch, ops.maskBcastHead,
                ops.maskBcastQuery);
  }
  if (ops.bias) {
    biasIdx = inputs.size();
    addMaskLike(ops.bias, ops.biasBcastBatch, ops.biasBcastHead,
                ops.biasBcastQuery);
  }
  const VisibleKeys &visible = ops.visible;
  if (visible.kvLens) {
    lensIdx = inputs.size();
    inputs.push_back(visible.kvLens);
    maps.push_back(mapOf(ctx, 5, {0}));
  }
  maps.push_back(mapOf(ctx, 5, {0, 1, 2, 3, 4}));
  bool positional = visible.hasPositionRules();

  auto generic = linalg::GenericOp::create(
      b, loc, scores.getType(), inputs, ValueRange{scores}, maps,
      SmallVector<IteratorType>(5, kPar),
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        ScoreElement e;
        e.score = args.back();
        e.scale = ops.scale;
        auto bias = [&](OpBuilder &) {
          return biasIdx >= 0 ? args[biasIdx] : Value();
        };
        // The regions' absolute indices: loops (b, k, g, m, n), query head
        // k * G + g.
        ModIndices at;
        if (ops.scoreMod || ops.maskMod) {
          auto index = [&](unsigned dim, Value offset) -> Value {
            Value i = linalg::IndexOp::create(nb, nl, dim);
            return offset ? arith::AddIOp::create(nb, nl, offset, i) : i;
          };
          at.batch = index(0, ops.batchPos);
          Value head = arith::AddIOp::create(
              nb, nl,
              arith::MulIOp::create(
                  nb, nl, linalg::IndexOp::create(nb, nl, 1),
                  arith::ConstantIndexOp::create(nb, nl, ops.group)),
              linalg::IndexOp::create(nb, nl, 2));
          at.head =
              ops.headPos
                  ? arith::AddIOp::create(nb, nl, ops.headPos, head).getResult()
                  : head;
          at.queryRow = index(3, ops.queryPos);
          at.key = index(4, ops.keyPos);
          // A tile's padding rows and padded tail keys are hidden, but a
          // region may index a capture with them: clamp to the last real
          // ones.
          auto last = [&](Value bound) {
            Value zero = arith::ConstantIndexOp::create(nb, nl, 0);
            Value one = arith::ConstantIndexOp::create(nb, nl, 1);
            return arith::MaxSIOp::create(
                nb, nl, arith::SubIOp::create(nb, nl, bound, one), zero);
          };
          if (ops.visible.qBound)
            at.queryRow = arith::MinSIOp::create(nb, nl, at.queryRow,
                                                 last(ops.visible.qBound));
          if (ops.visible.kvBound)
            at.key = arith::MinSIOp::create(nb, nl, at.key,
                                            last(ops.visible.kvBound));
        }
        auto scoreMod = [&](OpBuilder &sb, Value s) {
          return buildScoreMod(sb, *ops.scoreMod, s, at, ops.captures);
        };
        auto keep = [&](OpBuilder &) {
          Conjunction kb{nb, nl, Value()};
          if (maskIdx >= 0)
            kb.conj(args[maskIdx]);
          if (ops.maskMod)
            kb.conj(buildMaskMod(nb, *ops.maskMod, at, ops.captures));
          if (positional) {
            Value m = linalg::IndexOp::create(nb, nl, 3);
            Value n = linalg::IndexOp::create(nb, nl, 4);
            Value kpos = arith::AddIOp::create(nb, nl, visible.keyPos, n);
            Value qpos = arith::AddIOp::create(nb, nl, visible.rowPos, m);
            kb.conj(visible.buildKeep(
                nb, nl, qpos, kpos,
                visible.keyLimits(nb, nl,
                                  lensIdx >= 0 ? args[lensIdx] : Value())));
          }
          return kb.keep;
        };
        e.bias = bias;
        if (ops.scoreMod)
          e.scoreMod = scoreMod;
        e.keep = keep;
        linalg::YieldOp::create(nb, nl, buildScoreElement(nb, nl, e));
      });
  return generic.getResult(0);
}
