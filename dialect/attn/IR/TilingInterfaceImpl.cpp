//===- TilingInterfaceImpl.cpp - TilingInterface for attention ops --------===//
//
// Iteration domain of both ops: (batch, q_head, q_pos, kv_pos, v_dim), with
// kv_pos a reduction. attn.attention can be tiled along every parallel loop
// (its kv_pos loop must stay whole); attn.online_attention carries its running
// state in its outs and can also be tiled along kv_pos (its v_dim loop must
// stay whole, since max and sum are shared by all of a row's columns).
//
// A tile keeps the mask semantics of the whole op by carrying the absolute
// positions of its first query row and first key (`offsets`); a bottom-right
// alignment is folded into the query offset so that tiles use top-left masks.
//
//===----------------------------------------------------------------------===//

#include "dialect/attn/IR/AttnOpDetail.h"
#include "dialect/attn/IR/AttnOps.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;

namespace {

/// Everything the tiled op needs, gathered from the original op.
struct TileBuilder {
  Operation *op;
  AttentionOpDetail detail;
  OpBuilder &b;
  Location loc;

  TileBuilder(Operation *op, OpBuilder &b)
      : op(op), detail(op), b(b), loc(op->getLoc()) {}

  OpFoldResult dim(Value v, int64_t d) {
    return tensor::getMixedSize(b, loc, v, d);
  }

  Value slice(Value v, ArrayRef<OpFoldResult> offsets,
              ArrayRef<OpFoldResult> sizes) {
    SmallVector<OpFoldResult> strides(offsets.size(), b.getIndexAttr(1));
    return tensor::ExtractSliceOp::create(b, loc, v, offsets, sizes, strides);
  }

