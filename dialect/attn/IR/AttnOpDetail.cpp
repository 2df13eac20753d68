//===- AttnOpDetail.cpp - shape semantics of attention ops ----------------===//

#include "dialect/attn/IR/AttnOpDetail.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"
#include <cmath>

using namespace mlir;
using namespace mlir::attn;

int64_t AttentionDims::groupSize() const {
  if (ShapedType::isDynamic(qHeads) || ShapedType::isDynamic(kvHeads) ||
      kvHeads == 0)
    return ShapedType::kDynamic;
  return qHeads / kvHeads;
}

AttentionDims mlir::attn::getAttentionDims(Value query, Value key,
                                           Value value) {
  auto q = cast<ShapedType>(query.getType());
  auto k = cast<ShapedType>(key.getType());
  auto v = cast<ShapedType>(value.getType());
  return AttentionDims{q.getDimSize(kBatchDim),  q.getDimSize(kHeadsDim),
                       k.getDimSize(kHeadsDim),   q.getDimSize(kSeqDim),
                       k.getDimSize(kSeqDim),    q.getDimSize(kFeatureDim),
                       v.getDimSize(kFeatureDim)};
}

double mlir::attn::defaultScale(int64_t headDim) {
  return 1.0 / std::sqrt(static_cast<double>(headDim));
}

AttentionOpDetail::AttentionOpDetail(Operation *op) : op(op) {
  auto fill = [&](auto concrete) {
    operands = Operands{concrete.getQuery(),    concrete.getKey(),
                        concrete.getValue(),    concrete.getMask(),
                        concrete.getBias(),     concrete.getKvLens(),
                        concrete.getQueryOffset(), concrete.getKeyOffset(),
                        concrete.getKvBound(),  concrete.getQBound(),
                        concrete.getBatchOffset(), concrete.getHeadOffset(),
                        concrete.getCaptures(),
                        concrete.hasScoreMod() ? &concrete.getScoreMod()
                                               : nullptr,
                        concrete.hasMaskMod() ? &concrete.getMaskMod()
                                              : nullptr,
                        concrete.getMaskKindAttr(), concrete.getScaleAttr()};
  };
  if (auto a = dyn_cast<AttentionOp>(op))
    fill(a);
  else
    fill(cast<OnlineAttentionOp>(op));
}

double AttentionOpDetail::scale() const {
  if (operands.scale)
    return operands.scale.getValueAsDouble();
  return defaultScale(dims().headDim);
}

KeyBand KeyBand::get(MaskKindAttrInterface kind) {
  KeyBand band;
  if (!kind)
    return band;
  band.lower = kind.getBandLower();
  band.upper = kind.getBandUpper();
  band.alignment = kind.getBandAlignment();
  return band;
}

MaskKindAttrInterface KeyBand::toTopLeftMaskKind(MLIRContext *ctx) const {
  constexpr int64_t kMax = INT32_MAX;
  auto extent = [&](std::optional<int64_t> v) {
    return v ? std::clamp<int64_t>(*v, 0, kMax) : kMax;
  };
  int64_t left = extent(lower ? std::optional<int64_t>(-*lower) : std::nullopt);
  int64_t right = extent(upper);
  if (left == kMax && right == kMax)
    return {};
  if (left == kMax && right == 0)
    return CausalAttr::get(ctx, MaskAlignment::TopLeft);
  return SlidingWindowAttr::get(ctx, left, right, MaskAlignment::TopLeft);
}

/// An index / integer constant of the type (or element type) of `like`.
static Value constantLike(OpBuilder &b, Location loc, Value like, int64_t v) {
  Type type = like.getType();
  Type elt = getElementTypeOrSelf(type);
  TypedAttr attr = elt.isIndex() ? TypedAttr(b.getIndexAttr(v))
                                 : TypedAttr(b.getIntegerAttr(elt, v));
  if (auto vec = dyn_cast<VectorType>(type))
    attr = DenseElementsAttr::get(vec, attr);
  return arith::ConstantOp::create(b, loc, type, attr);
}

void KeyBand::narrowToSomeRow(OpBuilder &b, Location loc, Value firstRow,
                              Value lastRow, Value keyPos, Value &lo,
                              Value &hi) const {
  auto c = [&](int64_t v) { return constantLike(b, loc, keyPos, v); };
  auto sub = [&](Value x, Value y) {
    return b.createOrFold<arith::SubIOp>(loc, x, y);
  };
  auto add = [&](Value x, Value y) {
    return b.createOrFold<arith::AddIOp>(loc, x, y);
  };
  if (lower)
    lo = b.createOrFold<arith::MaxSIOp>(
        loc, lo, sub(add(firstRow, c(*lower)), keyPos));
  if (upper)
    hi = b.createOrFold<arith::MinSIOp>(
        loc, hi, sub(add(lastRow, c(*upper + 1)), keyPos));
}

