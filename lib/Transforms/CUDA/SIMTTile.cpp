//===- SIMTTile.cpp - f32 key blocks with FMA -----------------------------===//
//
// The per-block code of the f32 kernel (no tensor cores: TF32 would lose the
// f32 accuracy docs/design.md section 7 asks for). 2 * block_q threads;
// thread t belongs to row group t / 8 and owns query rows 4 (t / 8) + i
// (i < 4), score columns t % 8 + 8 j (j < block_k / 8) and output columns
// 4 (t % 8) + 32 y + z (z < 4). A row group is 8 consecutive lanes of one
// warp, so row reductions are three butterflies (xor 1, 2, 4), and a warp
// owns 16 consecutive rows.
//
//   prologue  the query tile, staged once into shared memory with cp.async
//             (zero-filled past the real rows).
//   block     skipped by a warp whose rows the mask hides from the block;
//             S = Q K^T from shared memory with 128-bit loads along d and
//             scalar FMA (4 x block_k / 8 accumulators); masks, online softmax
//             as in the tensor-core kernel; P is written to a per-warp
//             region of shared memory (bar.warp.sync: only the warp reads
//             its rows), then acc += P V with 128-bit loads of P and V and
//             vector<4xf32> FMA.
//   epilogue  out = acc / l with 128-bit stores, lse by lane 0 of a group.
//
//===----------------------------------------------------------------------===//

#include "KernelCodegen.h"

#include "attn/Transforms/CUDA/FragmentLayout.h"
#include "attn/Transforms/LinalgBuilders.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cuda;

namespace {

constexpr int64_t kRows = kSimtRowsPerThread;

class SIMTCodegen final : public TileCodegen {
public:
  SIMTCodegen(const TileShape &shape, const MaskInfo &mask, double scale)
      : shape(shape), mask(mask), hook{scale} {}

  int64_t numThreads() const override {
    return shape.blockQ / kRows * kSimtGroupLanes;
  }
  int64_t queryStride() const { return shape.headDim + 4; }
  int64_t probStride() const { return shape.blockK + 4; }
  int64_t queryBytes() const { return shape.blockQ * queryStride() * 4; }
  int64_t scratchBytes() const override {
    return queryBytes() + shape.blockQ * probStride() * 4;
  }
  int64_t rowPadding() const override { return 4; }

  SmallVector<Value> prologue(Emitter &e, const KernelInputs &in,
                              const SharedTiles &smem) override;
  SmallVector<Value> block(Emitter &e, const KernelInputs &in,
                           const SharedTiles &smem, Value stage,
                           const BlockPositions &pos,
                           ValueRange state) override;
  void epilogue(Emitter &e, const KernelInputs &in, ValueRange state) override;

private:
  int64_t cols() const { return shape.blockK / kSimtGroupLanes; }
  int64_t chunks() const { return shape.vHeadDim / (4 * kSimtGroupLanes); }
  int64_t numAcc() const { return kRows * chunks(); }
  double expFactor() const { return hook.expFactor(); }
  SmallVector<Value> compute(Emitter &e, const KernelInputs &in,
                             const SharedTiles &smem, Value stage,
                             const BlockPositions &pos, Value allVisible,
                             ValueRange state);
  Value rowOf(Emitter &e, const KernelInputs &in, int64_t i) {
    return e.apply(getSimtRowMap(e.b.getContext(), i), 0, in.threadId);
  }

