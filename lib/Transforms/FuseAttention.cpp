//===- FuseAttention.cpp - find attention in linalg on tensors ------------===//
//
// attn-fuse-attention: replaces unfused scaled dot-product attention, as
// frameworks export it to linalg on tensors (torch-mlir's
// `linalg-on-tensors`), by one attn.attention, which the attn pipelines then
// tile and fuse (the score matrix is never materialised). Recognised, from
// the P V contraction up:
//
//   out4 = expand_shape(batch_matmul(collapse(P), collapse(V)))   [B, H, Sq, Dv]
//   P    = softmax over the last dimension of S (rows whose scores are all
//          -inf may be zeroed explicitly, as torch's SDPA decomposition
//          does: attn's semantics), either linalg.softmax or
//          decomposed: E / rowsum(E) with E = exp(S - rowmax(S)) or exp(S)
//          (the row statistics as reductions over d3 from fills of -inf / 0,
//          read back through a broadcast map, after an optional
//          expand_shape to [.., 1]; torch's max with an unused argmax result
//          is accepted)
//   S    = T, T / c or T * c for a constant c (the scale: 1/c or c; also
//          applied to Q or K instead, q * c or q / c before Q K^T)
//   T    = expand_shape(batch_matmul(collapse(Q), collapse(K^T)))   [B, H, Sq, Sk]
//   K^T  = linalg.transpose(K, [0, 1, 3, 2]), or linalg.transpose(X,
//          [0, 2, 3, 1]) of the [B, Sk, H, D] projection (BERT's export), for
//          which K = transpose(X, [0, 2, 1, 3]) is built
//
// with the head split collapses [[0, 1], [2], [3]] of rank-4 Q, K, V of one
// float element type and Hq == Hkv (or a GQA repeat, below). Between the scale and the softmax (or
// before the scale) a mask may hide scores: select(hidden, -inf, S) or
// select(keep, S, -inf) with an i1 [Sq, Sk] mask (broadcast over batch and
// heads) that is computed from index values and constants (torch's
// tril / triu / arange comparisons, or a constant tensor). The mask is
// evaluated for the static shape and becomes #attn.causal or
// #attn.sliding_window (top-left or bottom-right) when it is one; any other
// mask broadcastable to [B, H, Sq, Sk] (a function argument such as a
// padding mask, a constant that is no band) becomes the `mask` operand
// (keep = !hidden). An additive bias after the scale (S = scale * Q K^T +
// bias, the bias broadcastable likewise) becomes the `bias` operand.
// Anything else is left alone: a softmax over another dimension, a
// contraction over the wrong dimension, a scale that is not a constant,
// statistics of another tensor, a bias added before the scale. K and V
// repeated for GQA / MQA (torch's repeat_kv: expand to [B, Hkv, G, S, D],
// reshape to [B, Hkv * G, S, D]) are read unrepeated, as attn's GQA.
//
// The matchers of each piece are in FuseAttentionMatch.cpp (head splits,
// softmax, scale, GQA) and FuseAttentionMask.cpp (masks, biases); this file
// holds the pattern that puts them together and the pass.
//
//===----------------------------------------------------------------------===//

#include "FuseAttentionMatch.h"
#include "attn/Transforms/Passes.h"
#include "dialect/attn/IR/AttnDialect.h"
#include "dialect/attn/IR/AttnOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>
#include <limits>
#include <vector>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_FUSEATTENTIONPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::fusion;

