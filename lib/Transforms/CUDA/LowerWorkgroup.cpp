//===- LowerWorkgroup.cpp - workgroup forall -> pipelined gpu.launch ------===//
//
// Turns one workgroup of attn-tile-attention (the scf.forall over (batch,
// head, query block) mapped to #gpu.block, with its key loop of
// attn.online_attention tiles, the optional padded tail block and the
// normalisation) into a gpu.launch:
//
//   grid  (heads, batch, query blocks): the query-block index varies slowest,
//         so with the longest-first order attn-tile-attention gives causal
//         masks, the longest blocks of every head start first;
//   block one thread per lane of the tile codegen (TensorCoreTile.cpp for
//         f16/bf16, SIMTTile.cpp for f32);
//   body  prologue (query fragments, initial state), then a loop over the
//         key blocks the tiled IR visits (loop blocks, then the tail block),
//         software pipelined: the key and value tiles of block i + 1 are
//         copied global -> shared with cp.async (nvgpu.device_async_copy,
//         zero-filling rows past the keys' end or hidden by kv_bound /
//         kv_lens) into the other half of a double buffer while block i is
//         computed; then the epilogue.
//
// The index computations of the tiled IR (block offsets, the key loop bounds
// that skip masked blocks, positions, kv_bound, kv_lens) are not re-derived:
// they are cloned into the kernel with the forall's induction variables
// mapped to block ids, and tensor slices traced back to the memrefs they
// read.
//
//===----------------------------------------------------------------------===//

#include "KernelCodegen.h"

#include "attn/Transforms/Transforms.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cuda;

//===----------------------------------------------------------------------===//
// Emitter
//===----------------------------------------------------------------------===//

Value Emitter::idx(int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}
Value Emitter::i32(int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
}
Value Emitter::f32(double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}
Value Emitter::add(Value x, Value y) {
  return b.createOrFold<arith::AddIOp>(loc, x, y);
}
Value Emitter::sub(Value x, Value y) {
  return b.createOrFold<arith::SubIOp>(loc, x, y);
}
Value Emitter::mul(Value x, Value y) {
  return b.createOrFold<arith::MulIOp>(loc, x, y);
}
Value Emitter::minI(Value x, Value y) {
  return b.createOrFold<arith::MinSIOp>(loc, x, y);
}
Value Emitter::maxI(Value x, Value y) {
  return b.createOrFold<arith::MaxSIOp>(loc, x, y);
}
Value Emitter::cmpI(arith::CmpIPredicate pred, Value x, Value y) {
  return b.createOrFold<arith::CmpIOp>(loc, pred, x, y);
}
Value Emitter::andI(Value x, Value y) {
  return b.createOrFold<arith::AndIOp>(loc, x, y);
}
Value Emitter::select(Value cond, Value x, Value y) {
  return b.createOrFold<arith::SelectOp>(loc, cond, x, y);
}
Value Emitter::apply(AffineMap map, unsigned result, ValueRange operands) {
  return b.createOrFold<affine::AffineApplyOp>(loc, map.getSubMap({result}),
                                               operands);
}
Value Emitter::toI32(Value v) {
  return b.createOrFold<arith::IndexCastOp>(loc, b.getI32Type(), v);
}
Value Emitter::exp2(Value x) {
  return LLVM::CallIntrinsicOp::create(
             b, loc, b.getF32Type(),
             b.getStringAttr("llvm.nvvm.ex2.approx.ftz.f32"), ValueRange{x})
      .getResult(0);
}
Value Emitter::log2(Value x) {
  return LLVM::CallIntrinsicOp::create(
             b, loc, b.getF32Type(),
             b.getStringAttr("llvm.nvvm.lg2.approx.ftz.f"), ValueRange{x})
      .getResult(0);
}
Value Emitter::shuffleXor(Value x, int32_t mask) {
  return gpu::ShuffleOp::create(b, loc, x, mask, /*width=*/32,
                                gpu::ShuffleMode::XOR)
      .getShuffleResult();
}

TileCodegen::~TileCodegen() = default;

//===----------------------------------------------------------------------===//
// Masks
//===----------------------------------------------------------------------===//

/// Keys at or past this absolute position when nothing limits them.
static constexpr int64_t kNoKeyLimit = int64_t(1) << 40;

Visibility cuda::getVisibility(Emitter &e, const MaskInfo &mask, Value rowFirst,
                               Value rowLast, const BlockPositions &pos,
                               int64_t blockK) {
  using P = arith::CmpIPredicate;
  Value keyLast = e.add(pos.keyPos, e.idx(blockK - 1));
  Value shift = e.idx(mask.shift);
  // d = key - row - shift over the block is [minD, maxD].
  Value minD = e.sub(e.sub(pos.keyPos, rowLast), shift);
  Value maxD = e.sub(e.sub(keyLast, rowFirst), shift);
  Value any = arith::ConstantIntOp::create(e.b, e.loc, e.b.getI1Type(), 1);
  Value all = any;
  if (mask.hasKeyLimit) {
    any = e.cmpI(P::slt, pos.keyPos, pos.keyLimit);
    all = e.cmpI(P::sle, e.add(pos.keyPos, e.idx(blockK)), pos.keyLimit);
  }
  auto [bandAny, bandAll] = mask.band.buildKeepsAnyAll(e.b, e.loc, minD, maxD);
  if (bandAny) {
    any = e.andI(any, bandAny);
    all = e.andI(all, bandAll);
  }
  return {any, all};
}

