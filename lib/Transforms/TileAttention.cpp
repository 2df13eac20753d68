//===- TileAttention.cpp - workgroup and key/value tiling -----------------===//
//
// attn.attention
//   -> scf.forall (batch, head, query-block)        [workgroups]
//        pad the query tile to a static size (last block only)
//        fills + scf.for over visible key blocks    [online softmax]
//              attn.online_attention (static tile)
//            [+ one padded tail block when kv_len % tile != 0]
//        normalisation
//        tensor.parallel_insert_slice
//
// Key blocks that the compile-time mask kind, kv_bound or kv_lens hide for
// every row of the query block are never visited (FlashAttention's causal
// block skipping).
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/Passes.h"
#include "attn/Transforms/TileSelection.h"
#include "attn/Transforms/Transforms.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/Utils/Utils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_TILEATTENTIONPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

namespace {

/// Index arithmetic that folds constants.
struct IndexMath {
  OpBuilder &b;
  Location loc;
  Value c(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value v(OpFoldResult ofr) {
    return getValueOrCreateConstantIndexOp(b, loc, ofr);
  }
  Value add(Value x, Value y) { return b.createOrFold<arith::AddIOp>(loc, x, y); }
  Value sub(Value x, Value y) { return b.createOrFold<arith::SubIOp>(loc, x, y); }
  Value mul(Value x, Value y) { return b.createOrFold<arith::MulIOp>(loc, x, y); }
  Value min(Value x, Value y) {
    return b.createOrFold<arith::MinSIOp>(loc, x, y);
  }
  Value max(Value x, Value y) {
    return b.createOrFold<arith::MaxSIOp>(loc, x, y);
  }
  Value floorDiv(Value x, Value y) {
    return b.createOrFold<arith::FloorDivSIOp>(loc, x, y);
  }
  Value ceilDiv(Value x, Value y) {
    return b.createOrFold<arith::CeilDivSIOp>(loc, x, y);
  }
};

/// Clones `op` with its outs replaced by `outs` (same types).
template <typename OpTy>
OpTy cloneWithOutputs(RewriterBase &rewriter, OpTy op, ValueRange outs) {
  IRMapping mapping;
  mapping.map(op.getOutputs(), outs);
  return cast<OpTy>(rewriter.clone(*op, mapping));
}

/// Tiles a clone of `op` whose outs are `outs` to the iteration-domain tile
/// (offsets, sizes), and erases the clone.
template <typename OpTy>
FailureOr<OpTy> tileClone(RewriterBase &rewriter, OpTy op, ValueRange outs,
                          ArrayRef<OpFoldResult> offsets,
                          ArrayRef<OpFoldResult> sizes) {
  OpTy clone = cloneWithOutputs(rewriter, op, outs);
  FailureOr<TilingResult> tiled =
      cast<TilingInterface>(clone.getOperation())
          .getTiledImplementation(rewriter, offsets, sizes);
  rewriter.eraseOp(clone);
  if (failed(tiled))
    return failure();
  return cast<OpTy>(tiled->tiledOps.front());
}

/// Pads dimension `dim` of `v` at the high end to `size` with zero / false.
Value padDim(OpBuilder &b, Location loc, Value v, unsigned dim, int64_t size) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getDimSize(dim) == size)
    return v;
  SmallVector<int64_t> shape(type.getShape());
  shape[dim] = size;
  auto padType = RankedTensorType::get(shape, type.getElementType());
  Value zero =
      arith::ConstantOp::create(b, loc, b.getZeroAttr(type.getElementType()));
  return tensor::createPadHighOp(padType, v, zero, /*nofold=*/false, loc, b);
}