void KeyBand::narrowToEveryRow(OpBuilder &b, Location loc, Value firstRow,
                               Value lastRow, Value keyPos, Value &lo,
                               Value &hi) const {
  // Every row keeps j iff the last row's lower and the first row's upper
  // bound admit it: the some-row range of the reversed pair.
  narrowToSomeRow(b, loc, lastRow, firstRow, keyPos, lo, hi);
}

Value KeyBand::buildKeeps(OpBuilder &b, Location loc, Value rel) const {
  Value keep;
  auto conj = [&](Value x) {
    keep = keep ? b.createOrFold<arith::AndIOp>(loc, keep, x) : x;
  };
  if (lower)
    conj(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, rel,
                               constantLike(b, loc, rel, *lower)));
  if (upper)
    conj(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, rel,
                               constantLike(b, loc, rel, *upper)));
  return keep;
}

std::pair<Value, Value> KeyBand::buildKeepsAnyAll(OpBuilder &b, Location loc,
                                                  Value minRel,
                                                  Value maxRel) const {
  // Some rel in [minRel, maxRel] is in [lower, upper] iff the intervals
  // overlap; all are iff [minRel, maxRel] lies inside.
  Value any, all;
  auto conj = [&](Value &acc, Value x) {
    acc = acc ? b.createOrFold<arith::AndIOp>(loc, acc, x) : x;
  };
  auto cmp = [&](arith::CmpIPredicate p, Value x, int64_t bound) {
    return arith::CmpIOp::create(b, loc, p, x, constantLike(b, loc, x, bound))
        .getResult();
  };
  if (upper) {
    conj(any, cmp(arith::CmpIPredicate::sle, minRel, *upper));
    conj(all, cmp(arith::CmpIPredicate::sle, maxRel, *upper));
  }
  if (lower) {
    conj(any, cmp(arith::CmpIPredicate::sge, maxRel, *lower));
    conj(all, cmp(arith::CmpIPredicate::sge, minRel, *lower));
  }
  return {any, all};
}

std::pair<int64_t, int64_t> KeyBand::keptKeys(int64_t row,
                                              int64_t kvLen) const {
  int64_t first = lower ? std::max<int64_t>(0, row + *lower) : 0;
  int64_t last = upper ? std::min<int64_t>(kvLen - 1, row + *upper) : kvLen - 1;
  return {first, last};
}

double KeyBand::countVisible(int64_t qLen, int64_t kvLen) const {
  if (isUnbounded())
    return double(qLen) * double(kvLen);
  int64_t shift = alignment == MaskAlignment::BottomRight ? kvLen - qLen : 0;
  double visible = 0;
  for (int64_t i = 0; i < qLen; ++i) {
    auto [first, last] = keptKeys(i + shift, kvLen);
    if (last >= first)
      visible += double(last - first + 1);
  }
  return visible;
}

OpFoldResult mlir::attn::getDiagonalShift(OpBuilder &b, Location loc,
                                          const AttentionOpDetail &op) {
  MaskKindAttrInterface kind = op.maskKind();
  if (!kind || kind.getBandAlignment() != MaskAlignment::BottomRight)
    return b.getIndexAttr(0);
  AttentionDims d = op.dims();
  if (!ShapedType::isDynamic(d.qLen) && !ShapedType::isDynamic(d.kvLen))
    return b.getIndexAttr(kind.getDiagonalShift(d.qLen, d.kvLen));
  auto dim = [&](Value v) -> Value {
    if (isa<MemRefType>(v.getType()))
      return memref::DimOp::create(b, loc, v, kSeqDim);
    return tensor::DimOp::create(b, loc, v, kSeqDim);
  };
  return kind.buildDiagonalShift(b, loc, dim(op.query()), dim(op.key()));
}

VisibleKeys VisibleKeys::get(OpBuilder &b, Location loc,
                             const AttentionOpDetail &op) {
  VisibleKeys v;
  v.band = KeyBand::get(op.maskKind());
  auto zero = [&] { return arith::ConstantIndexOp::create(b, loc, 0); };
  v.rowPos = op.queryOffset() ? op.queryOffset() : zero();
  v.keyPos = op.keyOffset() ? op.keyOffset() : zero();
  v.kvBound = op.kvBound();
  v.qBound = op.qBound();
  v.kvLens = op.kvLens();
  OpFoldResult shift = getDiagonalShift(b, loc, op);
  if (!isConstantIntValue(shift, 0)) {
    Value s = getValueOrCreateConstantIndexOp(b, loc, shift);
    v.rowPos = b.createOrFold<arith::AddIOp>(loc, v.rowPos, s);
    if (v.qBound)
      v.qBound = b.createOrFold<arith::AddIOp>(loc, v.qBound, s);
  }
  return v;
}

