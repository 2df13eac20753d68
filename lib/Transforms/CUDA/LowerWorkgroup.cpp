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
// read. That analysis, the emitter and the mask helpers are target-neutral
// (lib/Transforms/GPU: WorkgroupAnalysis.cpp, WorkgroupCodegen.cpp, behind
// the GPUTargetInfo of CUDATarget); this file builds the NVIDIA launch.
//
//===----------------------------------------------------------------------===//

#include "../GPU/WorkgroupAnalysis.h"
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

TileCodegen::~TileCodegen() = default;

//===----------------------------------------------------------------------===//
// The kernel
//===----------------------------------------------------------------------===//

namespace {

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
                    Materializer &top, const GPUTargetInfo &target)
      : b(b), loc(loc), wg(wg), cg(cg), top(top), target(target) {}

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
  const GPUTargetInfo &target;
  Value threadId;
  SharedTiles smem;
  // Per source: its first block's index and, for loops, lower bound / step.
  SmallVector<Value> firstBlock, lowerBound, step;
};

FailureOr<BlockDesc> LaunchBodyBuilder::describeTile(Materializer &m,
                                                 OnlineAttentionOp tile) {
  Emitter e = m.emitter();
  e.target = &target;
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
  // The tile's key limits (VisibleKeys: kv_bound, then kv_lens[b]), read
  // through the materialized views and folded into one.
  VisibleKeys visible;
  if (Value bound = tile.getKvBound()) {
    FailureOr<Value> x = m.scalar(bound);
    if (failed(x))
      return failure();
    visible.kvBound = *x;
  }
  Value len;
  if (Value lens = tile.getKvLens()) {
    FailureOr<TileView> l = m.view(lens);
    if (failed(l))
      return failure();
    len = memref::LoadOp::create(b, loc, l->memref, l->offsets);
  }
  d.pos.keyLimit = e.idx(kNoKeyLimit);
  for (Value limit : visible.keyLimits(b, loc, len))
    d.pos.keyLimit = e.minI(d.pos.keyLimit, limit);
  return d;
}

FailureOr<BlockDesc> LaunchBodyBuilder::describeBlock(Value i) {
  Emitter e{b, loc, &target};
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
  Emitter e{b, loc, &target};
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
  Emitter e{b, loc, &target};
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
  Emitter e{b, loc, &target};
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
  FailureOr<Workgroup> wg = analyzeWorkgroup(forall, "CUDA");
  if (failed(wg))
    return failure();
  Location loc = forall.getLoc();
  Type elt = wg->shape.elementType;
  // The attn verifier admits f16, bf16 and f32 only; both chips have cp.async
  // and mma.sync.m16n8k16.
  assert((elt.isF16() || elt.isBF16() || elt.isF32()) && "verified type");
  assert(target.hasAsyncCopy && target.hasMatrixMultiply);
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
  Emitter e{rewriter, loc, &target};
  SmallVector<Value> counts = getValueOrCreateConstantIndexOp(
      rewriter, loc, forall.getMixedUpperBound());
  Value smemSize = arith::ConstantIntOp::create(
      rewriter, loc, rewriter.getI32Type(), sharedBytes);
  auto launch =
      gpu::LaunchOp::create(rewriter, loc, counts[1], counts[0], counts[2],
                            e.idx(threads), e.idx(1), e.idx(1), smemSize);
  Block &body = launch.getBody().front();
  rewriter.setInsertionPointToStart(&body);
  Materializer top(rewriter, loc, forall, "CUDA");
  LaunchBodyBuilder builder(rewriter, loc, *wg, **cg, top, target);
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