  TileShape shape;
  MaskInfo mask;
  ScoreHook hook;
  Value queryTile, probTile; // memref<blockQ x stride x f32, workgroup>
};

VectorType vec(int64_t n, Type elt) { return VectorType::get({n}, elt); }

SmallVector<Value> SIMTCodegen::prologue(Emitter &e, const KernelInputs &in,
                                         const SharedTiles &smem) {
  OpBuilder &b = e.b;
  Location loc = e.loc;
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  auto workgroup =
      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  auto tileType = [&](int64_t stride) {
    return MemRefType::get({shape.blockQ, stride}, f32, nullptr, workgroup);
  };
  queryTile = memref::ViewOp::create(b, loc, tileType(queryStride()), smem.base,
                                     e.idx(smem.scratchOffset), ValueRange{});
  probTile = memref::ViewOp::create(b, loc, tileType(probStride()), smem.base,
                                    e.idx(smem.scratchOffset + queryBytes()),
                                    ValueRange{});

  // Stage the query tile: 16-byte chunks, rows past the real ones zeroed.
  int64_t perRow = shape.headDim / 4;
  int64_t total = shape.blockQ * perRow;
  int64_t threads = numThreads();
  Value lastRow = e.maxI(e.sub(in.queryRows, e.idx(1)), e.idx(0));
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(ctx);
  SmallVector<Value> tokens;
  for (int64_t j = 0; j * threads < total; ++j) {
    Value c = e.add(in.threadId, e.idx(j * threads));
    Value row = b.createOrFold<arith::DivUIOp>(loc, c, e.idx(perRow));
    Value col =
        e.mul(b.createOrFold<arith::RemUIOp>(loc, c, e.idx(perRow)), e.idx(4));
    Value valid = e.cmpI(arith::CmpIPredicate::slt, row, in.queryRows);
    if ((j + 1) * threads > total) {
      // Spare threads zero-fill a row's padding chunk, which nothing reads.
      Value inRange = e.cmpI(arith::CmpIPredicate::ult, c, e.idx(total));
      Value spare = b.createOrFold<arith::RemUIOp>(loc, e.sub(c, e.idx(total)),
                                                   e.idx(shape.blockQ));
      row = e.select(inRange, row, spare);
      col = e.select(inRange, col, e.idx(shape.headDim));
      valid = e.andI(valid, inRange);
    }
    SmallVector<Value> src = {
        in.queryOffsets[0], in.queryOffsets[1],
        e.add(in.queryOffsets[2], e.minI(row, lastRow)),
        e.add(in.queryOffsets[3], e.minI(col, e.idx(shape.headDim - 4)))};
    tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
        b, loc, tokenType, queryTile, ValueRange{row, col}, in.query, src,
        b.getIndexAttr(4), e.select(valid, e.idx(4), e.idx(0)),
        b.getUnitAttr()));
  }
  // Its own group: the key loop's first wait (all groups but the newest)
  // completes it together with the first key block.
  nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, tokenType, tokens);

  SmallVector<Value> state;
  Value zero = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(vec(4, f32), b.getF32FloatAttr(0)));
  for (int64_t n = 0; n < numAcc(); ++n)
    state.push_back(zero);
  for (int64_t i = 0; i < kRows; ++i)
    state.push_back(e.f32(kNegInf));
  for (int64_t i = 0; i < kRows; ++i)
    state.push_back(e.f32(0));
  return state;
}