Value VisibleKeys::readKvLen(OpBuilder &b, Location loc,
                             Value batchIndex) const {
  if (!kvLens)
    return Value();
  if (isa<MemRefType>(kvLens.getType()))
    return memref::LoadOp::create(b, loc, kvLens, ValueRange{batchIndex});
  return tensor::ExtractOp::create(b, loc, kvLens, ValueRange{batchIndex});
}

SmallVector<Value, 2> VisibleKeys::keyLimits(OpBuilder &b, Location loc,
                                             Value kvLen) const {
  SmallVector<Value, 2> limits;
  if (kvBound)
    limits.push_back(kvBound);
  if (kvLen)
    limits.push_back(kvLen.getType().isIndex()
                         ? kvLen
                         : arith::IndexCastOp::create(b, loc, b.getIndexType(),
                                                      kvLen)
                               .getResult());
  return limits;
}

Value VisibleKeys::lastRow(OpBuilder &b, Location loc, Value firstRow,
                           Value numRows) const {
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value last = b.createOrFold<arith::AddIOp>(
      loc, firstRow, b.createOrFold<arith::SubIOp>(loc, numRows, one));
  if (qBound)
    last = b.createOrFold<arith::MinSIOp>(
        loc, last, b.createOrFold<arith::SubIOp>(loc, qBound, one));
  return last;
}

void VisibleKeys::narrowToSomeRow(OpBuilder &b, Location loc, Value firstRow,
                                  Value lastRow, ArrayRef<Value> limits,
                                  Value &lo, Value &hi) const {
  for (Value limit : limits)
    hi = b.createOrFold<arith::MinSIOp>(
        loc, hi, b.createOrFold<arith::SubIOp>(loc, limit, keyPos));
  if (!band.isUnbounded())
    band.narrowToSomeRow(b, loc, firstRow, lastRow, keyPos, lo, hi);
}

Value VisibleKeys::buildKeep(OpBuilder &b, Location loc, Value row, Value key,
                             ArrayRef<Value> limits) const {
  Value keep;
  auto conj = [&](Value c) {
    keep = keep ? arith::AndIOp::create(b, loc, keep, c).getResult() : c;
  };
  auto lessThan = [&](Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, x, y);
  };
  for (Value limit : limits)
    conj(lessThan(key, limit));
  if (!band.isUnbounded())
    conj(band.buildKeeps(b, loc, arith::SubIOp::create(b, loc, key, row)));
  if (qBound) // padding rows see no key
    conj(lessThan(row, qBound));
  return keep;
}

Value VisibleKeys::buildKeepForSomeRow(OpBuilder &b, Location loc,
                                       Value firstRow, Value lastRow,
                                       Value key,
                                       ArrayRef<Value> limits) const {
  Value keep;
  auto conj = [&](Value c) {
    keep = keep ? arith::AndIOp::create(b, loc, keep, c).getResult() : c;
  };
  for (Value limit : limits)
    conj(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, key, limit));
  // Some row r in [firstRow, lastRow] has lower <= key - r <= upper: the
  // band keeps some rel in [key - lastRow, key - firstRow].
  if (!band.isUnbounded())
    conj(band.buildKeepsAnyAll(b, loc,
                               arith::SubIOp::create(b, loc, key, lastRow),
                               arith::SubIOp::create(b, loc, key, firstRow))
             .first);
  return keep;
}

bool mlir::attn::isBroadcastDim(Value operand, unsigned dim) {
  return cast<ShapedType>(operand.getType()).getDimSize(dim) == 1;
}

//===----------------------------------------------------------------------===//
// Verification
//===----------------------------------------------------------------------===//

static std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::interleave(
      shape,
      [&](int64_t d) {
        s += ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
      },
      [&] { s += ", "; });
  return s + "]";
}