ElementMask cuda::getElementMask(Emitter &e, const MaskInfo &mask,
                                 const KernelInputs &in,
                                 const BlockPositions &pos, int64_t blockK) {
  ElementMask em;
  em.relBase =
      e.toI32(e.sub(e.sub(pos.keyPos, in.queryPos), e.idx(mask.shift)));
  Value limit = e.sub(pos.keyLimit, pos.keyPos);
  limit = e.maxI(e.minI(limit, e.idx(blockK)), e.idx(0));
  em.colLimit = e.toI32(limit);
  return em;
}

void cuda::storeLogSumExp(Emitter &e, const KernelInputs &in, Value writer,
                          Value row, Value m, Value l, Value empty,
                          double expFactor) {
  if (!in.lse)
    return;
  OpBuilder &b = e.b;
  Location loc = e.loc;
  OpBuilder::InsertionGuard guard(b);
  auto lseIf = scf::IfOp::create(b, loc, writer, /*withElseRegion=*/false);
  b.setInsertionPointToStart(lseIf.thenBlock());
  Value lse = arith::MulFOp::create(
      b, loc,
      arith::AddFOp::create(
          b, loc, arith::MulFOp::create(b, loc, m, e.f32(expFactor)),
          e.log2(l)),
      e.f32(kLn2));
  lse = e.select(empty, e.f32(kNegInf), lse);
  memref::StoreOp::create(b, loc, lse, in.lse,
                          ValueRange{in.lseOffsets[0], in.lseOffsets[1],
                                     e.add(in.lseOffsets[2], row)});
}

Value cuda::keepElement(Emitter &e, const MaskInfo &mask, const ElementMask &em,
                        Value row, Value col) {
  using P = arith::CmpIPredicate;
  Value keep;
  auto both = [&](Value c) { keep = keep ? e.andI(keep, c) : c; };
  if (!mask.band.isUnbounded())
    both(mask.band.buildKeeps(e.b, e.loc, e.sub(e.add(em.relBase, col), row)));
  if (mask.hasKeyLimit)
    both(e.cmpI(P::slt, col, em.colLimit));
  if (!keep)
    keep = arith::ConstantIntOp::create(e.b, e.loc, e.b.getI1Type(), 1);
  return keep;
}

//===----------------------------------------------------------------------===//
// Materialising the tiled IR's index computations in the kernel
//===----------------------------------------------------------------------===//

namespace {

/// A tensor of the tiled IR traced back to the memref it reads: the offsets
/// of its first element and its extent of real data per dimension (the
/// tensor itself may be padded beyond).
struct TileView {
  Value memref;
  SmallVector<Value> offsets, sizes;
  bool padded = false;
};

/// Clones pure index computations of the workgroup body into the kernel.
/// Copy it to materialise values inside a nested region: the copy's new
/// values do not leak to the parent.
class Materializer {
public:
  Materializer(OpBuilder &b, Location loc, Operation *scope)
      : b(&b), loc(loc), scope(scope) {}

  IRMapping mapping;

