//===- TensorCoreTile.cpp - f16/bf16 key blocks on tensor cores -----------===//
//
// The per-block code of the f16/bf16 kernel, after FlashAttention-2 (Dao
// 2023, section 3.3): each warp owns 16 query rows of the block_q-row tile.
//
//   prologue  the warp's query rows as mma A fragments, loaded once from
//             global memory into registers (head_dim / 16 x vector<4x2xT>);
//             acc = 0 (v_head_dim / 8 x vector<2x2xf32>), m = -inf, l = 0
//             (two rows per thread: groupID and groupID + 8).
//   block     skipped by the warp when the mask hides the whole block from
//             its rows;
//             S = Q K^T: mma.sync m16n8k16, B fragments from the staged key
//             tile by ldmatrix.x4 (two k-steps per load);
//             per-element masks only when the block straddles the band or
//             the key limit;
//             m' = max(m, rowmax S) with the row max reduced over the four
//             lanes of a row (shfl.bfly 1, 2); p = exp2((s - m') c),
//             alpha = exp2((m - m') c) with c = scale * log2(e);
//             l = alpha l + rowsum_thread(p) (the cross-lane sum is deferred
//             to the epilogue); acc = alpha acc + P V, where P's A fragments
//             are the S accumulators converted to T in registers (the C
//             layout of two n-tiles is the A layout of one k-step) and V's
//             B fragments come from ldmatrix.x4.trans.
//   epilogue  l reduced over the row's lanes; out = acc / l (0 when l = 0),
//             lse = (m c + log2 l) ln 2 (-inf when l = 0).
//
//===----------------------------------------------------------------------===//

#include "KernelCodegen.h"

#include "attn/Transforms/CUDA/FragmentLayout.h"
#include "attn/Transforms/LinalgBuilders.h"

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


class TensorCoreCodegen final : public TileCodegen {
public:
  TensorCoreCodegen(const TileShape &shape, const MaskInfo &mask, double scale)
      : shape(shape), mask(mask), hook{scale} {}

  int64_t numThreads() const override { return 32 * (shape.blockQ / 16); }
  int64_t scratchBytes() const override { return 0; }
  int64_t rowPadding() const override { return 8; }

  SmallVector<Value> prologue(Emitter &e, const KernelInputs &in,
                              const SharedTiles &smem) override;
  SmallVector<Value> block(Emitter &e, const KernelInputs &in,
                           const SharedTiles &smem, Value stage,
                           const BlockPositions &pos,
                           ValueRange state) override;
  void epilogue(Emitter &e, const KernelInputs &in, ValueRange state) override;

private:
  int64_t numAcc() const { return shape.vHeadDim / 8; }
  /// Scores are pre-multiplied by the scale when it is not positive, so
  /// that the running max can be taken on them; exp2 then uses log2(e).
  double expFactor() const { return hook.expFactor(); }

  Value mma(Emitter &e, Value a, Value b, Value c);
  Value ldmatrix(Emitter &e, Value tile, Value stage, Value row, Value col,
                 int64_t numTiles, bool transpose);
  SmallVector<Value> compute(Emitter &e, const KernelInputs &in,
                             const SharedTiles &smem, Value stage,
                             const BlockPositions &pos, Value allVisible,
                             ValueRange state);

  TileShape shape;
  MaskInfo mask;
  ScoreHook hook;
  /// The warp's query rows as A fragments, one per k-step of head_dim.
  SmallVector<Value> queryFragments;
};

VectorType vec(ArrayRef<int64_t> shape, Type elt) {
  return VectorType::get(shape, elt);
}

Value TensorCoreCodegen::mma(Emitter &e, Value a, Value b, Value c) {
  OpBuilder &bld = e.b;
  if (shape.elementType.isF16())
    return nvgpu::MmaSyncOp::create(bld, e.loc, a, b, c,
                                    ArrayRef<int64_t>{16, 8, 16});
  // MLIR 22's nvgpu.mma.sync cannot type bf16 operands: build nvvm.mma.sync
  // on the 32-bit registers directly (each holds two bf16).
  Type i32 = bld.getI32Type(), f32 = bld.getF32Type();
  auto regs = [&](Value v, int64_t n) {
    SmallVector<Value> out;
    for (int64_t i = 0; i < n; ++i) {
      Value pair = vector::ExtractOp::create(bld, e.loc, v, i);
      out.push_back(LLVM::BitcastOp::create(bld, e.loc, i32, pair));
    }
    return out;
  };
  SmallVector<Value> accs;
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t k = 0; k < 2; ++k)
      accs.push_back(
          vector::ExtractOp::create(bld, e.loc, c, ArrayRef<int64_t>{r, k}));
  auto resultType =
      LLVM::LLVMStructType::getLiteral(bld.getContext(), {f32, f32, f32, f32});
  auto op = NVVM::MmaOp::create(
      bld, e.loc, resultType, regs(a, 4), regs(b, 2), accs,
      ArrayRef<int64_t>{16, 8, 16}, std::nullopt, std::nullopt,
      std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value> elems;
  for (int64_t i = 0; i < 4; ++i)
    elems.push_back(LLVM::ExtractValueOp::create(bld, e.loc, op.getRes(), i));
  return vector::FromElementsOp::create(bld, e.loc, vec({2, 2}, f32), elems);
}