static bool sameOrDynamic(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static bool isAttnFloat(Type t) { return t.isF32() || t.isF16() || t.isBF16(); }

namespace {
/// Emits the op's errors, naming the operand concerned.
struct Verifier {
  Operation *op;
  AttentionOpDetail detail;

  InFlightDiagnostic error(StringRef operand) {
    return op->emitOpError() << "'" << operand << "' ";
  }

  LogicalResult checkRank4(Value v, StringRef name, StringRef layout) {
    auto type = cast<ShapedType>(v.getType());
    if (type.getRank() != 4)
      return error(name) << "must be a rank-4 tensor " << layout << ", got rank "
                         << type.getRank();
    return success();
  }

  LogicalResult checkDim(Value v, StringRef name, unsigned dim, int64_t expected,
                         StringRef what, StringRef from) {
    int64_t actual = cast<ShapedType>(v.getType()).getDimSize(dim);
    if (!sameOrDynamic(actual, expected))
      return error(name) << what << " " << actual << " does not match " << from
                         << " " << what << " " << expected;
    return success();
  }

  // mask / bias: rank 4, [B|1, Hq|1, Sq|1, Sk].
  LogicalResult checkMaskLike(Value v, StringRef name, const AttentionDims &d) {
    if (failed(checkRank4(v, name, "[batch|1, q_heads|1, q_len|1, kv_len]")))
      return failure();
    ArrayRef<int64_t> shape = cast<ShapedType>(v.getType()).getShape();
    SmallVector<int64_t> expected = {d.batch, d.qHeads, d.qLen, d.kvLen};
    for (unsigned i = 0; i < 4; ++i) {
      bool ok = sameOrDynamic(shape[i], expected[i]) || (i < 3 && shape[i] == 1);
      if (!ok)
        return error(name) << "shape " << shapeStr(shape)
                           << " does not broadcast to [batch, q_heads, q_len, "
                              "kv_len] = "
                           << shapeStr(expected);
    }
    return success();
  }

  LogicalResult verify() {
    Value q = detail.query(), k = detail.key(), v = detail.value();
    // All shaped operands are tensors, or (bufferized) all memrefs.
    bool memrefs = isa<MemRefType>(q.getType());
    for (Value operand : op->getOperands())
      if (isa<ShapedType>(operand.getType()) &&
          isa<MemRefType>(operand.getType()) != memrefs)
        return op->emitOpError("operands must be all tensors or all memrefs");
    if (failed(checkRank4(q, "query", "[batch, q_heads, q_len, head_dim]")) ||
        failed(checkRank4(k, "key", "[batch, kv_heads, kv_len, head_dim]")) ||
        failed(checkRank4(v, "value", "[batch, kv_heads, kv_len, v_head_dim]")))
      return failure();

    Type elt = getElementTypeOrSelf(q.getType());
    if (!isAttnFloat(elt))
      return error("query") << "element type must be f32, f16 or bf16, got "
                            << elt;
    for (auto [val, name] : {std::pair(k, "key"), std::pair(v, "value")})
      if (getElementTypeOrSelf(val.getType()) != elt)
        return error(name) << "element type " << getElementTypeOrSelf(val.getType())
                           << " does not match 'query' element type " << elt;

    AttentionDims d = detail.dims();
    auto kShape = cast<ShapedType>(k.getType());
    auto vShape = cast<ShapedType>(v.getType());
    if (failed(checkDim(k, "key", kBatchDim, d.batch, "batch", "'query'")) ||
        failed(checkDim(v, "value", kBatchDim, d.batch, "batch", "'query'")) ||
        failed(checkDim(k, "key", kFeatureDim, d.headDim, "head_dim",
                        "'query'")) ||
        failed(checkDim(v, "value", kHeadsDim, kShape.getDimSize(kHeadsDim),
                        "kv_heads", "'key'")) ||
        failed(checkDim(v, "value", kSeqDim, kShape.getDimSize(kSeqDim),
                        "kv_len", "'key'")))
      return failure();
    (void)vShape;
    if (d.kvHeads == 0)
      return error("key") << "must have at least one head";
    if (!ShapedType::isDynamic(d.qHeads) && !ShapedType::isDynamic(d.kvHeads) &&
        d.qHeads % d.kvHeads != 0)
      return error("query") << "heads (" << d.qHeads
                            << ") must be a multiple of 'key' heads ("
                            << d.kvHeads << ")";

    if (Value mask = detail.mask()) {
      if (!getElementTypeOrSelf(mask.getType()).isInteger(1))
        return error("mask") << "element type must be i1 (true keeps the key), "
                                "got "
                             << getElementTypeOrSelf(mask.getType());
      if (failed(checkMaskLike(mask, "mask", d)))
        return failure();
    }
    if (Value bias = detail.bias()) {
      if (!isAttnFloat(getElementTypeOrSelf(bias.getType())))
        return error("bias") << "element type must be f32, f16 or bf16, got "
                             << getElementTypeOrSelf(bias.getType());
      if (failed(checkMaskLike(bias, "bias", d)))
        return failure();
    }
    if (Value lens = detail.kvLens()) {
      auto type = cast<ShapedType>(lens.getType());
      Type lt = type.getElementType();
      if (type.getRank() != 1 || !(lt.isInteger(32) || lt.isInteger(64)))
        return error("kv_lens") << "must be a rank-1 i32 or i64 tensor [batch], "
                                   "got "
                                << lens.getType();
      if (failed(checkDim(lens, "kv_lens", 0, d.batch, "batch", "'query'")))
        return failure();
    }

    if (auto scaleAttr = op->getAttrOfType<FloatAttr>("scale"))
      if (!std::isfinite(scaleAttr.getValueAsDouble()))
        return op->emitOpError() << "'scale' must be finite, got "
                                 << scaleAttr.getValueAsDouble();
    return success();
  }

  /// Checks one outs operand against its expected shape and element types.
  LogicalResult checkOut(Value out, StringRef name, ArrayRef<int64_t> expected,
                         bool allowNarrowFloat) {
    auto type = cast<ShapedType>(out.getType());
    Type elt = type.getElementType();
    if (allowNarrowFloat ? !isAttnFloat(elt) : !elt.isF32())
      return error(name) << "element type must be "
                         << (allowNarrowFloat ? "f32, f16 or bf16" : "f32")
                         << ", got " << elt;
    bool match = type.getRank() == static_cast<int64_t>(expected.size());
    for (unsigned i = 0; match && i < expected.size(); ++i)
      match = sameOrDynamic(type.getDimSize(i), expected[i]);
    if (!match)
      return error(name) << "shape " << shapeStr(type.getShape())
                         << " does not match the expected "
                         << shapeStr(expected);
    return success();
  }
};
} // namespace

LogicalResult mlir::attn::verifyAttentionLikeOp(Operation *op) {
  Verifier verifier{op, AttentionOpDetail(op)};
  if (failed(verifier.verify()))
    return failure();

  AttentionOpDetail &detail = verifier.detail;
  AttentionDims d = detail.dims();
  SmallVector<int64_t> outShape = {d.batch, d.qHeads, d.qLen, d.vHeadDim};
  SmallVector<int64_t> rowShape = {d.batch, d.qHeads, d.qLen};

  auto offsets = isa<AttentionOp>(op) ? cast<AttentionOp>(op).getOffsets()
                                      : cast<OnlineAttentionOp>(op).getOffsets();
  if (!offsets.empty() && offsets.size() != 2 && offsets.size() != 4)
    return op->emitOpError() << "expects 0, 2 (q_offset, kv_offset) or 4 "
                                "(b_offset, h_offset, q_offset, kv_offset) "
                                "offsets, got "
                             << offsets.size();
  if (offsets.size() == 4 && !detail.hasModRegions())
    return op->emitOpError()
           << "expects 4 offsets (b_offset, h_offset, q_offset, kv_offset) "
              "only with a score_mod or mask_mod region, which reads them";

  if (auto attention = dyn_cast<AttentionOp>(op)) {
    auto outs = attention.getOutputs();
    if (outs.size() != 1 && outs.size() != 2)
      return op->emitOpError() << "expects 1 or 2 outs (output and optional "
                                  "log-sum-exp), got "
                               << outs.size();
    if (failed(verifier.checkOut(outs[0], "output", outShape, true)))
      return failure();
    if (outs.size() == 2 &&
        failed(verifier.checkOut(outs[1], "lse", rowShape, false)))
      return failure();
    return success();
  }

  auto online = cast<OnlineAttentionOp>(op);
  auto outs = online.getOutputs();
  if (outs.size() != 3)
    return op->emitOpError() << "expects 3 outs (acc, max, sum), got "
                             << outs.size();
  if (failed(verifier.checkOut(outs[0], "acc", outShape, false)) ||
      failed(verifier.checkOut(outs[1], "max", rowShape, false)) ||
      failed(verifier.checkOut(outs[2], "sum", rowShape, false)))
    return failure();
  return success();
}

LogicalResult mlir::attn::verifyModBody(Block &block, unsigned numLeading,
                                        StringRef name) {
  for (Operation &inner : block.without_terminator()) {
    if (auto extract = dyn_cast<tensor::ExtractOp>(inner)) {
      auto arg = dyn_cast<BlockArgument>(extract.getTensor());
      if (!arg || arg.getOwner() != &block || arg.getArgNumber() < numLeading)
        return inner.emitOpError()
               << "in '" << name
               << "' may only read a capture (a block argument)";
      continue;
    }
    StringRef ns =
        inner.getDialect() ? inner.getDialect()->getNamespace() : StringRef();
    if (!(ns == "arith" || ns == "math") || inner.getNumRegions() != 0)
      return inner.emitOpError()
             << "is not allowed in '" << name
             << "' (arith, math and tensor.extract of a capture only)";
  }
  return success();
}

LogicalResult mlir::attn::verifyModRegions(Operation *op) {
  AttentionOpDetail detail(op);
  ValueRange captures = detail.captures();
  for (auto [i, c] : llvm::enumerate(captures)) {
    auto type = dyn_cast<RankedTensorType>(c.getType());
    Type elt = type ? type.getElementType() : Type();
    if (!type || !(isa<FloatType, IntegerType>(elt) || elt.isIndex()))
      return op->emitOpError()
             << "capture #" << i
             << " must be a ranked tensor of integer, index or float "
                "elements, got "
             << c.getType();
  }
  if (!captures.empty() && !detail.hasModRegions())
    return op->emitOpError(
        "has captures but no score_mod or mask_mod region to read them");
  MLIRContext *ctx = op->getContext();
  Type f32 = Float32Type::get(ctx), idx = IndexType::get(ctx),
       i1 = IntegerType::get(ctx, 1);
  auto check = [&](Region *region, StringRef name, ArrayRef<Type> leading,
                   Type yielded) -> LogicalResult {
    if (!region)
      return success();
    if (!region->hasOneBlock())
      return op->emitOpError() << "'" << name << "' must have one block";
    Block &block = region->front();
    SmallVector<Type> expected(leading);
    llvm::append_range(expected, captures.getTypes());
    if (block.getArgumentTypes() != TypeRange(expected)) {
      std::string want;
      llvm::raw_string_ostream os(want);
      llvm::interleaveComma(expected, os);
      return op->emitOpError()
             << "'" << name << "' block arguments must be (" << want
             << "): the leading scalars, then one per capture";
    }
    // The ops of the region were verified first: the block ends in a
    // terminator.
    auto yield = dyn_cast<YieldOp>(block.getTerminator());
    if (!yield)
      return op->emitOpError() << "'" << name << "' must end in attn.yield";
    if (yield.getValue().getType() != yielded)
      return op->emitOpError() << "'" << name << "' must yield " << yielded
                               << ", got " << yield.getValue().getType();
    return verifyModBody(block, leading.size(), name);
  };
  if (failed(check(detail.scoreMod(), "score_mod",
                   {f32, idx, idx, idx, idx}, f32)) ||
      failed(check(detail.maskMod(), "mask_mod", {idx, idx, idx, idx}, i1)))
    return failure();
  return success();
}

namespace {
/// c_q * q_idx + c_kv * kv_idx + c, coefficients and constant bounded
/// (kMaxCoefficient, kMaxConstant) so that no evaluation of the form with
/// indices below 2^31 overflows 64 bits.
struct AffineIndexForm {
  int64_t q = 0, kv = 0, c = 0;
};
constexpr int64_t kMaxCoefficient = int64_t(1) << 20;
constexpr int64_t kMaxConstant = int64_t(1) << 40;

/// Bounds on rel = kv_idx - q_idx; nullopt = unbounded on that side.
struct RelInterval {
  std::optional<int64_t> lo, hi;
  static RelInterval intersect(RelInterval a, RelInterval b) {
    auto pick = [](std::optional<int64_t> x, std::optional<int64_t> y,
                   bool max) -> std::optional<int64_t> {
      if (!x || !y)
        return x ? x : y;
      return max ? std::max(*x, *y) : std::min(*x, *y);
    };
    return {pick(a.lo, b.lo, true), pick(a.hi, b.hi, false)};
  }
  static RelInterval hull(RelInterval a, RelInterval b) {
    auto pick = [](std::optional<int64_t> x, std::optional<int64_t> y,
                   bool min) -> std::optional<int64_t> {
      if (!x || !y)
        return std::nullopt;
      return min ? std::min(*x, *y) : std::max(*x, *y);
    };
    return {pick(a.lo, b.lo, true), pick(a.hi, b.hi, false)};
  }
};

struct BandAnalysis {
  Value q, kv;
  static constexpr unsigned kMaxDepth = 64;

  std::optional<AffineIndexForm> affine(Value v, unsigned depth) {
    if (depth > kMaxDepth || !v.getType().isIndex())
      return std::nullopt;
    if (v == q)
      return AffineIndexForm{1, 0, 0};
    if (v == kv)
      return AffineIndexForm{0, 1, 0};
    if (std::optional<int64_t> c = getConstantIntValue(v)) {
      if (std::abs(*c) > kMaxConstant)
        return std::nullopt;
      return AffineIndexForm{0, 0, *c};
    }
    Operation *op = v.getDefiningOp();
    auto checked = [](AffineIndexForm f) -> std::optional<AffineIndexForm> {
      if (std::abs(f.q) > kMaxCoefficient || std::abs(f.kv) > kMaxCoefficient ||
          std::abs(f.c) > kMaxConstant)
        return std::nullopt;
      return f;
    };
    if (isa_and_nonnull<arith::AddIOp, arith::SubIOp>(op)) {
      auto a = affine(op->getOperand(0), depth + 1);
      auto b = affine(op->getOperand(1), depth + 1);
      if (!a || !b)
        return std::nullopt;
      int64_t sign = isa<arith::SubIOp>(op) ? -1 : 1;
      return checked(
          {a->q + sign * b->q, a->kv + sign * b->kv, a->c + sign * b->c});
    }
    if (auto mul = dyn_cast_or_null<arith::MulIOp>(op)) {
      auto a = affine(mul.getLhs(), depth + 1);
      auto b = affine(mul.getRhs(), depth + 1);
      if (!a || !b)
        return std::nullopt;
      if (a->q || a->kv)
        std::swap(a, b); // the constant factor first
      if (a->q || a->kv || std::abs(a->c) > kMaxCoefficient)
        return std::nullopt;
      return checked({a->c * b->q, a->c * b->kv, a->c * b->c});
    }
    return std::nullopt;
  }

  /// Whether the form is q_idx, kv_idx or a constant, each plus a
  /// non-negative constant: never negative (indices are).
  static bool nonNegative(AffineIndexForm f) {
    bool one = (f.q == 1 && f.kv == 0) || (f.q == 0 && f.kv == 1) ||
               (f.q == 0 && f.kv == 0);
    return one && f.c >= 0;
  }

  /// The bounds of lhs `pred` rhs.
  RelInterval compare(arith::CmpIPredicate pred, Value lhs, Value rhs,
                      unsigned depth) {
    using P = arith::CmpIPredicate;
    if (depth > kMaxDepth)
      return {};
    bool less = pred == P::slt || pred == P::sle;
    bool greater = pred == P::sgt || pred == P::sge;
    // max(x, y) <= r: both; max(x, y) >= r: either; min the other way;
    // the same with the sides swapped.
    for (bool left : {true, false}) {
      Operation *op = (left ? lhs : rhs).getDefiningOp();
      bool isMax = isa_and_nonnull<arith::MaxSIOp>(op);
      if (!isMax && !isa_and_nonnull<arith::MinSIOp>(op))
        continue;
      bool bothHold = (isMax == left) ? less : greater;
      if (!less && !greater)
        return {};
      Value other = left ? rhs : lhs;
      auto side = [&](Value x) {
        return left ? compare(pred, x, other, depth + 1)
                    : compare(pred, other, x, depth + 1);
      };
      RelInterval a = side(op->getOperand(0)), b = side(op->getOperand(1));
      return bothHold ? RelInterval::intersect(a, b) : RelInterval::hull(a, b);
    }
    auto a = affine(lhs, depth + 1), b = affine(rhs, depth + 1);
    if (!a || !b)
      return {};
    if (pred == P::ult || pred == P::ule || pred == P::ugt || pred == P::uge) {
      if (!nonNegative(*a) || !nonNegative(*b))
        return {};
      pred = pred == P::ult   ? P::slt
             : pred == P::ule ? P::sle
             : pred == P::ugt ? P::sgt
                              : P::sge;
    }
    // f = lhs - rhs = t * rel + c when it depends on q and kv only through
    // rel = kv - q.
    AffineIndexForm f{a->q - b->q, a->kv - b->kv, a->c - b->c};
    if (f.q != -f.kv || f.kv == 0)
      return {};
    // As t * rel + c <= 0 (one or two of them).
    auto atMost = [](int64_t t, int64_t c) -> RelInterval {
      if (t > 0) // rel <= floor(-c / t)
        return {std::nullopt, llvm::divideFloorSigned(-c, t)};
      return {llvm::divideCeilSigned(c, -t), std::nullopt};
    };
    switch (pred) {
    case P::sle:
      return atMost(f.kv, f.c);
    case P::slt:
      return atMost(f.kv, f.c + 1);
    case P::sge:
      return atMost(-f.kv, -f.c);
    case P::sgt:
      return atMost(-f.kv, -f.c + 1);
    case P::eq:
      return RelInterval::intersect(atMost(f.kv, f.c), atMost(-f.kv, -f.c));
    default:
      return {};
    }
  }

  RelInterval bounds(Value keep, bool negate, unsigned depth) {
    Operation *op = keep.getDefiningOp();
    if (depth > kMaxDepth || !op)
      return {};
    if (isa<arith::AndIOp, arith::OrIOp>(op)) {
      RelInterval a = bounds(op->getOperand(0), negate, depth + 1);
      RelInterval b = bounds(op->getOperand(1), negate, depth + 1);
      // not (a and b) = not a or not b; not (a or b) = not a and not b.
      return isa<arith::AndIOp>(op) != negate ? RelInterval::intersect(a, b)
                                              : RelInterval::hull(a, b);
    }
    if (auto x = dyn_cast<arith::XOrIOp>(op)) {
      for (unsigned i = 0; i < 2; ++i)
        if (matchPattern(x->getOperand(i), m_One()))
          return bounds(x->getOperand(1 - i), !negate, depth + 1);
      return {};
    }
    if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
      arith::CmpIPredicate pred = cmp.getPredicate();
      if (negate)
        pred = arith::invertPredicate(pred);
      return compare(pred, cmp.getLhs(), cmp.getRhs(), depth + 1);
    }
    return {};
  }
};
} // namespace