/// Rebuilds an attention-like op with its operands replaced.
template <typename OpTy>
OpTy rebuild(OpBuilder &b, OpTy op, Value query, Value key, Value value,
             Value mask, Value bias, ValueRange offsets, Value kvBound,
             Value qBound, ValueRange outs) {
  SmallVector<Type> types =
      llvm::map_to_vector(outs, [](Value v) { return v.getType(); });
  auto rebuilt = OpTy::create(b, op.getLoc(), types, query, key, value, mask,
                              bias, op.getKvLens(), op.getCaptures(), offsets,
                              kvBound, qBound, op.getScaleAttr(),
                              op.getMaskKindAttr(), outs);
  copyModRegions(b, op.getLoc(), op, rebuilt, OpFoldResult());
  return rebuilt;
}

/// Tiles the key/value reduction of `op` with key tile `tk`, visiting only
/// the blocks that some row of `op` can see. Replaces `op` and returns its
/// replacement values.
FailureOr<SmallVector<Value>> tileKeyLoop(RewriterBase &rewriter,
                                          OnlineAttentionOp op, int64_t tk) {
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  IndexMath m{rewriter, loc};
  AttentionOpDetail detail(op);
  AttentionDims dims = detail.dims();

  // Visible local key range [lo, hi): the keys some row of the op sees
  // (kv_lens bounds them only when the op holds one batch entry).
  Value sk = m.v(tensor::getMixedSize(rewriter, loc, op.getKey(), kSeqDim));
  VisibleKeys visible = VisibleKeys::get(rewriter, loc, detail);
  Value keyPos = visible.keyPos;
  Value lo = m.c(0), hi = sk;
  Value lastRow;
  if (!visible.band.isUnbounded())
    lastRow = visible.lastRow(
        rewriter, loc, visible.rowPos,
        m.v(tensor::getMixedSize(rewriter, loc, op.getQuery(), kSeqDim)));
  Value len = dims.batch == 1 ? visible.readKvLen(rewriter, loc, m.c(0))
                              : Value();
  visible.narrowToSomeRow(rewriter, loc, visible.rowPos, lastRow,
                          visible.keyLimits(rewriter, loc, len), lo, hi);
  Value tkV = m.c(tk);
  lo = m.mul(m.floorDiv(lo, tkV), tkV); // aligned down to the tile grid
  hi = m.max(hi, lo);                   // an empty range runs no block

  bool exact = !ShapedType::isDynamic(dims.kvLen) && dims.kvLen % tk == 0;
  // Blocks [k0, k0 + tk) fully inside [0, Sk) start before fullEnd.
  Value fullEnd = exact ? hi : m.min(hi, m.mul(m.floorDiv(sk, tkV), tkV));

  SmallVector<OpFoldResult> offsets(kNumLoops, rewriter.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes = {
      tensor::getMixedSize(rewriter, loc, op.getQuery(), kBatchDim),
      tensor::getMixedSize(rewriter, loc, op.getQuery(), kHeadsDim),
      tensor::getMixedSize(rewriter, loc, op.getQuery(), kSeqDim),
      rewriter.getIndexAttr(tk),
      tensor::getMixedSize(rewriter, loc, op.getValue(), kFeatureDim)};

  auto loop = scf::ForOp::create(rewriter, loc, lo, fullEnd, tkV,
                                 op.getOutputs());
  {
    OpBuilder::InsertionGuard g(rewriter);
    rewriter.setInsertionPointToStart(loop.getBody());
    offsets[kKeyLoop] = loop.getInductionVar();
    FailureOr<OnlineAttentionOp> tile =
        tileClone(rewriter, op, loop.getRegionIterArgs(), offsets, sizes);
    if (failed(tile))
      return op.emitOpError("cannot be tiled along keys");
    scf::YieldOp::create(rewriter, loc, tile->getResults());
  }
  SmallVector<Value> results(loop.getResults());

  if (!exact) {
    // The tail block [fullEnd, Sk) when it is visible: padded to tk, with
    // the padding hidden by kv_bound.
    Value cond = rewriter.createOrFold<arith::CmpIOp>(
        loc, arith::CmpIPredicate::slt, fullEnd, hi);
    auto ifOp = scf::IfOp::create(rewriter, loc, TypeRange(ValueRange(results)),
                                  cond, /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard g(rewriter);
      rewriter.setInsertionPointToStart(ifOp.thenBlock());
      offsets[kKeyLoop] = fullEnd;
      sizes[kKeyLoop] = m.sub(sk, fullEnd);
      FailureOr<OnlineAttentionOp> tile =
          tileClone(rewriter, op, results, offsets, sizes);
      if (failed(tile))
        return op.emitOpError("cannot be tiled along keys");
      Value bound = m.add(keyPos, sk);
      if (detail.kvBound())
        bound = m.min(bound, detail.kvBound());
      auto pad = [&](Value v) {
        return v ? padDim(rewriter, loc, v, kSeqDim + (v == tile->getMask() ||
                                                       v == tile->getBias()),
                          tk)
                 : v;
      };
      // Key and value pad their sequence dim (2); mask and bias their key
      // dim (3).
      // kv_bound is absolute: give the tile its positions if it had none.
      SmallVector<Value> positions(tile->getOffsets());
      if (positions.empty())
        positions = {m.c(0), fullEnd};
      OnlineAttentionOp padded = rebuild(
          rewriter, *tile, tile->getQuery(), pad(tile->getKey()),
          pad(tile->getValue()), pad(tile->getMask()), pad(tile->getBias()),
          positions, bound, tile->getQBound(), tile->getOutputs());
      rewriter.eraseOp(*tile);
      scf::YieldOp::create(rewriter, loc, padded.getResults());
      rewriter.setInsertionPointToStart(ifOp.elseBlock());
      scf::YieldOp::create(rewriter, loc, results);
    }
    results = SmallVector<Value>(ifOp.getResults());
  }
  rewriter.replaceOp(op, results);
  return results;
}

/// Checks the tile sizes against the op and emits an error naming the
/// problem.
LogicalResult checkTileSizes(Operation *op, const AttentionTileSizes &ts) {
  AttentionOpDetail detail(op);
  AttentionDims d = detail.dims();
  if (ShapedType::isDynamic(d.qHeads) || ShapedType::isDynamic(d.kvHeads))
    return op->emitOpError("tiling needs static q_heads and kv_heads");
  if (ShapedType::isDynamic(d.headDim) || ShapedType::isDynamic(d.vHeadDim))
    return op->emitOpError("tiling needs static head_dim and v_head_dim");
  // Empty operands leave nothing to tile (and a zero-size head or feature
  // dimension no tile to build).
  for (int64_t size : {d.batch, d.qHeads, d.kvHeads, d.qLen, d.kvLen,
                       d.headDim, d.vHeadDim})
    if (size == 0)
      return op->emitOpError("tiling needs non-empty operands (a static "
                             "size is 0)");
  if (auto tensorOp = dyn_cast<DestinationStyleOpInterface>(op);
      tensorOp && !tensorOp.hasPureTensorSemantics())
    return op->emitOpError("tiling needs tensor operands (run it before "
                           "bufferization)");
  if (d.qHeads % ts.heads != 0)
    return op->emitOpError() << "head tile size " << ts.heads
                             << " does not divide q_heads " << d.qHeads;
  int64_t g = d.groupSize();
  if (ts.heads % g != 0 && g % ts.heads != 0)
    return op->emitOpError() << "head tile size " << ts.heads
                             << " splits GQA groups of " << g << " unevenly";
  if (ShapedType::isDynamic(d.batch) ? ts.batch != 1 : d.batch % ts.batch != 0)
    return op->emitOpError() << "batch tile size " << ts.batch
                             << " does not divide the batch size";
  return success();
}

/// Shared driver: builds the forall over (batch, head, query-block) tiles
/// and calls `buildTile` to produce each tile's results, which are
/// inserted at [b0, h0, q0] into the shared outs.
template <typename OpTy>
FailureOr<scf::ForallOp> tileParallel(RewriterBase &rewriter, OpTy op,
                                      const AttentionTileSizes &ts) {
  if (failed(checkTileSizes(op, ts)))
    return failure();
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  MLIRContext *ctx = rewriter.getContext();
  IndexMath m{rewriter, loc};
  AttentionOpDetail detail(op);
  AttentionDims dims = detail.dims();
  constexpr bool isOnline = std::is_same_v<OpTy, OnlineAttentionOp>;

  Value batch = m.v(tensor::getMixedSize(rewriter, loc, op.getQuery(), kBatchDim));
  Value sq = m.v(tensor::getMixedSize(rewriter, loc, op.getQuery(), kSeqDim));
  Value tq = m.c(ts.query);
  SmallVector<OpFoldResult> counts = {
      m.ceilDiv(batch, m.c(ts.batch)),
      rewriter.getIndexAttr(dims.qHeads / ts.heads), m.ceilDiv(sq, tq)};
  for (OpFoldResult &c : counts)
    if (auto cst = getConstantIntValue(c))
      c = rewriter.getIndexAttr(*cst);
  ArrayAttr mapping = rewriter.getArrayAttr(
      {gpu::GPUBlockMappingAttr::get(ctx, gpu::MappingId::DimZ),
       gpu::GPUBlockMappingAttr::get(ctx, gpu::MappingId::DimY),
       gpu::GPUBlockMappingAttr::get(ctx, gpu::MappingId::DimX)});
  // Outs initialised by linalg.fill (the running state of a stand-alone
  // online_attention) are filled tile by tile inside the forall instead, so
  // that each workgroup only touches its own tile of the destination.
  SmallVector<Value> forallOuts(op.getOutputs());
  SmallVector<linalg::FillOp> fills(forallOuts.size());
  for (auto [i, out] : llvm::enumerate(forallOuts))
    if (auto fill = out.template getDefiningOp<linalg::FillOp>();
        fill && isOnline) {
      fills[i] = fill;
      out = fill.getDpsInitOperand(0)->get();
    }
  auto forall = scf::ForallOp::create(rewriter, loc, counts, forallOuts,
                                      mapping);
  rewriter.setInsertionPoint(forall.getTerminator());
  SmallVector<Value> ivs(forall.getInductionVars());
  SmallVector<Value> sharedOuts(forall.getRegionIterArgs());

  // Causal-like masks give later query blocks more keys: visit them first.
  KeyBand band = KeyBand::get(detail.maskKind());
  Value qBlock = ivs[2];
  if (band.upper && !band.lower)
    qBlock = m.sub(m.sub(m.v(counts[2]), m.c(1)), qBlock);
  Value b0 = m.mul(ivs[0], m.c(ts.batch));
  Value h0 = m.mul(ivs[1], m.c(ts.heads));
  Value q0 = m.mul(qBlock, tq);
  // The last query block is partial unless the tile divides q_len.
  bool padQuery = ShapedType::isDynamic(dims.qLen) || dims.qLen % ts.query;
  OpFoldResult qSize = rewriter.getIndexAttr(ts.query);
  if (padQuery)
    qSize = affine::makeComposedFoldedAffineMin(
        rewriter, loc,
        AffineMap::get(0, 2,
                       {getAffineConstantExpr(ts.query, ctx),
                        getAffineSymbolExpr(0, ctx) -
                            getAffineSymbolExpr(1, ctx)},
                       ctx),
        {sq, q0});

  SmallVector<OpFoldResult> offsets = {b0, h0, q0, rewriter.getIndexAttr(0),
                                       rewriter.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes = {
      rewriter.getIndexAttr(ts.batch), rewriter.getIndexAttr(ts.heads), qSize,
      tensor::getMixedSize(rewriter, loc, op.getKey(), kSeqDim),
      tensor::getMixedSize(rewriter, loc, op.getValue(), kFeatureDim)};
  FailureOr<OpTy> tile = tileClone(rewriter, op, sharedOuts, offsets, sizes);
  if (failed(tile))
    return op.emitOpError("cannot be tiled into workgroups");
  for (auto [i, fill] : llvm::enumerate(fills)) {
    if (!fill)
      continue;
    OpOperand &operand = tile->getOutputsMutable()[i];
    OpBuilder::InsertionGuard g(rewriter);
    rewriter.setInsertionPoint(*tile);
    operand.set(linalg::FillOp::create(rewriter, loc, fill.getInputs(),
                                       ValueRange{operand.get()})
                    .getResult(0));
  }

  // Make the query-block tile static: pad the query rows and compute into
  // fresh outs; the padded rows are dropped at the end.
  SmallVector<Value> tileOuts(tile->getOutputs());
  if (padQuery) {
    auto padQ = [&](Value v) {
      return v && !isBroadcastDim(v, kSeqDim)
                 ? padDim(rewriter, loc, v, kSeqDim, ts.query)
                 : v;
    };
    // An attention op computes into fresh outs. An online_attention's outs
    // are its running state, which the padded tile must start from: a fill
    // is repeated on the padded shape, any other state is padded (the
    // padding rows are dropped, so their values do not matter).
    SmallVector<Value> freshOuts;
    for (Value out : tileOuts) {
      auto type = cast<RankedTensorType>(out.getType());
      SmallVector<int64_t> shape(type.getShape());
      shape[kSeqDim] = ts.query;
      auto fill = out.getDefiningOp<linalg::FillOp>();
      if (isOnline && !fill) {
        freshOuts.push_back(padDim(rewriter, loc, out, kSeqDim, ts.query));
        continue;
      }
      Value empty = tensor::EmptyOp::create(rewriter, loc, shape,
                                            type.getElementType());
      freshOuts.push_back(
          isOnline ? linalg::FillOp::create(rewriter, loc, fill.getInputs(),
                                            ValueRange{empty})
                         .getResult(0)
                   : empty);
    }
    // Rows at or past q_offset + qSize are padding: q_bound says so (in
    // the coordinates of q_offset, which include a bottom-right shift).
    SmallVector<Value> positions(tile->getOffsets());
    if (positions.empty())
      positions = {m.c(0), m.c(0)};
    // (b, h, q, kv) for a tile with regions, else (q, kv).
    Value qBound = m.add(positions[positions.size() - 2], m.v(qSize));
    if (Value old = tile->getQBound())
      qBound = m.min(qBound, old);
    OpTy padded = rebuild(rewriter, *tile, padQ(tile->getQuery()),
                          tile->getKey(), tile->getValue(),
                          padQ(tile->getMask()), padQ(tile->getBias()),
                          positions, tile->getKvBound(), qBound, freshOuts);
    rewriter.eraseOp(*tile);
    tile = padded;
  }

  // Online-softmax form of the tile, then the key loop.
  SmallVector<Value> results;
  if constexpr (isOnline) {
    FailureOr<SmallVector<Value>> looped = tileKeyLoop(rewriter, *tile, ts.key);
    if (failed(looped))
      return failure();
    results = *looped;
  } else {
    FailureOr<SmallVector<Value>> converted =
        convertToOnlineAttention(rewriter, *tile);
    if (failed(converted))
      return failure();
    // The normalisation reads the online_attention's results (operand 0 of
    // the first normalisation generic is its accumulator).
    auto online = converted->front()
                      .getDefiningOp()
                      ->getOperand(0)
                      .getDefiningOp<OnlineAttentionOp>();
    if (!online || failed(tileKeyLoop(rewriter, online, ts.key)))
      return failure();
    results = *converted;
  }

  // Insert the tile results into the shared outs.
  OpBuilder::InsertionGuard g(rewriter);
  for (auto [idx, res] : llvm::enumerate(results)) {
    auto type = cast<RankedTensorType>(res.getType());
    SmallVector<OpFoldResult> resOffsets = {b0, h0, q0};
    SmallVector<OpFoldResult> resSizes = {rewriter.getIndexAttr(ts.batch),
                                          rewriter.getIndexAttr(ts.heads), qSize};
    if (type.getRank() == 4) {
      resOffsets.push_back(rewriter.getIndexAttr(0));
      resSizes.push_back(rewriter.getIndexAttr(type.getDimSize(3)));
    }
    SmallVector<OpFoldResult> strides(type.getRank(), rewriter.getIndexAttr(1));
    Value src = res;
    if (padQuery) {
      SmallVector<OpFoldResult> zeros(type.getRank(), rewriter.getIndexAttr(0));
      src = tensor::ExtractSliceOp::create(rewriter, loc, res, zeros, resSizes,
                                           strides);
    }
    rewriter.setInsertionPointToEnd(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(rewriter, loc, src, sharedOuts[idx],
                                          resOffsets, resSizes, strides);
    rewriter.setInsertionPoint(forall.getTerminator());
  }
  rewriter.replaceOp(op, forall.getResults());
  return forall;
}

} // namespace

FailureOr<scf::ForallOp>
mlir::attn::tileAttention(RewriterBase &rewriter, AttentionOp op,
                          const AttentionTileSizes &sizes) {
  return tileParallel(rewriter, op, sizes);
}

FailureOr<scf::ForallOp>
mlir::attn::tileAttention(RewriterBase &rewriter, OnlineAttentionOp op,
                          const AttentionTileSizes &sizes) {
  return tileParallel(rewriter, op, sizes);
}

namespace {
struct TileAttentionPass
    : attn::impl::TileAttentionPassBase<TileAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    FailureOr<AttentionTileSizes> sizes =
        AttentionTileSizes::fromList(tileSizes);
    if (failed(sizes)) {
      emitError(getOperation()->getLoc(),
                "attn-tile-attention: tile-sizes must be 4 positive integers "
                "(batch, heads, query, key)");
      return signalPassFailure();
    }
    if (target != "" && target != "cpu" && target != "cuda") {
      emitError(getOperation()->getLoc(),
                "attn-tile-attention: target must be 'cpu' or 'cuda', got '")
          << target << "'";
      return signalPassFailure();
    }
    bool select = tileSizes.empty() && !target.empty();
    // The CPU lowering owns which vector widths it supports (and says so);
    // selection only rounds query tiles to the lanes.
    CPUTargetInfo cpu;
    cpu.vectorWidth = cpuVectorWidth;
    cpu.amxBf16 = cpuAmx;
    // Only ops that are not already tiles (inside a forall made here).
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<AttentionOp, OnlineAttentionOp>(op) &&
          !op->getParentOfType<scf::ForallOp>())
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      if (target == "cuda" &&
          failed(rejectModRegions(op, "the CUDA lowering")))
        return signalPassFailure();
      AttentionTileSizes opSizes = *sizes;
      if (select) {
        FailureOr<AttentionProblem> problem = AttentionProblem::get(op);
        if (failed(problem)) {
          op->emitOpError("attn-tile-attention: cannot choose tile sizes "
                          "(dynamic head counts or head_dim); give "
                          "tile-sizes");
          return signalPassFailure();
        }
        opSizes = target == "cpu" ? selectCPUTileSizes(*problem, cpu)
                                  : selectCUDATileSizes(*problem);
      } else {
        // Given sizes get the runtime's check (verifyTileSizes) for the
        // target, against the op's head dims where they are known.
        FailureOr<AttentionProblem> problem = AttentionProblem::get(op);
        bool known = succeeded(problem);
        std::string error = verifyTileSizes(
            opSizes,
            target == "cpu"    ? TileTarget::CPU
            : target == "cuda" ? TileTarget::CUDA
                               : TileTarget::Generic,
            known ? problem->headDim : 1, known ? problem->vHeadDim : 1,
            cpuAmx && known &&
                problem->elementType == AttentionProblem::ElementType::BF16);
        if (!error.empty()) {
          op->emitOpError("attn-tile-attention: ") << error;
          return signalPassFailure();
        }
      }
      FailureOr<scf::ForallOp> result =
          isa<AttentionOp>(op)
              ? tileAttention(rewriter, cast<AttentionOp>(op), opSizes)
              : tileAttention(rewriter, cast<OnlineAttentionOp>(op), opSizes);
      if (failed(result))
        return signalPassFailure();
    }
  }
};
} // namespace