  FailureOr<Value> scalar(Value v);
  FailureOr<TileView> view(Value tensor);
  Emitter emitter() { return Emitter{*b, loc}; }

private:
  LogicalResult fail(Operation *at, const Twine &msg) {
    at->emitOpError("cannot be lowered to a CUDA kernel: ") << msg;
    return failure();
  }
  OpBuilder *b;
  Location loc;
  Operation *scope;
};

bool isScalarType(Type t) { return isa<IndexType, IntegerType>(t); }

constexpr const char *kNoIndexEquivalent =
    "a tile position, size or bound is computed in a way the kernel cannot "
    "reproduce (only pure integer arithmetic on the workgroup ids, sizes and "
    "loaded kv_lens)";
constexpr const char *kNotAMemRefSlice =
    "a tile operand is not a unit-stride slice (possibly high-padded) of a "
    "memref read with bufferization.to_tensor outside the workgroup";
constexpr const char *kNotAnOutput =
    " is not the normalised output or log-sum-exp of a tiled attn.attention "
    "(standalone attn.online_attention ops are not lowered)";
constexpr const char *kNotTiledStructure =
    "the workgroup is not in the form attn-tile-attention makes (one key loop "
    "of agreeing attn.online_attention tiles with a constant step, an "
    "optional conditional tail block)";

FailureOr<Value> Materializer::scalar(Value v) {
  if (Value m = mapping.lookupOrNull(v))
    return m;
  Emitter e = emitter();
  Operation *def = v.getDefiningOp();
  if (!def) {
    (void)fail(scope, kNoIndexEquivalent);
    return failure();
  }
  if (auto cst = dyn_cast<arith::ConstantOp>(def)) {
    Value c = b->clone(*def)->getResult(0);
    mapping.map(v, c);
    return c;
  }
  if (auto dim = dyn_cast<tensor::DimOp>(def)) {
    std::optional<int64_t> index = dim.getConstantIndex();
    auto type = cast<RankedTensorType>(dim.getSource().getType());
    if (!index) {
      (void)fail(def, kNoIndexEquivalent);
      return failure();
    }
    Value r;
    if (!type.isDynamicDim(*index)) {
      r = e.idx(type.getDimSize(*index));
    } else {
      FailureOr<TileView> source = view(dim.getSource());
      if (failed(source))
        return failure();
      r = source->sizes[*index];
    }
    mapping.map(v, r);
    return r;
  }
  if (auto extract = dyn_cast<tensor::ExtractOp>(def)) {
    FailureOr<TileView> source = view(extract.getTensor());
    if (failed(source))
      return failure();
    SmallVector<Value> indices;
    for (auto [i, index] : llvm::enumerate(extract.getIndices())) {
      FailureOr<Value> x = scalar(index);
      if (failed(x))
        return failure();
      indices.push_back(e.add(source->offsets[i], *x));
    }
    Value r = memref::LoadOp::create(*b, loc, source->memref, indices);
    mapping.map(v, r);
    return r;
  }
  bool pureScalar = def->getNumRegions() == 0 && isMemoryEffectFree(def) &&
                    llvm::all_of(def->getOperandTypes(), isScalarType) &&
                    llvm::all_of(def->getResultTypes(), isScalarType);
  bool memrefDim = isa<memref::DimOp>(def);
  if (!pureScalar && !memrefDim) {
    (void)fail(def, kNoIndexEquivalent);
    return failure();
  }
  for (Value operand : def->getOperands()) {
    if (memrefDim && isa<MemRefType>(operand.getType()))
      continue;
    if (failed(scalar(operand)))
      return failure();
  }
  Operation *clone = b->clone(*def, mapping);
  for (auto [from, to] : llvm::zip(def->getResults(), clone->getResults()))
    mapping.map(from, to);
  return mapping.lookup(v);
}

FailureOr<TileView> Materializer::view(Value tensor) {
  Emitter e = emitter();
  Operation *def = tensor.getDefiningOp();
  if (auto toTensor = dyn_cast_or_null<bufferization::ToTensorOp>(def)) {
    Value memref = toTensor.getBuffer();
    auto type = dyn_cast<MemRefType>(memref.getType());
    if (!type || scope->isAncestor(memref.getParentBlock()->getParentOp())) {
      (void)fail(def, kNotAMemRefSlice);
      return failure();
    }
    TileView v;
    v.memref = memref;
    for (int64_t i = 0, r = type.getRank(); i < r; ++i) {
      v.offsets.push_back(e.idx(0));
      v.sizes.push_back(type.isDynamicDim(i)
                            ? memref::DimOp::create(*b, loc, memref, i)
                            : e.idx(type.getDimSize(i)));
    }
    return v;
  }
  if (auto slice = dyn_cast_or_null<tensor::ExtractSliceOp>(def)) {
    FailureOr<TileView> source = view(slice.getSource());
    if (failed(source))
      return failure();
    if (slice.getSourceType().getRank() != slice.getResultType().getRank() ||
        !llvm::all_of(slice.getMixedStrides(), [](OpFoldResult s) {
          return isConstantIntValue(s, 1);
        })) {
      (void)fail(def, kNotAMemRefSlice);
      return failure();
    }
    TileView v;
    v.memref = source->memref;
    v.padded = source->padded;
    for (auto [i, off, size] :
         llvm::enumerate(slice.getMixedOffsets(), slice.getMixedSizes())) {
      auto get = [&](OpFoldResult ofr) -> FailureOr<Value> {
        if (auto cst = getConstantIntValue(ofr))
          return e.idx(*cst);
        return scalar(cast<Value>(ofr));
      };
      FailureOr<Value> o = get(off), s = get(size);
      if (failed(o) || failed(s))
        return failure();
      v.offsets.push_back(e.add(source->offsets[i], *o));
      Value extent = *s;
      if (source->padded)
        extent = e.minI(extent, e.maxI(e.sub(source->sizes[i], *o), e.idx(0)));
      v.sizes.push_back(extent);
    }
    return v;
  }
  if (auto pad = dyn_cast_or_null<tensor::PadOp>(def)) {
    if (!llvm::all_of(pad.getMixedLowPad(), [](OpFoldResult p) {
          return isConstantIntValue(p, 0);
        })) {
      (void)fail(def, kNotAMemRefSlice);
      return failure();
    }
    FailureOr<TileView> source = view(pad.getSource());
    if (failed(source))
      return failure();
    source->padded = true;
    return source;
  }
  (void)fail(def ? def : scope, kNotAMemRefSlice);
  return failure();
}

//===----------------------------------------------------------------------===//
// The workgroup structure
//===----------------------------------------------------------------------===//

/// Where key blocks come from: every iteration of a key loop, or one tile
/// (possibly under an scf.if, the padded tail block).
struct BlockSource {
  OnlineAttentionOp tile;
  scf::ForOp loop;
  Value condition;
};

struct Workgroup {
  scf::ForallOp forall;
  SmallVector<BlockSource> sources;
  tensor::ParallelInsertSliceOp outputInsert, lseInsert;
  Value outputMemRef, lseMemRef;
  SmallVector<Operation *> materializations;
  TileShape shape;
  MaskInfo mask;
  double scale = 1;
};

/// Online-attention tiles directly in `block`; failure when one is nested
/// deeper.
FailureOr<SmallVector<OnlineAttentionOp>> tilesIn(Block &block) {
  SmallVector<OnlineAttentionOp> tiles;
  for (Operation &op : block) {
    if (auto tile = dyn_cast<OnlineAttentionOp>(op)) {
      tiles.push_back(tile);
      continue;
    }
    WalkResult nested =
        op.walk([](OnlineAttentionOp) { return WalkResult::interrupt(); });
    if (nested.wasInterrupted())
      return failure();
  }
  return tiles;
}

FailureOr<Workgroup> analyzeWorkgroup(scf::ForallOp forall) {
  Workgroup wg;
  wg.forall = forall;
  auto error = [&](Operation *at) {
    return at->emitOpError("cannot be lowered to a CUDA kernel: ");
  };
  if (forall.getRank() != 3)
    return error(forall) << kNotTiledStructure;

  // Key blocks, in order.
  for (Operation &op : forall.getBody()->without_terminator()) {
    if (auto tile = dyn_cast<OnlineAttentionOp>(op)) {
      wg.sources.push_back({tile, {}, {}});
    } else if (auto loop = dyn_cast<scf::ForOp>(op)) {
      FailureOr<SmallVector<OnlineAttentionOp>> tiles =
          tilesIn(*loop.getBody());
      if (failed(tiles) || tiles->size() > 1)
        return error(loop) << kNotTiledStructure;
      if (!tiles->empty())
        wg.sources.push_back({tiles->front(), loop, {}});
    } else if (auto ifOp = dyn_cast<scf::IfOp>(op)) {
      FailureOr<SmallVector<OnlineAttentionOp>> tiles =
          tilesIn(*ifOp.thenBlock());
      if (failed(tiles) || tiles->size() > 1 ||
          (ifOp.elseBlock() && !tilesIn(*ifOp.elseBlock())->empty()))
        return error(ifOp) << kNotTiledStructure;
      if (!tiles->empty())
        wg.sources.push_back({tiles->front(), {}, ifOp.getCondition()});
    } else {
      WalkResult nested =
          op.walk([](OnlineAttentionOp) { return WalkResult::interrupt(); });
      if (nested.wasInterrupted())
        return error(&op) << kNotTiledStructure;
    }
  }
  if (wg.sources.empty())
    return error(forall) << kNotTiledStructure;

  // Tile shapes, element types and masks: the same for every block.
  OnlineAttentionOp first = wg.sources.front().tile;
  AttentionOpDetail detail(first);
  AttentionDims d = detail.dims();
  auto qType = cast<ShapedType>(first.getQuery().getType());
  auto kType = cast<ShapedType>(first.getKey().getType());
  auto vType = cast<ShapedType>(first.getValue().getType());
  if (!qType.hasStaticShape() || !kType.hasStaticShape() ||
      !vType.hasStaticShape() || d.batch != 1 || d.qHeads != 1 ||
      d.kvHeads != 1)
    return error(first) << "needs static tiles with batch and head tile "
                           "sizes 1, got a query tile of type "
                        << qType;
  if (first.getMask() || first.getBias())
    return error(first) << "tensor masks and biases are not supported by the "
                           "CUDA kernels";
  for (BlockSource &s : wg.sources) {
    OnlineAttentionOp t = s.tile;
    if (t.getQuery().getType() != first.getQuery().getType() ||
        t.getKey().getType() != first.getKey().getType() ||
        t.getValue().getType() != first.getValue().getType() ||
        t.getScaleAttr() != first.getScaleAttr() ||
        t.getMaskKindAttr() != first.getMaskKindAttr() ||
        (t.getKvLens() == nullptr) != (first.getKvLens() == nullptr))
      return error(t) << kNotTiledStructure;
    if (s.loop) {
      std::optional<int64_t> step = getConstantIntValue(s.loop.getStep());
      if (!step || *step <= 0)
        return error(s.loop) << kNotTiledStructure;
    }
  }
  wg.shape.elementType = qType.getElementType();
  wg.shape.blockQ = d.qLen;
  wg.shape.blockK = d.kvLen;
  wg.shape.headDim = d.headDim;
  wg.shape.vHeadDim = d.vHeadDim;
  wg.scale = detail.scale();
  wg.mask.band = KeyBand::get(detail.maskKind());
  if (detail.maskKind())
    wg.mask.shift = detail.maskKind().getDiagonalShift(d.qLen, d.kvLen);
  wg.mask.hasKeyLimit = llvm::any_of(wg.sources, [](BlockSource &s) {
    return s.tile.getKvBound() || s.tile.getKvLens();
  });

  // Results: the normalised output (rank 4) and the log-sum-exp (rank 3),
  // each written to a memref.
  for (auto [idx, result] : llvm::enumerate(forall.getResults())) {
    auto materialize =
        result.hasOneUse()
            ? dyn_cast<bufferization::MaterializeInDestinationOp>(
                  *result.getUsers().begin())
            : nullptr;
    if (!materialize || !isa<MemRefType>(materialize.getDest().getType()))
      return error(forall) << "workgroup result #" << idx
                           << " must be written to a memref by "
                              "bufferization.materialize_in_destination";
    wg.materializations.push_back(materialize);
    BlockArgument out = forall.getRegionIterArgs()[idx];
    tensor::ParallelInsertSliceOp insert;
    for (Operation &op : forall.getTerminator().getYieldingOps())
      if (auto ins = dyn_cast<tensor::ParallelInsertSliceOp>(op);
          ins && ins.getDest() == out)
        insert = ins;
    Value source = insert ? insert.getSource() : Value();
    if (source)
      if (auto slice = source.getDefiningOp<tensor::ExtractSliceOp>())
        source = slice.getSource();
    if (!source || !source.getDefiningOp<linalg::GenericOp>())
      return error(forall) << "workgroup result #" << idx << kNotAnOutput;
    int64_t rank = insert.getDestType().getRank();
    if (rank == 4 && !wg.outputInsert) {
      wg.outputInsert = insert;
      wg.outputMemRef = materialize.getDest();
      wg.shape.outputElementType = insert.getDestType().getElementType();
    } else if (rank == 3 && !wg.lseInsert) {
      wg.lseInsert = insert;
      wg.lseMemRef = materialize.getDest();
    } else {
      return error(forall) << "workgroup result #" << idx << kNotAnOutput;
    }
  }
  if (!wg.outputInsert)
    return error(forall) << kNotTiledStructure;
  wg.shape.hasLse = static_cast<bool>(wg.lseInsert);
  return wg;
}

//===----------------------------------------------------------------------===//
// The kernel
//===----------------------------------------------------------------------===//

/// One key block: where its key and value rows come from and its positions.
struct BlockDesc {
  Value keyMemRef, valueMemRef;
  SmallVector<Value> keyOffsets, valueOffsets;
  Value keyRows, valueRows; // rows of real data (>= 1)
  BlockPositions pos;
};

/// Builds the body of the gpu.launch of one workgroup: prologue, pipelined
/// key loop, epilogue (not to be confused with the runtime's KernelBuilder,
/// which builds the whole kernel module from a spec).
class LaunchBodyBuilder {
public:
  LaunchBodyBuilder(OpBuilder &b, Location loc, Workgroup &wg, TileCodegen &cg,
                Materializer &top)
      : b(b), loc(loc), wg(wg), cg(cg), top(top) {}