Value TensorCoreCodegen::ldmatrix(Emitter &e, Value tile, Value stage,
                                  Value row, Value col, int64_t numTiles,
                                  bool transpose) {
  return nvgpu::LdMatrixOp::create(
      e.b, e.loc, vec({numTiles, 2}, shape.elementType), tile,
      ValueRange{stage, row, col}, transpose, static_cast<uint32_t>(numTiles));
}

/// Rows [offset, offset + 2) of a vector<4x2xT> as a B fragment (row
/// extracts and inserts: the LLVM lowering has no 2-D strided slices).
Value half(Emitter &e, Value v, int64_t offset) {
  auto type = cast<VectorType>(v.getType());
  auto result = VectorType::get({2, 2}, type.getElementType());
  Value out = arith::ConstantOp::create(
      e.b, e.loc,
      DenseElementsAttr::get(result, e.b.getZeroAttr(type.getElementType())));
  for (int64_t r = 0; r < 2; ++r)
    out = vector::InsertOp::create(
        e.b, e.loc, vector::ExtractOp::create(e.b, e.loc, v, offset + r), out,
        r);
  return out;
}

SmallVector<Value> TensorCoreCodegen::prologue(Emitter &e,
                                               const KernelInputs &in,
                                               const SharedTiles &) {
  MLIRContext *ctx = e.b.getContext();
  Type elt = shape.elementType;
  Value rowBase = e.mul(in.warpId, e.idx(16));
  Value lastRow = e.maxI(e.sub(in.queryRows, e.idx(1)), e.idx(0));
  queryFragments.clear();
  for (int64_t ks = 0; ks < shape.headDim / 16; ++ks) {
    Value frag = arith::ConstantOp::create(
        e.b, e.loc,
        DenseElementsAttr::get(vec({4, 2}, elt), e.b.getZeroAttr(elt)));
    for (int64_t reg = 0; reg < 4; ++reg) {
      AffineMap map = getMmaAMap(ctx, reg, /*e=*/0);
      // Padding rows read the last real row; they are never stored.
      Value row = e.minI(e.add(rowBase, e.apply(map, 0, in.laneId)), lastRow);
      Value col = e.add(e.apply(map, 1, in.laneId), e.idx(16 * ks));
      SmallVector<Value> idx = {in.queryOffsets[0], in.queryOffsets[1],
                                e.add(in.queryOffsets[2], row),
                                e.add(in.queryOffsets[3], col)};
      Value pair =
          vector::LoadOp::create(e.b, e.loc, vec({2}, elt), in.query, idx,
                                 /*nontemporal=*/false, llvm::MaybeAlign(4));
      frag = vector::InsertOp::create(e.b, e.loc, pair, frag, reg);
    }
    queryFragments.push_back(frag);
  }
  SmallVector<Value> state;
  Type f32 = e.b.getF32Type();
  Value zeroAcc = arith::ConstantOp::create(
      e.b, e.loc,
      DenseElementsAttr::get(vec({2, 2}, f32), e.b.getF32FloatAttr(0)));
  for (int64_t n = 0; n < numAcc(); ++n)
    state.push_back(zeroAcc);
  state.push_back(e.f32(kNegInf)); // m, row groupID
  state.push_back(e.f32(kNegInf)); // m, row groupID + 8
  state.push_back(e.f32(0));       // l (this thread's share)
  state.push_back(e.f32(0));
  return state;
}