  OpFoldResult apply(AffineExpr expr, ArrayRef<OpFoldResult> operands) {
    return affine::makeComposedFoldedAffineApply(
        b, loc, AffineMap::get(0, operands.size(), expr), operands);
  }
};

/// Returns the key/value head tile (offset, size) for a query-head tile
/// (h0, th), or failure when the tile splits a GQA group unevenly.
FailureOr<std::pair<OpFoldResult, OpFoldResult>>
kvHeadTile(TileBuilder &tb, OpFoldResult h0, OpFoldResult th) {
  AttentionDims d = tb.detail.dims();
  int64_t group = d.groupSize();
  if (group == 1)
    return std::make_pair(h0, th);
  std::optional<int64_t> thConst = getConstantIntValue(th);
  if (ShapedType::isDynamic(group) || !thConst)
    return failure();
  AffineExpr s0 = getAffineSymbolExpr(0, tb.b.getContext());
  OpFoldResult kvOffset = tb.apply(s0.floorDiv(group), {h0});
  if (*thConst % group == 0)
    return std::make_pair(kvOffset, OpFoldResult(tb.b.getIndexAttr(*thConst / group)));
  if (group % *thConst == 0)
    return std::make_pair(kvOffset, OpFoldResult(tb.b.getIndexAttr(1)));
  return failure();
}

/// Same mask kind with top-left alignment.
MaskKindAttrInterface topLeft(MaskKindAttrInterface kind) {
  if (!kind)
    return kind;
  MLIRContext *ctx = kind.getContext();
  return llvm::TypeSwitch<Attribute, MaskKindAttrInterface>(kind)
      .Case<CausalAttr>([&](CausalAttr) {
        return CausalAttr::get(ctx, MaskAlignment::TopLeft);
      })
      .Case<SlidingWindowAttr>([&](SlidingWindowAttr w) {
        return SlidingWindowAttr::get(ctx, w.getLeft(), w.getRight(),
                                      MaskAlignment::TopLeft);
      });
}

/// Builds the tiled op of the same kind as `tb.op`.
template <typename OpTy>
FailureOr<TilingResult> tileAttentionLikeOp(OpTy op, OpBuilder &b,
                                            ArrayRef<OpFoldResult> offsets,
                                            ArrayRef<OpFoldResult> sizes) {
  if (!op.hasPureTensorSemantics())
    return failure();
  TileBuilder tb(op, b);
  AttentionOpDetail &detail = tb.detail;
  constexpr bool isOnline = std::is_same_v<OpTy, OnlineAttentionOp>;

  // Loops that must stay whole: offset 0 and the full size, static or given
  // as tensor.dim of the operand.
  auto isWhole = [&](unsigned loop, Value v, int64_t d) {
    if (!isZeroInteger(offsets[loop]))
      return false;
    int64_t full = cast<ShapedType>(v.getType()).getDimSize(d);
    if (!ShapedType::isDynamic(full))
      return isConstantIntValue(sizes[loop], full);
    auto sizeValue = dyn_cast_if_present<Value>(sizes[loop]);
    auto dimOp = sizeValue ? sizeValue.getDefiningOp<tensor::DimOp>()
                           : tensor::DimOp();
    return dimOp && dimOp.getSource() == v &&
           getConstantIntValue(dimOp.getIndex()) == d;
  };
  if (!isOnline && !isWhole(kKeyLoop, detail.key(), kSeqDim))
    return failure();
  if (isOnline && !isWhole(kValueDimLoop, detail.value(), kFeatureDim))
    return failure();

  OpFoldResult b0 = offsets[kBatchLoop], bs = sizes[kBatchLoop];
  OpFoldResult h0 = offsets[kHeadLoop], hs = sizes[kHeadLoop];
  OpFoldResult m0 = offsets[kQueryLoop], ms = sizes[kQueryLoop];
  OpFoldResult k0 = offsets[kKeyLoop], ks = sizes[kKeyLoop];
  OpFoldResult n0 = offsets[kValueDimLoop], ns = sizes[kValueDimLoop];
  FailureOr<std::pair<OpFoldResult, OpFoldResult>> kvHeads =
      kvHeadTile(tb, h0, hs);
  if (failed(kvHeads))
    return failure();
  auto [kh0, khs] = *kvHeads;

  SmallVector<Operation *> slices;
  auto slice = [&](Value v, ArrayRef<OpFoldResult> o,
                   ArrayRef<OpFoldResult> s) -> Value {
    if (!v)
      return v;
    Value result = tb.slice(v, o, s);
    slices.push_back(result.getDefiningOp());
    return result;
  };
  OpFoldResult zero = b.getIndexAttr(0);
  Value query = slice(detail.query(), {b0, h0, m0, zero},
                      {bs, hs, ms, tb.dim(detail.query(), kFeatureDim)});
  Value key = slice(detail.key(), {b0, kh0, k0, zero},
                    {bs, khs, ks, tb.dim(detail.key(), kFeatureDim)});
  Value value = slice(detail.value(), {b0, kh0, k0, n0}, {bs, khs, ks, ns});

  auto sliceMaskLike = [&](Value v) -> Value {
    if (!v)
      return v;
    OpFoldResult one = b.getIndexAttr(1);
    bool bcastB = isBroadcastDim(v, kBatchDim);
    bool bcastH = isBroadcastDim(v, kHeadsDim);
    bool bcastQ = isBroadcastDim(v, kSeqDim);
    return slice(v, {bcastB ? zero : b0, bcastH ? zero : h0, bcastQ ? zero : m0, k0},
                 {bcastB ? one : bs, bcastH ? one : hs, bcastQ ? one : ms, ks});
  };
  Value mask = sliceMaskLike(detail.mask());
  Value bias = sliceMaskLike(detail.bias());
  Value kvLens = slice(detail.kvLens(), {b0}, {bs});

  // Positions: needed whenever something depends on absolute positions.
  MaskKindAttrInterface maskKind = detail.maskKind();
  // Bottom-right: row i sits at diagonal i + shift of the whole op; the
  // shift goes into q_offset (and q_bound) and the tile is top-left.
  bool bottomRight =
      maskKind && maskKind.getBandAlignment() == MaskAlignment::BottomRight;
  SmallVector<Value> newOffsets;
  OpFoldResult shift;
  // score_mod / mask_mod see absolute batch and head indices too: their
  // tiles carry all four positions.
  bool regions = detail.hasModRegions();
  if (maskKind || detail.kvLens() || detail.kvBound() || detail.qBound() ||
      regions) {
    AffineExpr s0, s1;
    bindSymbols(b.getContext(), s0, s1);
    OpFoldResult qBase = detail.queryOffset() ? OpFoldResult(detail.queryOffset())
                                              : zero;
    OpFoldResult kBase = detail.keyOffset() ? OpFoldResult(detail.keyOffset())
                                            : zero;
    OpFoldResult qOff = tb.apply(s0 + s1, {qBase, m0});
    if (bottomRight) {
      shift = getDiagonalShift(b, tb.loc, detail);
      qOff = tb.apply(s0 + s1, {qOff, shift});
      maskKind = topLeft(maskKind);
    }
    OpFoldResult kOff = tb.apply(s0 + s1, {kBase, k0});
    newOffsets = {getValueOrCreateConstantIndexOp(b, tb.loc, qOff),
                  getValueOrCreateConstantIndexOp(b, tb.loc, kOff)};
    if (regions) {
      auto absolute = [&](Value base, OpFoldResult start) {
        return getValueOrCreateConstantIndexOp(
            b, tb.loc,
            tb.apply(s0 + s1, {base ? OpFoldResult(base) : zero, start}));
      };
      newOffsets.insert(newOffsets.begin(),
                        {absolute(detail.batchOffset(), b0),
                         absolute(detail.headOffset(), h0)});
    }
  }

  SmallVector<Value> outs;
  auto outputs = op.getOutputs();
  if constexpr (isOnline) {
    outs.push_back(slice(outputs[0], {b0, h0, m0, zero},
                         {bs, hs, ms, tb.dim(outputs[0], kFeatureDim)}));
    outs.push_back(slice(outputs[1], {b0, h0, m0}, {bs, hs, ms}));
    outs.push_back(slice(outputs[2], {b0, h0, m0}, {bs, hs, ms}));
  } else {
    outs.push_back(slice(outputs[0], {b0, h0, m0, n0}, {bs, hs, ms, ns}));
    if (outputs.size() == 2)
      outs.push_back(slice(outputs[1], {b0, h0, m0}, {bs, hs, ms}));
  }

  SmallVector<Type> resultTypes = llvm::map_to_vector(
      outs, [](Value v) { return v.getType(); });
  // q_bound is in the coordinates of q_offset, which absorbed the
  // bottom-right shift: shift it the same way.
  Value qBound = detail.qBound();
  if (qBound && bottomRight) {
    AffineExpr s0, s1;
    bindSymbols(b.getContext(), s0, s1);
    qBound = getValueOrCreateConstantIndexOp(
        b, tb.loc, tb.apply(s0 + s1, {qBound, shift}));
  }
  auto tiled = OpTy::create(b, tb.loc, resultTypes, query, key, value, mask,
                            bias, kvLens, detail.captures(), newOffsets,
                            detail.kvBound(), qBound,
                            op.getScaleAttr(), maskKind, outs);
  if (regions)
    copyModRegions(b, tb.loc, op, tiled, bottomRight ? shift : OpFoldResult());
  // Keep the scale of the whole op: the tile's head_dim is the same, but be
  // explicit so that a later change of the default cannot drift.
  if (!op.getScaleAttr())
    tiled.setScaleAttr(b.getF32FloatAttr(detail.scale()));
  return TilingResult{{tiled.getOperation()},
                      SmallVector<Value>(tiled->getResults()), slices};
}

template <typename OpTy>
LogicalResult resultTilePosition(OpTy op, unsigned resultNumber,
                                 ArrayRef<OpFoldResult> offsets,
                                 ArrayRef<OpFoldResult> sizes,
                                 SmallVector<OpFoldResult> &resultOffsets,
                                 SmallVector<OpFoldResult> &resultSizes) {
  resultOffsets = {offsets[kBatchLoop], offsets[kHeadLoop],
                   offsets[kQueryLoop]};
  resultSizes = {sizes[kBatchLoop], sizes[kHeadLoop], sizes[kQueryLoop]};
  if (resultNumber == 0) {
    resultOffsets.push_back(offsets[kValueDimLoop]);
    resultSizes.push_back(sizes[kValueDimLoop]);
  }
  return success();
}

SmallVector<Range> iterationDomain(Operation *op, OpBuilder &b) {
  AttentionOpDetail detail(op);
  Location loc = op->getLoc();
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  auto dim = [&](Value v, int64_t d) {
    return Range{zero, tensor::getMixedSize(b, loc, v, d), one};
  };
  return {dim(detail.query(), kBatchDim), dim(detail.query(), kHeadsDim),
          dim(detail.query(), kSeqDim), dim(detail.key(), kSeqDim),
          dim(detail.value(), kFeatureDim)};
}

SmallVector<utils::IteratorType> iteratorTypes() {
  SmallVector<utils::IteratorType> types(kNumLoops,
                                         utils::IteratorType::parallel);
  types[kKeyLoop] = utils::IteratorType::reduction;
  return types;
}

/// Iteration-domain tile that produces the given tile of result
/// `resultNumber`: the missing loops are taken whole.
template <typename OpTy>
FailureOr<TilingResult> resultTileValue(OpTy op, OpBuilder &b,
                                        unsigned resultNumber,
                                        ArrayRef<OpFoldResult> offsets,
                                        ArrayRef<OpFoldResult> sizes) {
  SmallVector<Range> domain = iterationDomain(op, b);
  SmallVector<OpFoldResult> iterOffsets, iterSizes;
  for (Range r : domain) {
    iterOffsets.push_back(r.offset);
    iterSizes.push_back(r.size);
  }
  for (unsigned i = 0; i < 3; ++i) {
    iterOffsets[i] = offsets[i];
    iterSizes[i] = sizes[i];
  }
  if (resultNumber == 0 && std::is_same_v<OpTy, AttentionOp>) {
    iterOffsets[kValueDimLoop] = offsets[3];
    iterSizes[kValueDimLoop] = sizes[3];
  }
  return tileAttentionLikeOp(op, b, iterOffsets, iterSizes);
}

} // namespace

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