SmallVector<Value> SIMTCodegen::block(Emitter &e, const KernelInputs &in,
                                      const SharedTiles &smem, Value stage,
                                      const BlockPositions &pos,
                                      ValueRange state) {
  // A warp owns rows 16 w .. 16 w + 15.
  Value rowFirst = e.add(in.queryPos, e.mul(in.warpId, e.idx(16)));
  Value rowLast = e.add(rowFirst, e.idx(15));
  Visibility vis = getVisibility(e, mask, rowFirst, rowLast, pos, shape.blockK);
  auto ifOp = scf::IfOp::create(e.b, e.loc, TypeRange(state), vis.any,
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToStart(ifOp.thenBlock());
  SmallVector<Value> next = compute(e, in, smem, stage, pos, vis.all, state);
  scf::YieldOp::create(e.b, e.loc, next);
  e.b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(e.b, e.loc, state);
  return SmallVector<Value>(ifOp.getResults());
}

SmallVector<Value> SIMTCodegen::compute(Emitter &e, const KernelInputs &in,
                                        const SharedTiles &smem, Value stage,
                                        const BlockPositions &pos,
                                        Value allVisible, ValueRange state) {
  OpBuilder &b = e.b;
  Location loc = e.loc;
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  Value tid = in.threadId;
  int64_t BK = shape.blockK, D = shape.headDim;
  Value rows[kRows];
  for (int64_t i = 0; i < kRows; ++i)
    rows[i] = rowOf(e, in, i);
  SmallVector<Value> keyCols;
  for (int64_t j = 0; j < cols(); ++j)
    keyCols.push_back(e.apply(getSimtScoreColMap(ctx, j), 0, tid));

  // S = Q K^T, four values of d per step.
  SmallVector<Value> zeros(kRows * cols(), e.f32(0));
  auto dLoop = scf::ForOp::create(b, loc, e.idx(0), e.idx(D), e.idx(4), zeros);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(dLoop.getBody());
    Value d = dLoop.getInductionVar();
    SmallVector<Value> s(dLoop.getRegionIterArgs());
    SmallVector<Value> q, k;
    for (int64_t i = 0; i < kRows; ++i)
      q.push_back(vector::LoadOp::create(
          b, loc, vec(4, f32), queryTile, ValueRange{rows[i], d},
          /*nontemporal=*/false, llvm::MaybeAlign(16)));
    for (int64_t j = 0; j < cols(); ++j)
      k.push_back(vector::LoadOp::create(
          b, loc, vec(4, f32), smem.keys, ValueRange{stage, keyCols[j], d},
          /*nontemporal=*/false, llvm::MaybeAlign(16)));
    for (int64_t z = 0; z < 4; ++z) {
      SmallVector<Value> qz, kz;
      for (Value v : q)
        qz.push_back(vector::ExtractOp::create(b, loc, v, z));
      for (Value v : k)
        kz.push_back(vector::ExtractOp::create(b, loc, v, z));
      for (int64_t i = 0; i < kRows; ++i)
        for (int64_t j = 0; j < cols(); ++j)
          // llvm.intr.fma, not math.fma: the NVVM lowering would call
          // libdevice's __nv_fmaf.
          s[i * cols() + j] =
              LLVM::FMAOp::create(b, loc, qz[i], kz[j], s[i * cols() + j]);
    }
    scf::YieldOp::create(b, loc, s);
  }
  SmallVector<Value> s(dLoop.getResults());
  for (Value &x : s)
    x = hook.applyScale(e, x);

  // Per-element masks where the block is only partly visible to the warp.
  if (!mask.maskFree()) {
    auto ifOp = scf::IfOp::create(b, loc, TypeRange(ValueRange(s)), allVisible,
                                  /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(b, loc, s);
    b.setInsertionPointToStart(ifOp.elseBlock());
    ElementMask em = getElementMask(e, mask, in, pos, BK);
    SmallVector<Value> masked;
    for (int64_t i = 0; i < kRows; ++i) {
      Value row = e.toI32(rows[i]);
      for (int64_t j = 0; j < cols(); ++j) {
        masked.push_back(hook.applyMask(e, mask, em, row,
                                        e.toI32(keyCols[j]), s[i * cols() + j]));
      }
    }
    scf::YieldOp::create(b, loc, masked);
    s = SmallVector<Value>(ifOp.getResults());
  }

  // Online softmax per row.
  Value c = e.f32(expFactor());
  SmallVector<Value> acc(state.take_front(numAcc()));
  SmallVector<Value> m(state.slice(numAcc(), kRows));
  SmallVector<Value> l(state.slice(numAcc() + kRows, kRows));
  for (int64_t i = 0; i < kRows; ++i) {
    Value mx = s[i * cols()];
    for (int64_t j = 1; j < cols(); ++j)
      mx = arith::MaximumFOp::create(b, loc, mx, s[i * cols() + j]);
    for (int32_t x = 1; x < kSimtGroupLanes; x *= 2)
      mx = arith::MaximumFOp::create(b, loc, mx, e.shuffleXor(mx, x));
    Value mNew = arith::MaximumFOp::create(b, loc, m[i], mx);
    Value safeMax = builders::buildSafeMax(b, loc, mNew);
    Value alpha = e.exp2(arith::MulFOp::create(
        b, loc, arith::SubFOp::create(b, loc, m[i], safeMax), c));
    m[i] = mNew;
    Value sum;
    for (int64_t j = 0; j < cols(); ++j) {
      Value x = arith::SubFOp::create(b, loc, s[i * cols() + j], safeMax);
      Value p = e.exp2(arith::MulFOp::create(b, loc, x, c));
      memref::StoreOp::create(b, loc, p, probTile,
                              ValueRange{rows[i], keyCols[j]});
      sum = sum ? arith::AddFOp::create(b, loc, sum, p) : p;
    }
    l[i] = arith::AddFOp::create(
        b, loc, arith::MulFOp::create(b, loc, l[i], alpha), sum);
    Value alphaVec = vector::BroadcastOp::create(b, loc, vec(4, f32), alpha);
    for (int64_t y = 0; y < chunks(); ++y)
      acc[i * chunks() + y] =
          arith::MulFOp::create(b, loc, acc[i * chunks() + y], alphaVec);
  }
  // Only this warp reads its rows of P.
  NVVM::SyncWarpOp::create(b, loc, e.i32(-1));

  // acc += P V, four keys per step.
  SmallVector<Value> outCols;
  for (int64_t y = 0; y < chunks(); ++y)
    outCols.push_back(e.apply(getSimtOutputColMap(ctx, y), 0, tid));
  auto kLoop = scf::ForOp::create(b, loc, e.idx(0), e.idx(BK), e.idx(4), acc);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value k = kLoop.getInductionVar();
    SmallVector<Value> a(kLoop.getRegionIterArgs());
    SmallVector<Value> p;
    for (int64_t i = 0; i < kRows; ++i)
      p.push_back(vector::LoadOp::create(
          b, loc, vec(4, f32), probTile, ValueRange{rows[i], k},
          /*nontemporal=*/false, llvm::MaybeAlign(16)));
    for (int64_t z = 0; z < 4; ++z) {
      Value key = e.add(k, e.idx(z));
      SmallVector<Value> v;
      for (int64_t y = 0; y < chunks(); ++y)
        v.push_back(vector::LoadOp::create(b, loc, vec(4, f32), smem.values,
                                           ValueRange{stage, key, outCols[y]},
                                           /*nontemporal=*/false,
                                           llvm::MaybeAlign(16)));
      for (int64_t i = 0; i < kRows; ++i) {
        Value pz = vector::BroadcastOp::create(
            b, loc, vec(4, f32), vector::ExtractOp::create(b, loc, p[i], z));
        for (int64_t y = 0; y < chunks(); ++y)
          a[i * chunks() + y] =
              vector::FMAOp::create(b, loc, pz, v[y], a[i * chunks() + y]);
      }
    }
    scf::YieldOp::create(b, loc, a);
  }
  SmallVector<Value> next(kLoop.getResults());
  next.append(m);
  next.append(l);
  return next;
}