SmallVector<Value> TensorCoreCodegen::block(Emitter &e, const KernelInputs &in,
                                            const SharedTiles &smem,
                                            Value stage,
                                            const BlockPositions &pos,
                                            ValueRange state) {
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

SmallVector<Value> TensorCoreCodegen::compute(
    Emitter &e, const KernelInputs &in, const SharedTiles &smem, Value stage,
    const BlockPositions &pos, Value allVisible, ValueRange state) {
  OpBuilder &b = e.b;
  Location loc = e.loc;
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  Value lane = in.laneId;
  int64_t BK = shape.blockK, D = shape.headDim, Dv = shape.vHeadDim;

  // S = Q K^T, one accumulator per n-tile of 8 keys.
  AffineMap kx4 = getKeyLdmatrixX4Map(ctx), kx2 = getKeyLdmatrixX2Map(ctx);
  Value zeroAcc = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(vec({2, 2}, f32), b.getF32FloatAttr(0)));
  SmallVector<Value> scores;
  for (int64_t nt = 0; nt < BK / 8; ++nt) {
    Value s = zeroAcc;
    for (int64_t dc = 0; dc < D / 32; ++dc) {
      Value frag = ldmatrix(
          e, smem.keys, stage, e.add(e.apply(kx4, 0, lane), e.idx(8 * nt)),
          e.add(e.apply(kx4, 1, lane), e.idx(32 * dc)), 4, false);
      s = mma(e, queryFragments[2 * dc], half(e, frag, 0), s);
      s = mma(e, queryFragments[2 * dc + 1], half(e, frag, 2), s);
    }
    if (D % 32) {
      Value frag = ldmatrix(
          e, smem.keys, stage, e.add(e.apply(kx2, 0, lane), e.idx(8 * nt)),
          e.add(e.apply(kx2, 1, lane), e.idx(D - 16)), 2, false);
      s = mma(e, queryFragments.back(), frag, s);
    }
    scores.push_back(hook.applyScale(e, s));
  }

  // Per-element masks where the block is only partly visible to the warp.
  if (!mask.maskFree()) {
    auto ifOp = scf::IfOp::create(b, loc, TypeRange(ValueRange(scores)),
                                  allVisible, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(b, loc, scores);
    b.setInsertionPointToStart(ifOp.elseBlock());
    ElementMask em = getElementMask(e, mask, in, pos, BK);
    Value rowBase = e.mul(in.warpId, e.idx(16));
    SmallVector<Value> masked;
    for (int64_t nt = 0; nt < BK / 8; ++nt) {
      SmallVector<Value> elems;
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t c = 0; c < 2; ++c) {
          AffineMap map = getMmaAccumulatorMap(ctx, r, c);
          Value row = e.toI32(e.add(rowBase, e.apply(map, 0, lane)));
          Value col = e.toI32(e.add(e.apply(map, 1, lane), e.idx(8 * nt)));
          Value s = vector::ExtractOp::create(b, loc, scores[nt],
                                              ArrayRef<int64_t>{r, c});
          elems.push_back(hook.applyMask(e, mask, em, row, col, s));
        }
      masked.push_back(
          vector::FromElementsOp::create(b, loc, vec({2, 2}, f32), elems));
    }
    scf::YieldOp::create(b, loc, masked);
    scores = SmallVector<Value>(ifOp.getResults());
  }

  // Online softmax, per thread row r (groupID + 8 r).
  Value c = e.f32(expFactor());
  SmallVector<Value> acc(state.take_front(numAcc()));
  Value m[2] = {state[numAcc()], state[numAcc() + 1]};
  Value l[2] = {state[numAcc() + 2], state[numAcc() + 3]};
  SmallVector<SmallVector<Value>> s(BK / 8); // [nt] -> {r0c0, r0c1, r1c0, r1c1}
  for (int64_t nt = 0; nt < BK / 8; ++nt)
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t k = 0; k < 2; ++k)
        s[nt].push_back(vector::ExtractOp::create(b, loc, scores[nt],
                                                  ArrayRef<int64_t>{r, k}));
  Value alpha[2], safeMax[2];
  for (int64_t r = 0; r < 2; ++r) {
    Value mx = s[0][2 * r];
    for (int64_t nt = 0; nt < BK / 8; ++nt)
      for (int64_t k = 0; k < 2; ++k)
        if (nt || k)
          mx = arith::MaximumFOp::create(b, loc, mx, s[nt][2 * r + k]);
    // The four lanes of a row are lanes 4 groupID .. 4 groupID + 3.
    mx = arith::MaximumFOp::create(b, loc, mx, e.shuffleXor(mx, 1));
    mx = arith::MaximumFOp::create(b, loc, mx, e.shuffleXor(mx, 2));
    Value mNew = arith::MaximumFOp::create(b, loc, m[r], mx);
    safeMax[r] = builders::buildSafeMax(b, loc, mNew);
    alpha[r] = e.exp2(arith::MulFOp::create(
        b, loc, arith::SubFOp::create(b, loc, m[r], safeMax[r]), c));
    m[r] = mNew;
  }
  Type elt = shape.elementType;
  SmallVector<SmallVector<Value>> probs(BK / 8);
  for (int64_t r = 0; r < 2; ++r) {
    Value sum;
    for (int64_t nt = 0; nt < BK / 8; ++nt)
      for (int64_t k = 0; k < 2; ++k) {
        Value x = arith::SubFOp::create(b, loc, s[nt][2 * r + k], safeMax[r]);
        Value prob = e.exp2(arith::MulFOp::create(b, loc, x, c));
        probs[nt].push_back(prob);
        sum = sum ? arith::AddFOp::create(b, loc, sum, prob) : prob;
      }
    l[r] = arith::AddFOp::create(
        b, loc, arith::MulFOp::create(b, loc, l[r], alpha[r]), sum);
  }
  // probs[nt] holds {r0k0, r0k1, r1k0, r1k1} in that order.
  Value scaleAcc = vector::FromElementsOp::create(
      b, loc, vec({2, 2}, f32),
      ValueRange{alpha[0], alpha[0], alpha[1], alpha[1]});
  for (Value &a : acc)
    a = arith::MulFOp::create(b, loc, a, scaleAcc);

  // P as A fragments (FlashAttention-2's register re-use of S).
  SmallVector<Value> pFrags;
  for (int64_t kk = 0; kk < BK / 16; ++kk) {
    SmallVector<Value> elems;
    for (int64_t reg = 0; reg < 4; ++reg) {
      auto [ntOffset, r] = getScoreSourceOfA(reg);
      for (int64_t k = 0; k < 2; ++k)
        elems.push_back(arith::TruncFOp::create(
            b, loc, elt, probs[2 * kk + ntOffset][2 * r + k]));
    }
    pFrags.push_back(
        vector::FromElementsOp::create(b, loc, vec({4, 2}, elt), elems));
  }

  // acc += P V.
  AffineMap vx4 = getValueLdmatrixX4Map(ctx), vx2 = getValueLdmatrixX2Map(ctx);
  for (int64_t n = 0; n < Dv / 8; ++n) {
    for (int64_t kc = 0; kc < BK / 32; ++kc) {
      Value frag = ldmatrix(
          e, smem.values, stage, e.add(e.apply(vx4, 0, lane), e.idx(32 * kc)),
          e.add(e.apply(vx4, 1, lane), e.idx(8 * n)), 4, true);
      acc[n] = mma(e, pFrags[2 * kc], half(e, frag, 0), acc[n]);
      acc[n] = mma(e, pFrags[2 * kc + 1], half(e, frag, 2), acc[n]);
    }
    if (BK % 32) {
      Value frag = ldmatrix(
          e, smem.values, stage, e.add(e.apply(vx2, 0, lane), e.idx(BK - 16)),
          e.add(e.apply(vx2, 1, lane), e.idx(8 * n)), 2, true);
      acc[n] = mma(e, pFrags.back(), frag, acc[n]);
    }
  }

  SmallVector<Value> next(acc);
  next.append({m[0], m[1], l[0], l[1]});
  return next;
}