  LogicalResult build(gpu::LaunchOp launch, int64_t keyBytes,
                      int64_t valueBytes);

private:
  FailureOr<BlockDesc> describeTile(Materializer &m, OnlineAttentionOp tile);
  FailureOr<BlockDesc> describeBlock(Value i);
  FailureOr<SmallVector<Value>> issueCopies(Value i, Value stage,
                                            Value enabled);
  void copyTile(Value smem, Value stage, Value memref, ArrayRef<Value> offsets,
                Value rows, Value copyRows, int64_t dim,
                SmallVectorImpl<Value> &tokens);

  OpBuilder &b;
  Location loc;
  Workgroup &wg;
  TileCodegen &cg;
  Materializer &top;
  Value threadId;
  SharedTiles smem;
  // Per source: its first block's index and, for loops, lower bound / step.
  SmallVector<Value> firstBlock, lowerBound, step;
};

FailureOr<BlockDesc> LaunchBodyBuilder::describeTile(Materializer &m,
                                                 OnlineAttentionOp tile) {
  Emitter e = m.emitter();
  FailureOr<TileView> k = m.view(tile.getKey());
  FailureOr<TileView> v = m.view(tile.getValue());
  if (failed(k) || failed(v))
    return failure();
  BlockDesc d;
  d.keyMemRef = k->memref;
  d.valueMemRef = v->memref;
  d.keyOffsets = k->offsets;
  d.valueOffsets = v->offsets;
  d.keyRows = k->sizes[kSeqDim];
  d.valueRows = v->sizes[kSeqDim];
  d.pos.keyPos = e.idx(0);
  if (Value off = tile.getKeyOffset()) {
    FailureOr<Value> x = m.scalar(off);
    if (failed(x))
      return failure();
    d.pos.keyPos = *x;
  }
  d.pos.keyLimit = e.idx(kNoKeyLimit);
  if (Value bound = tile.getKvBound()) {
    FailureOr<Value> x = m.scalar(bound);
    if (failed(x))
      return failure();
    d.pos.keyLimit = e.minI(d.pos.keyLimit, *x);
  }
  if (Value lens = tile.getKvLens()) {
    FailureOr<TileView> l = m.view(lens);
    if (failed(l))
      return failure();
    Value len = memref::LoadOp::create(b, loc, l->memref, l->offsets);
    len = arith::IndexCastOp::create(b, loc, b.getIndexType(), len);
    d.pos.keyLimit = e.minI(d.pos.keyLimit, len);
  }
  return d;
}

FailureOr<BlockDesc> LaunchBodyBuilder::describeBlock(Value i) {
  Emitter e{b, loc};
  std::optional<BlockDesc> result;
  for (auto [s, source] : llvm::enumerate(wg.sources)) {
    Materializer m = top;
    if (source.loop)
      m.mapping.map(
          source.loop.getInductionVar(),
          e.add(lowerBound[s], e.mul(e.sub(i, firstBlock[s]), step[s])));
    FailureOr<BlockDesc> d = describeTile(m, source.tile);
    if (failed(d))
      return failure();
    if (!result) {
      result = *d;
      continue;
    }
    if (d->keyMemRef != result->keyMemRef ||
        d->valueMemRef != result->valueMemRef)
      return source.tile.emitOpError("cannot be lowered to a CUDA kernel: ")
             << kNotTiledStructure;
    Value here = e.cmpI(arith::CmpIPredicate::sge, i, firstBlock[s]);
    auto pick = [&](Value x, Value y) { return e.select(here, x, y); };
    for (unsigned j = 0; j < d->keyOffsets.size(); ++j)
      result->keyOffsets[j] = pick(d->keyOffsets[j], result->keyOffsets[j]);
    for (unsigned j = 0; j < d->valueOffsets.size(); ++j)
      result->valueOffsets[j] =
          pick(d->valueOffsets[j], result->valueOffsets[j]);
    result->keyRows = pick(d->keyRows, result->keyRows);
    result->valueRows = pick(d->valueRows, result->valueRows);
    result->pos.keyPos = pick(d->pos.keyPos, result->pos.keyPos);
    result->pos.keyLimit = pick(d->pos.keyLimit, result->pos.keyLimit);
  }
  return *result;
}

/// Copies rows [0, blockK) of one key or value block into `stage` of `smem`
/// with 16-byte cp.async chunks spread over the threads; rows at or past
/// `copyRows` are zero-filled (source size 0) from a clamped, valid address.
/// The copies are unconditional (their tokens feed the group): when the
/// threads outnumber the chunks of the last round, the extra threads
/// zero-fill the padding chunk of a row, which nothing reads.
void LaunchBodyBuilder::copyTile(Value smemTile, Value stage, Value memref,
                             ArrayRef<Value> offsets, Value rows,
                             Value copyRows, int64_t dim,
                             SmallVectorImpl<Value> &tokens) {
  Emitter e{b, loc};
  Type elt = cast<MemRefType>(memref.getType()).getElementType();
  int64_t chunk = 128 / elt.getIntOrFloatBitWidth();
  int64_t perRow = dim / chunk;
  int64_t total = wg.shape.blockK * perRow;
  int64_t threads = cg.numThreads();
  Value lastRow = e.maxI(e.sub(rows, e.idx(1)), e.idx(0));
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  for (int64_t j = 0; j * threads < total; ++j) {
    Value c = e.add(threadId, e.idx(j * threads));
    Value row = b.createOrFold<arith::DivUIOp>(loc, c, e.idx(perRow));
    Value col = e.mul(b.createOrFold<arith::RemUIOp>(loc, c, e.idx(perRow)),
                      e.idx(chunk));
    Value valid = e.cmpI(arith::CmpIPredicate::slt, row, copyRows);
    if ((j + 1) * threads > total) {
      Value inRange = e.cmpI(arith::CmpIPredicate::ult, c, e.idx(total));
      Value spare = b.createOrFold<arith::RemUIOp>(loc, e.sub(c, e.idx(total)),
                                                   e.idx(wg.shape.blockK));
      row = e.select(inRange, row, spare);
      col = e.select(inRange, col, e.idx(dim));
      valid = e.andI(valid, inRange);
    }
    Value srcElements = e.select(valid, e.idx(chunk), e.idx(0));
    SmallVector<Value> src = {
        offsets[0], offsets[1], e.add(offsets[2], e.minI(row, lastRow)),
        e.add(offsets[3], e.minI(col, e.idx(dim - chunk)))};
    tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
        b, loc, tokenType, smemTile, ValueRange{stage, row, col}, memref, src,
        b.getIndexAttr(chunk), srcElements, b.getUnitAttr()));
  }
}

