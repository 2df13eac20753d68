//===- WorkgroupAnalysis.cpp - the tiled workgroup, read back -------------===//

#include "WorkgroupAnalysis.h"

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
using namespace mlir::attn::gpu_lowering;
//===----------------------------------------------------------------------===//
// Materialising the tiled IR's index computations in the kernel
//===----------------------------------------------------------------------===//




static bool isScalarType(Type t) { return isa<IndexType, IntegerType>(t); }

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

FailureOr<Value> gpu_lowering::Materializer::scalar(Value v) {
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

FailureOr<TileView> gpu_lowering::Materializer::view(Value tensor) {
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



/// Online-attention tiles directly in `block`; failure when one is nested
/// deeper.
static FailureOr<SmallVector<OnlineAttentionOp>> tilesIn(Block &block) {
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

FailureOr<Workgroup> gpu_lowering::analyzeWorkgroup(scf::ForallOp forall,
                                                   StringRef kernelKind) {
  Workgroup wg;
  wg.forall = forall;
  auto error = [&](Operation *at) {
    return at->emitOpError("cannot be lowered to a ") << kernelKind
                                                       << " kernel: ";
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