void TensorCoreCodegen::epilogue(Emitter &e, const KernelInputs &in,
                                 ValueRange state) {
  OpBuilder &b = e.b;
  Location loc = e.loc;
  MLIRContext *ctx = b.getContext();
  Type outElt = shape.outputElementType;
  Value lane = in.laneId;
  Value rowBase = e.mul(in.warpId, e.idx(16));
  Value firstLane =
      e.cmpI(arith::CmpIPredicate::eq,
             b.createOrFold<arith::RemUIOp>(loc, lane, e.idx(4)), e.idx(0));
  for (int64_t r = 0; r < 2; ++r) {
    RowNormalizer norm = normalizeRow(e, state[numAcc() + 2 + r], 4);
    AffineMap map = getMmaAccumulatorMap(ctx, r, 0);
    Value row = e.add(rowBase, e.apply(map, 0, lane));
    Value col = e.apply(map, 1, lane);
    storeOutputRow(
        e, in, row, numAcc(), 2,
        [&](int64_t n) {
          return vector::ExtractOp::create(b, loc, state[n], r).getResult();
        },
        [&](int64_t n) { return e.add(col, e.idx(8 * n)); }, outElt, norm,
        firstLane, state[numAcc() + r], expFactor());
  }
}

} // namespace

FailureOr<std::unique_ptr<TileCodegen>>
cuda::createTensorCoreCodegen(const TileShape &shape, const MaskInfo &mask,
                              double scale, std::string &why) {
  if (shape.blockQ % 16 || shape.blockQ > 512) {
    why = "the query tile must be a multiple of 16 rows (one warp per 16), "
          "at most 512; got " +
          std::to_string(shape.blockQ);
    return failure();
  }
  if (shape.blockK % 16) {
    why = "the key tile must be a multiple of 16 keys, got " +
          std::to_string(shape.blockK);
    return failure();
  }
  if (shape.headDim % 16 || shape.vHeadDim % 16) {
    why = "head_dim and v_head_dim must be multiples of 16 for tensor cores, "
          "got " +
          std::to_string(shape.headDim) + " and " +
          std::to_string(shape.vHeadDim);
    return failure();
  }
  return std::unique_ptr<TileCodegen>(
      std::make_unique<TensorCoreCodegen>(shape, mask, scale));
}