KeyBand mlir::attn::impliedKeyBand(Value keep, Value qIdx, Value kvIdx) {
  BandAnalysis analysis{qIdx, kvIdx};
  RelInterval rel = analysis.bounds(keep, /*negate=*/false, 0);
  KeyBand band;
  band.lower = rel.lo;
  band.upper = rel.hi;
  return band;
}

LogicalResult mlir::attn::rejectModRegions(Operation *op, StringRef where) {
  if (!AttentionOpDetail(op).hasModRegions())
    return success();
  return op->emitOpError()
         << "with a score_mod or mask_mod region is not supported by " << where
         << " yet";
}

Value mlir::attn::inlineModRegion(OpBuilder &b, Region &region,
                                  ValueRange args) {
  Block &block = region.front();
  assert(block.getNumArguments() == args.size() && "one value per argument");
  IRMapping map;
  map.map(block.getArguments(), args);
  for (Operation &inner : block.without_terminator())
    b.clone(inner, map);
  return map.lookupOrDefault(cast<YieldOp>(block.getTerminator()).getValue());
}

void mlir::attn::copyModRegions(OpBuilder &b, Location loc, Operation *from,
                                Operation *to, OpFoldResult qShift) {
  for (unsigned r = 0; r < 2; ++r) {
    Region &src = from->getRegion(r), &dst = to->getRegion(r);
    if (src.empty())
      continue;
    IRMapping map;
    src.cloneInto(&dst, map);
  }
  shiftModRegionRows(b, loc, to, qShift);
}