/// Issues the copies of block `i` into `stage`; with `enabled` false
/// (an i1, or null for true) every chunk is zero-filled instead.
FailureOr<SmallVector<Value>> LaunchBodyBuilder::issueCopies(Value i, Value stage,
                                                         Value enabled) {
  Emitter e{b, loc};
  FailureOr<BlockDesc> d = describeBlock(i);
  if (failed(d))
    return failure();
  Value visible = e.sub(d->pos.keyLimit, d->pos.keyPos);
  auto clampRows = [&](Value rows) {
    Value r = e.maxI(e.minI(rows, visible), e.idx(0));
    return enabled ? e.select(enabled, r, e.idx(0)) : r;
  };
  SmallVector<Value> tokens;
  copyTile(smem.keys, stage, d->keyMemRef, d->keyOffsets, d->keyRows,
           clampRows(d->keyRows), wg.shape.headDim, tokens);
  copyTile(smem.values, stage, d->valueMemRef, d->valueOffsets, d->valueRows,
           clampRows(d->valueRows), wg.shape.vHeadDim, tokens);
  return tokens;
}

LogicalResult LaunchBodyBuilder::build(gpu::LaunchOp launch, int64_t keyBytes,
                                   int64_t valueBytes) {
  Emitter e{b, loc};
  MLIRContext *ctx = b.getContext();
  // Block ids: x = head, y = batch, z = query block.
  gpu::KernelDim3 ids = launch.getBlockIds();
  SmallVector<Value> ivs(wg.forall.getInductionVars());
  top.mapping.map(ivs[0], ids.y);
  top.mapping.map(ivs[1], ids.x);
  top.mapping.map(ivs[2], ids.z);
  // Dynamic workgroup counts (the causal reversal reads them) are the grid.
  gpu::KernelDim3 grid = launch.getGridSize();
  Value gridDims[3] = {grid.y, grid.x, grid.z};
  for (auto [i, ub] : llvm::enumerate(wg.forall.getMixedUpperBound()))
    if (auto v = dyn_cast<Value>(ub))
      top.mapping.map(v, gridDims[i]);

  KernelInputs in;
  threadId = launch.getThreadIds().x;
  in.threadId = threadId;
  in.warpId = b.createOrFold<arith::DivUIOp>(loc, threadId, e.idx(32));
  in.laneId = b.createOrFold<arith::RemUIOp>(loc, threadId, e.idx(32));

  // Shared memory: [keys: 2 stages][values: 2 stages][codegen scratch].
  auto workgroup =
      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Type elt = wg.shape.elementType;
  int64_t pad = cg.rowPadding();
  auto base = gpu::DynamicSharedMemoryOp::create(
      b, loc,
      MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), nullptr,
                      workgroup));
  auto tileType = [&](int64_t dim) {
    return MemRefType::get({2, wg.shape.blockK, dim + pad}, elt, nullptr,
                           workgroup);
  };
  smem.keys = memref::ViewOp::create(b, loc, tileType(wg.shape.headDim), base,
                                     e.idx(0), ValueRange{});
  smem.values = memref::ViewOp::create(b, loc, tileType(wg.shape.vHeadDim),
                                       base, e.idx(keyBytes), ValueRange{});
  smem.base = base;
  smem.scratchOffset = keyBytes + valueBytes;

  // The query tile, positions and outputs.
  OnlineAttentionOp first = wg.sources.front().tile;
  FailureOr<TileView> q = top.view(first.getQuery());
  if (failed(q))
    return failure();
  in.query = q->memref;
  in.queryOffsets = q->offsets;
  in.queryRows = q->sizes[kSeqDim];
  in.queryPos = e.idx(0);
  if (Value off = first.getQueryOffset()) {
    FailureOr<Value> x = top.scalar(off);
    if (failed(x))
      return failure();
    in.queryPos = *x;
  }
  auto outputOf = [&](tensor::ParallelInsertSliceOp insert,
                      SmallVector<Value> &offsets,
                      Value *rows) -> LogicalResult {
    for (auto [i, ofr] : llvm::enumerate(insert.getMixedOffsets())) {
      FailureOr<Value> x =
          isa<Attribute>(ofr)
              ? FailureOr<Value>(e.idx(*getConstantIntValue(ofr)))
              : top.scalar(cast<Value>(ofr));
      if (failed(x))
        return failure();
      offsets.push_back(*x);
    }
    if (rows) {
      OpFoldResult size = insert.getMixedSizes()[kSeqDim];
      FailureOr<Value> x =
          isa<Attribute>(size)
              ? FailureOr<Value>(e.idx(*getConstantIntValue(size)))
              : top.scalar(cast<Value>(size));
      if (failed(x))
        return failure();
      *rows = *x;
    }
    return success();
  };
  in.output = wg.outputMemRef;
  if (failed(outputOf(wg.outputInsert, in.outputOffsets, &in.outputRows)))
    return failure();
  if (wg.lseInsert) {
    in.lse = wg.lseMemRef;
    if (failed(outputOf(wg.lseInsert, in.lseOffsets, nullptr)))
      return failure();
  }

  // Block counts per source.
  Value total = e.idx(0);
  for (BlockSource &s : wg.sources) {
    firstBlock.push_back(total);
    Value count;
    if (s.loop) {
      FailureOr<Value> lb = top.scalar(s.loop.getLowerBound());
      FailureOr<Value> ub = top.scalar(s.loop.getUpperBound());
      if (failed(lb) || failed(ub))
        return failure();
      Value st = e.idx(*getConstantIntValue(s.loop.getStep()));
      lowerBound.push_back(*lb);
      step.push_back(st);
      count = b.createOrFold<arith::CeilDivSIOp>(
          loc, e.maxI(e.sub(*ub, *lb), e.idx(0)), st);
    } else {
      lowerBound.push_back(Value());
      step.push_back(Value());
      count = e.idx(1);
      if (s.condition) {
        FailureOr<Value> cond = top.scalar(s.condition);
        if (failed(cond))
          return failure();
        count = e.select(*cond, e.idx(1), e.idx(0));
      }
    }
    total = e.add(total, count);
  }

  SmallVector<Value> init = cg.prologue(e, in, smem);
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(ctx);

  // Prologue copy of block 0 into stage 0, in its own group.
  {
    auto ifOp = scf::IfOp::create(
        b, loc, e.cmpI(arith::CmpIPredicate::sgt, total, e.idx(0)),
        /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    FailureOr<SmallVector<Value>> tokens =
        issueCopies(e.idx(0), e.idx(0), Value());
    if (failed(tokens))
      return failure();
    nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, tokenType, *tokens);
  }

  auto loop = scf::ForOp::create(b, loc, e.idx(0), total, e.idx(1), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value i = loop.getInductionVar();
    Value stage = b.createOrFold<arith::RemUIOp>(loc, i, e.idx(2));
    // Prefetch block i + 1 into the other stage (after the last block, a
    // zero-filled copy of the last block: the group stays uniform).
    Value next = e.add(i, e.idx(1));
    Value hasNext = e.cmpI(arith::CmpIPredicate::slt, next, total);
    FailureOr<SmallVector<Value>> tokens = issueCopies(
        e.minI(next, e.sub(total, e.idx(1))), e.sub(e.idx(1), stage), hasNext);
    if (failed(tokens))
      return failure();
    // Wait for block i (all groups but the one just committed), then make
    // every thread's copies visible.
    Value token =
        nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, tokenType, *tokens);
    nvgpu::DeviceAsyncWaitOp::create(b, loc, token, b.getI32IntegerAttr(1));
    gpu::BarrierOp::create(b, loc);
    FailureOr<BlockDesc> d = describeBlock(i);
    if (failed(d))
      return failure();
    SmallVector<Value> state =
        cg.block(e, in, smem, stage, d->pos, loop.getRegionIterArgs());
    // Nobody may overwrite this stage (the next iteration's prefetch) before
    // every warp is done with it.
    gpu::BarrierOp::create(b, loc);
    scf::YieldOp::create(b, loc, state);
  }
  // The last prefetch (zero-fill) is still in flight: no thread may leave
  // with copies outstanding.
  NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
  cg.epilogue(e, in, loop.getResults());
  return success();
}

} // namespace