SmallVector<utils::IteratorType> AttentionOp::getLoopIteratorTypes() {
  return iteratorTypes();
}
SmallVector<Range> AttentionOp::getIterationDomain(OpBuilder &b) {
  return iterationDomain(*this, b);
}
FailureOr<TilingResult>
AttentionOp::getTiledImplementation(OpBuilder &b,
                                    ArrayRef<OpFoldResult> offsets,
                                    ArrayRef<OpFoldResult> sizes) {
  return tileAttentionLikeOp(*this, b, offsets, sizes);
}
LogicalResult AttentionOp::getResultTilePosition(
    OpBuilder &, unsigned resultNumber, ArrayRef<OpFoldResult> offsets,
    ArrayRef<OpFoldResult> sizes, SmallVector<OpFoldResult> &resultOffsets,
    SmallVector<OpFoldResult> &resultSizes) {
  return resultTilePosition(*this, resultNumber, offsets, sizes, resultOffsets,
                            resultSizes);
}
FailureOr<TilingResult>
AttentionOp::generateResultTileValue(OpBuilder &b, unsigned resultNumber,
                                     ArrayRef<OpFoldResult> offsets,
                                     ArrayRef<OpFoldResult> sizes) {
  return resultTileValue(*this, b, resultNumber, offsets, sizes);
}