void mlir::attn::shiftModRegionRows(OpBuilder &b, Location loc, Operation *op,
                                    OpFoldResult qShift) {
  std::optional<int64_t> constShift =
      qShift ? getConstantIntValue(qShift) : std::optional<int64_t>(0);
  if (constShift && *constShift == 0)
    return;
  if (op->getRegion(0).empty() && op->getRegion(1).empty())
    return;
  Value shiftCapture;
  if (!constShift) {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op);
    shiftCapture = tensor::FromElementsOp::create(
        b, loc, RankedTensorType::get({1}, b.getIndexType()),
        ValueRange{cast<Value>(qShift)});
    if (auto a = dyn_cast<AttentionOp>(op))
      a.getCapturesMutable().append(shiftCapture);
    else
      cast<OnlineAttentionOp>(op).getCapturesMutable().append(shiftCapture);
  }
  // Region 0 is score_mod (q_idx is argument 3), region 1 mask_mod (2).
  for (unsigned r = 0; r < 2; ++r) {
    Region &dst = op->getRegion(r);
    if (dst.empty())
      continue;
    Block &block = dst.front();
    BlockArgument q = block.getArgument(r == 0 ? 3 : 2);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(&block);
    Value shift;
    if (constShift) {
      shift = arith::ConstantIndexOp::create(b, loc, *constShift);
    } else {
      BlockArgument arg = block.addArgument(shiftCapture.getType(), loc);
      shift = tensor::ExtractOp::create(
          b, loc, arg, ValueRange{arith::ConstantIndexOp::create(b, loc, 0)});
    }
    Value row = arith::SubIOp::create(b, loc, q, shift);
    q.replaceAllUsesExcept(row, row.getDefiningOp());
  }
}