FailureOr<gpu::LaunchOp> mlir::attn::lowerWorkgroupToCUDAKernel(
    RewriterBase &rewriter, scf::ForallOp forall, const CUDATarget &target) {
  FailureOr<Workgroup> wg = analyzeWorkgroup(forall);
  if (failed(wg))
    return failure();
  Location loc = forall.getLoc();
  Type elt = wg->shape.elementType;
  // The attn verifier admits f16, bf16 and f32 only; both chips have cp.async
  // and mma.sync.m16n8k16.
  assert((elt.isF16() || elt.isBF16() || elt.isF32()) && "verified type");
  assert(target.hasAsyncCopy && target.hasMmaM16N8K16);
  std::string why;
  FailureOr<std::unique_ptr<TileCodegen>> cg =
      elt.isF32()
          ? createSIMTCodegen(wg->shape, wg->mask, wg->scale, why)
          : createTensorCoreCodegen(wg->shape, wg->mask, wg->scale, why);
  if (failed(cg))
    return forall.emitOpError("cannot be lowered to a CUDA kernel: ") << why;

  int64_t eltBytes = elt.getIntOrFloatBitWidth() / 8;
  int64_t pad = (*cg)->rowPadding();
  auto stageBytes = [&](int64_t dim) {
    return 2 * wg->shape.blockK * (dim + pad) * eltBytes;
  };
  int64_t keyBytes = stageBytes(wg->shape.headDim);
  int64_t valueBytes = stageBytes(wg->shape.vHeadDim);
  int64_t sharedBytes = keyBytes + valueBytes + (*cg)->scratchBytes();
  if (sharedBytes > target.maxSharedBytesPerBlock)
    return forall.emitOpError("cannot be lowered to a CUDA kernel: it needs ")
           << sharedBytes << " bytes of shared memory, more than the "
           << target.maxSharedBytesPerBlock << " a block may use on "
           << target.chip;
  int64_t threads = (*cg)->numThreads();
  // The codegens cap the query tile at 512 rows: at most 1024 threads.
  assert(threads <= target.maxThreadsPerBlock && "too many threads");

  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(forall);
  Emitter e{rewriter, loc};
  SmallVector<Value> counts = getValueOrCreateConstantIndexOp(
      rewriter, loc, forall.getMixedUpperBound());
  Value smemSize = arith::ConstantIntOp::create(
      rewriter, loc, rewriter.getI32Type(), sharedBytes);
  auto launch =
      gpu::LaunchOp::create(rewriter, loc, counts[1], counts[0], counts[2],
                            e.idx(threads), e.idx(1), e.idx(1), smemSize);
  Block &body = launch.getBody().front();
  rewriter.setInsertionPointToStart(&body);
  Materializer top(rewriter, loc, forall);
  LaunchBodyBuilder builder(rewriter, loc, *wg, **cg, top);
  if (failed(builder.build(launch, keyBytes, valueBytes))) {
    rewriter.eraseOp(launch);
    return failure();
  }
  gpu::TerminatorOp::create(rewriter, loc);

  for (Operation *m : wg->materializations)
    rewriter.eraseOp(m);
  rewriter.eraseOp(forall);
  return launch;
}
