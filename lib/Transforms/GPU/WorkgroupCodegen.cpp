//===- WorkgroupCodegen.cpp - target-neutral GPU kernel pieces ------------===//

#include "WorkgroupCodegen.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

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
/// `intrinsic` on x when the target names one, else MathOp.
template <typename MathOp>
static Value fastOr(Emitter &e, StringRef intrinsic, Value x) {
  if (intrinsic.empty())
    return MathOp::create(e.b, e.loc, x);
  return LLVM::CallIntrinsicOp::create(e.b, e.loc, e.b.getF32Type(),
                                       e.b.getStringAttr(intrinsic),
                                       ValueRange{x})
      .getResult(0);
}
Value Emitter::exp2(Value x) {
  return fastOr<math::Exp2Op>(*this, target ? target->exp2Intrinsic : "", x);
}
Value Emitter::log2(Value x) {
  return fastOr<math::Log2Op>(*this, target ? target->log2Intrinsic : "", x);
}
Value Emitter::shuffleXor(Value x, int32_t mask) {
  int32_t width = target ? static_cast<int32_t>(target->subgroupSize) : 32;
  return gpu::ShuffleOp::create(b, loc, x, mask, width, gpu::ShuffleMode::XOR)
      .getShuffleResult();
}


//===----------------------------------------------------------------------===//
// Masks
//===----------------------------------------------------------------------===//


Visibility gpu_lowering::getVisibility(Emitter &e, const MaskInfo &mask, Value rowFirst,
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

ElementMask gpu_lowering::getElementMask(Emitter &e, const MaskInfo &mask,
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

void gpu_lowering::storeLogSumExp(Emitter &e, const KernelInputs &in, Value writer,
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

Value ScoreHook::applyScale(Emitter &e, Value s) const {
  if (!preScale())
    return s;
  Attribute value = e.b.getF32FloatAttr(scale);
  if (auto vector = dyn_cast<VectorType>(s.getType()))
    value = DenseElementsAttr::get(vector, value);
  return arith::MulFOp::create(
      e.b, e.loc, s,
      arith::ConstantOp::create(e.b, e.loc, cast<TypedAttr>(value)));
}

Value ScoreHook::applyMask(Emitter &e, const MaskInfo &mask,
                           const ElementMask &em, Value row, Value col,
                           Value s) const {
  return e.select(keepElement(e, mask, em, row, col), s, e.f32(kNegInf));
}

RowNormalizer gpu_lowering::normalizeRow(Emitter &e, Value l, int64_t lanes) {
  OpBuilder &b = e.b;
  Location loc = e.loc;
  for (int32_t x = 1; x < lanes; x *= 2)
    l = arith::AddFOp::create(b, loc, l, e.shuffleXor(l, x));
  Value empty =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, l, e.f32(0));
  Value inv =
      e.select(empty, e.f32(0), arith::DivFOp::create(b, loc, e.f32(1), l));
  return {l, empty, inv};
}

void gpu_lowering::storeOutputRow(Emitter &e, const KernelInputs &in,
                                  Value row, int64_t count, int64_t width,
                                  function_ref<Value(int64_t)> acc,
                                  function_ref<Value(int64_t)> col,
                                  Type outputElementType,
                                  const RowNormalizer &norm, Value writer,
                                  Value m, double expFactor) {
  OpBuilder &b = e.b;
  Location loc = e.loc;
  Type f32 = b.getF32Type();
  auto ifOp = scf::IfOp::create(
      b, loc, e.cmpI(arith::CmpIPredicate::slt, row, in.outputRows),
      /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  Value invVec =
      vector::BroadcastOp::create(b, loc, VectorType::get({width}, f32), norm.inv);
  Value outRow = e.add(in.outputOffsets[2], row);
  int64_t outBytes = outputElementType.getIntOrFloatBitWidth() / 8;
  for (int64_t k = 0; k < count; ++k) {
    Value v = arith::MulFOp::create(b, loc, acc(k), invVec);
    if (!outputElementType.isF32())
      v = arith::TruncFOp::create(
          b, loc, VectorType::get({width}, outputElementType), v);
    vector::StoreOp::create(
        b, loc, v, in.output,
        ValueRange{in.outputOffsets[0], in.outputOffsets[1], outRow,
                   e.add(in.outputOffsets[3], col(k))},
        /*nontemporal=*/false, llvm::MaybeAlign(width * outBytes));
  }
  storeLogSumExp(e, in, writer, row, m, norm.l, norm.empty, expFactor);
}

Value gpu_lowering::keepElement(Emitter &e, const MaskInfo &mask, const ElementMask &em,
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