void SIMTCodegen::epilogue(Emitter &e, const KernelInputs &in,
                           ValueRange state) {
  OpBuilder &b = e.b;
  Location loc = e.loc;
  MLIRContext *ctx = b.getContext();
  Type outElt = shape.outputElementType;
  Value tid = in.threadId;
  Value groupLead =
      e.cmpI(arith::CmpIPredicate::eq,
             b.createOrFold<arith::RemUIOp>(loc, tid, e.idx(kSimtGroupLanes)),
             e.idx(0));
  SmallVector<Value> outCols;
  for (int64_t y = 0; y < chunks(); ++y)
    outCols.push_back(e.apply(getSimtOutputColMap(ctx, y), 0, tid));
  for (int64_t i = 0; i < kRows; ++i) {
    RowNormalizer norm =
        normalizeRow(e, state[numAcc() + kRows + i], kSimtGroupLanes);
    storeOutputRow(
        e, in, rowOf(e, in, i), chunks(), 4,
        [&](int64_t y) { return state[i * chunks() + y]; },
        [&](int64_t y) { return outCols[y]; }, outElt, norm, groupLead,
        state[numAcc() + i], expFactor());
  }
}

} // namespace

FailureOr<std::unique_ptr<TileCodegen>>
cuda::createSIMTCodegen(const TileShape &shape, const MaskInfo &mask,
                        double scale, std::string &why) {
  if (shape.blockQ % 16 || shape.blockQ > 512) {
    why = "the f32 kernel needs a query tile that is a multiple of 16 rows, "
          "at most 512; got " +
          std::to_string(shape.blockQ);
    return failure();
  }
  if (shape.blockK % 8) {
    why = "the f32 kernel needs a key tile that is a multiple of 8 keys, got " +
          std::to_string(shape.blockK);
    return failure();
  }
  if (shape.headDim % 4 || shape.vHeadDim % 32) {
    why = "the f32 kernel needs head_dim % 4 == 0 and v_head_dim % 32 == 0, "
          "got " +
          std::to_string(shape.headDim) + " and " +
          std::to_string(shape.vHeadDim);
    return failure();
  }
  return std::unique_ptr<TileCodegen>(
      std::make_unique<SIMTCodegen>(shape, mask, scale));
}