namespace {

struct FuseAttentionPattern : OpRewritePattern<tensor::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;
  /// Masks whose evaluation was over budget, already reported.
  mutable llvm::SmallPtrSet<Operation *, 4> reported;
  LogicalResult matchAndRewrite(tensor::ExpandShapeOp out,
                                PatternRewriter &rewriter) const override {
    // out = P V
    linalg::BatchMatmulOp pv = expandedBatchMatmul(out.getResult());
    if (!pv)
      return failure();
    Value p = uncollapseHeads(pv.getDpsInputs()[0]);
    auto [v, vGroup] = uncollapseHeadsGQA(pv.getDpsInputs()[1]);
    if (!p || !v)
      return rewriter.notifyMatchFailure(out, "P V operands are not head "
                                              "collapses");
    auto [p0, zeroedScores] = withoutEmptyRowZeroing(p);
    Value s = softmaxInput(p0);
    if (!s)
      return rewriter.notifyMatchFailure(out, "no softmax over the last "
                                              "dimension");
    if (zeroedScores && zeroedScores != s)
      return rewriter.notifyMatchFailure(out, "rows zeroed by another "
                                              "tensor's -inf");
    // Between the scale and the softmax: masks and one additive bias (the
    // bias is added to the scaled scores); a mask may also come before the
    // scale (masking commutes with scaling).
    std::optional<MaskMatch> mask;
    Value bias;
    EvaluationBudget budget;
    for (int step = 0; step < 3 && !budget.exceededAt; ++step) {
      if (!mask)
        if (std::optional<MaskMatch> m = matchMask(s, budget)) {
          mask = m;
          s = m->scores;
          continue;
        }
      if (!bias)
        if (auto [scores, b] = unbiased(s); scores) {
          s = scores;
          // An additive 0 / -inf mask that is a band is the mask kind.
          if (std::optional<IntTensor> keep = additiveMaskKeep(b, budget);
              keep && !mask) {
            if (MaskKindAttrInterface kind = classifyBand(
                    getContext(), keep->data, keep->shape[0], keep->shape[1])) {
              mask = MaskMatch{scores, kind, Value(), false, false};
              continue;
            }
            if (hasEmptyRow(keep->data, keep->shape[0], keep->shape[1]) &&
                !zeroedScores)
              return rewriter.notifyMatchFailure(
                  out, "a constant -inf bias hides a whole row (NaN unfused)");
          }
          bias = b;
          continue;
        }
      break;
    }
    auto [t, scale] = unscaled(s);
    if (t && !mask && !budget.exceededAt)
      if (std::optional<MaskMatch> m = matchMask(t, budget)) {
        mask = m;
        t = m->scores;
      }
    if (budget.exceededAt) {
      // Said once per mask: the greedy driver may try the pattern again.
      if (reported.insert(budget.exceededAt).second)
        budget.exceededAt->emitRemark()
            << "attn-fuse-attention: this mask is too large to evaluate (more "
               "than "
            << kMaxMaskEvaluationSteps << " element steps or "
            << kMaxMaskEvaluationElements
            << " elements held); the attention is left unfused";
      return rewriter.notifyMatchFailure(out, "mask evaluation over budget");
    }
    if (!t)
      return rewriter.notifyMatchFailure(out, "the scale is not a constant");
    // attn.attention gives 0 for a row with no visible key; the export gives
    // NaN unless it zeroes such rows itself (torch's SDPA decomposition).
    if (mask && mask->emptyRow && !zeroedScores)
      return rewriter.notifyMatchFailure(out, "a constant mask hides a whole "
                                              "row (NaN unfused)");
    // T = Q K^T
    linalg::BatchMatmulOp qk = expandedBatchMatmul(t);
    if (!qk)
      return rewriter.notifyMatchFailure(out, "scores are not Q K^T");
    Value q = uncollapseHeads(qk.getDpsInputs()[0]);
    Value kt = uncollapseHeads(qk.getDpsInputs()[1]);
    // A constant scale of K^T (torch's SDPA decomposition scales both Q and
    // K^T by sqrt(scale)).
    if (kt)
      if (auto [unscaledKt, factor] = unscaled(kt); unscaledKt && unscaledKt != kt) {
        kt = unscaledKt;
        scale *= factor;
      }
    auto transpose = kt ? kt.getDefiningOp<linalg::TransposeOp>() : nullptr;
    // K^T from K [B, H, Sk, D] ([0, 1, 3, 2]) or, with the head split folded
    // in as BERT's export has it, from [B, Sk, H, D] ([0, 2, 3, 1]).
    bool fromSequenceMajor =
        transpose && transpose.getPermutation() == ArrayRef<int64_t>{0, 2, 3, 1};
    if (!q || !transpose ||
        (transpose.getPermutation() != ArrayRef<int64_t>{0, 1, 3, 2} &&
         !fromSequenceMajor))
      return rewriter.notifyMatchFailure(out, "Q K^T does not contract the "
                                              "head dimension of K");
    // A constant scale applied to the query or the key instead (or as well).
    for (Value *operand : {&q}) {
      auto [unscaledOperand, factor] = unscaled(*operand);
      if (unscaledOperand && unscaledOperand != *operand) {
        *operand = unscaledOperand;
        scale *= factor;
      }
    }
    // GQA / MQA: K and V repeated by one factor are read unrepeated.
    auto [kScaled, kGroup] = fromSequenceMajor
                                 ? std::make_pair(transpose.getInput(),
                                                  int64_t(1))
                                 : unrepeatedHeads(transpose.getInput());
    Value k = kScaled;
    if (auto [unscaledKey, factor] = unscaled(k);
        unscaledKey && unscaledKey != k) {
      k = unscaledKey;
      scale *= factor;
    }
    if (kGroup != vGroup)
      return rewriter.notifyMatchFailure(out, "K and V are repeated "
                                              "differently");
    auto qt = cast<RankedTensorType>(q.getType());
    auto kType = cast<RankedTensorType>(k.getType());
    if (fromSequenceMajor) // K in [B, H, Sk, D], built below
      kType = RankedTensorType::get({kType.getDimSize(0), kType.getDimSize(2),
                                     kType.getDimSize(1), kType.getDimSize(3)},
                                    kType.getElementType());
    auto vt = cast<RankedTensorType>(v.getType());
    auto outType = cast<RankedTensorType>(out.getResultType());
    if (!qt.hasStaticShape() || !kType.hasStaticShape() ||
        !vt.hasStaticShape() || !outType.hasStaticShape())
      return rewriter.notifyMatchFailure(out, "dynamic shapes");
    Type elt = qt.getElementType();
    // The element types attn.attention takes (f64 and others stay unfused).
    auto isAttnFloat = [](Type t) { return t.isF32() || t.isF16() || t.isBF16(); };
    if (bias && !isAttnFloat(getElementTypeOrSelf(bias.getType())))
      return rewriter.notifyMatchFailure(out, "bias element type");
    if (!isAttnFloat(elt) || kType.getElementType() != elt ||
        vt.getElementType() != elt || outType.getElementType() != elt)
      return rewriter.notifyMatchFailure(out, "mixed element types");
    // [B, H, Sq, D] x [B, H, Sk, D] x [B, H, Sk, Dv] -> [B, H, Sq, Dv].
    if (kType.getDimSize(0) != qt.getDimSize(0) ||
        kType.getDimSize(1) * kGroup != qt.getDimSize(1) ||
        vt.getShape().take_front(3) != kType.getShape().take_front(3) ||
        outType.getShape() != ArrayRef<int64_t>{qt.getDimSize(0),
                                                qt.getDimSize(1),
                                                qt.getDimSize(2),
                                                vt.getDimSize(3)})
      return rewriter.notifyMatchFailure(out, "shapes do not agree");
    // The scale is folded in double; attn.attention holds it as f32.
    if (!std::isfinite(static_cast<float>(scale)))
      return rewriter.notifyMatchFailure(out, "the folded scale overflows f32");
    Location loc = out.getLoc();
    if (fromSequenceMajor) {
      // K itself: the head-split transpose of [B, Sk, H, D] (Q and V get the
      // same one in the export).
      Value init = tensor::EmptyOp::create(rewriter, loc, kType.getShape(),
                                           kType.getElementType());
      k = linalg::TransposeOp::create(rewriter, loc, k, init,
                                      ArrayRef<int64_t>{0, 2, 1, 3})
              ->getResult(0);
    }
    // The mask operand: [1, 1, Sq, Sk] from [Sq, Sk], keep = !hidden.
    Value maskTensor;
    if (mask && mask->tensor) {
      maskTensor = mask->tensor;
      if (mask->expand2d) {
        auto mt = cast<RankedTensorType>(maskTensor.getType());
        auto type = RankedTensorType::get(
            {1, 1, mt.getDimSize(0), mt.getDimSize(1)}, mt.getElementType());
        maskTensor = tensor::ExpandShapeOp::create(
            rewriter, loc, type, maskTensor,
            SmallVector<ReassociationIndices>{{0, 1, 2}, {3}});
      }
      if (mask->invert) {
        auto mt = cast<RankedTensorType>(maskTensor.getType());
        Value empty = tensor::EmptyOp::create(rewriter, loc, mt.getShape(),
                                              mt.getElementType());
        AffineMap id = rewriter.getMultiDimIdentityMap(4);
        maskTensor =
            linalg::GenericOp::create(
                rewriter, loc, mt, ValueRange{maskTensor}, ValueRange{empty},
                ArrayRef<AffineMap>{id, id},
                SmallVector<utils::IteratorType>(4,
                                                 utils::IteratorType::parallel),
                [](OpBuilder &b, Location l, ValueRange args) {
                  Value one = arith::ConstantIntOp::create(b, l, b.getI1Type(), 1);
                  linalg::YieldOp::create(
                      b, l, arith::XOrIOp::create(b, l, args[0], one).getResult());
                })
                .getResult(0);
      }
    }
    if (bias && cast<RankedTensorType>(bias.getType()).getRank() == 2) {
      auto bt = cast<RankedTensorType>(bias.getType());
      bias = tensor::ExpandShapeOp::create(
          rewriter, loc,
          RankedTensorType::get({1, 1, bt.getDimSize(0), bt.getDimSize(1)},
                                bt.getElementType()),
          bias, SmallVector<ReassociationIndices>{{0, 1, 2}, {3}});
    }
    Value init = tensor::EmptyOp::create(rewriter, loc, outType.getShape(), elt);
    auto attention = AttentionOp::create(
        rewriter, loc, TypeRange{outType}, q, k, v, maskTensor, bias, Value(),
        /*captures=*/ValueRange{}, /*offsets=*/ValueRange{}, Value(), Value(),
        rewriter.getF32FloatAttr(static_cast<float>(scale)),
        mask ? mask->kind : nullptr, ValueRange{init});
    rewriter.replaceOp(out, attention->getResults());
    return success();
  }
};

struct FuseAttentionPass
    : attn::impl::FuseAttentionPassBase<FuseAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseAttentionPattern>(&getContext());
    // The unfused ops left without users go with it (the greedy driver
    // erases dead pure ops).
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