//===----------------------------------------------------------------------===//
// OnlineAttentionOp
//===----------------------------------------------------------------------===//

SmallVector<utils::IteratorType> OnlineAttentionOp::getLoopIteratorTypes() {
  return iteratorTypes();
}
SmallVector<Range> OnlineAttentionOp::getIterationDomain(OpBuilder &b) {
  return iterationDomain(*this, b);
}
FailureOr<TilingResult>
OnlineAttentionOp::getTiledImplementation(OpBuilder &b,
                                          ArrayRef<OpFoldResult> offsets,
                                          ArrayRef<OpFoldResult> sizes) {
  return tileAttentionLikeOp(*this, b, offsets, sizes);
}
LogicalResult OnlineAttentionOp::getResultTilePosition(
    OpBuilder &, unsigned resultNumber, ArrayRef<OpFoldResult> offsets,
    ArrayRef<OpFoldResult> sizes, SmallVector<OpFoldResult> &resultOffsets,
    SmallVector<OpFoldResult> &resultSizes) {
  return resultTilePosition(*this, resultNumber, offsets, sizes, resultOffsets,
                            resultSizes);
}
FailureOr<TilingResult>
OnlineAttentionOp::generateResultTileValue(OpBuilder &b, unsigned resultNumber,
                                           ArrayRef<OpFoldResult> offsets,
                                           ArrayRef<OpFoldResult> sizes) {
  return resultTileValue(*this, b, resultNumber, offsets, sizes);
}
