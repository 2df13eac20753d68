//===- KernelBuilder.cpp - attention spec -> MLIR kernel module -----------===//

#include "KernelBuilder.h"

#include "attn/InitAttn.h"
#include "dialect/attn/IR/AttnOpDetail.h"
#include "dialect/attn/IR/AttnOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/InitAllDialects.h"
#include "llvm/ADT/bit.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

using mlir::Block;
using mlir::Builder;
using mlir::DialectRegistry;
using mlir::Location;
using mlir::MemRefType;
using mlir::MLIRContext;
using mlir::ModuleOp;
using mlir::OpBuilder;
using mlir::OwningOpRef;
using mlir::RankedTensorType;
using llvm::cast;
using mlir::ShapedType;
using mlir::SmallVector;
using mlir::StridedLayoutAttr;
using mlir::Type;
using mlir::Value;
using mlir::ValueRange;
namespace bufferization = mlir::bufferization;
namespace func = mlir::func;
namespace memref = mlir::memref;
namespace tensor = mlir::tensor;
using mlir::FloatAttr;
#include <limits>
using attn::AttentionSpec;
using attn::DType;
using attn::MaskSpec;
using attn::KernelOperand;
using llvm::ArrayRef;
using llvm::StringRef;
using llvm::SmallVectorImpl;

std::vector<attn::KernelOperand>
attn::kernelOperands(const AttentionSpec &spec) {
  std::vector<KernelOperand> ops = {KernelOperand::Query, KernelOperand::Key,
                                    KernelOperand::Value};
  if (spec.findMask(MaskSpec::Kind::Tensor))
    ops.push_back(KernelOperand::Mask);
  if (spec.findMask(MaskSpec::Kind::KeyPadding))
    ops.push_back(KernelOperand::KvLens);
  ops.insert(ops.end(), spec.captures().size(), KernelOperand::Capture);
  ops.push_back(KernelOperand::Output);
  if (spec.returnLse)
    ops.push_back(KernelOperand::Lse);
  return ops;
}

static Type elementType(MLIRContext &ctx, DType dtype) {
  Builder b(&ctx);
  switch (dtype) {
  case DType::F32:
    return b.getF32Type();
  case DType::F16:
    return b.getF16Type();
  case DType::BF16:
    return b.getBF16Type();
  case DType::Bool:
    return b.getI1Type();
  case DType::I32:
    return b.getI32Type();
  case DType::I64:
    return b.getI64Type();
  }
  return {};
}

static int64_t dimOf(std::optional<int64_t> v) {
  return v ? *v : ShapedType::kDynamic;
}

/// memref<shape x elt, strided<[?, ..., ?, 1]>>.
static MemRefType stridedMemRef(MLIRContext &ctx, llvm::ArrayRef<int64_t> shape,
                                Type elt) {
  SmallVector<int64_t> strides(shape.size(), ShapedType::kDynamic);
  strides.back() = 1;
  return MemRefType::get(shape, elt,
                         StridedLayoutAttr::get(&ctx, /*offset=*/0, strides));
}

/// The band mask of the kernel's attention op: the spec's causal or
/// sliding_window mask (at most one), intersected with the band its
/// mask_mod implies (attn::impliedBand) where both are top-left; the implied
/// band alone when the spec has none.
static std::optional<MaskSpec> attentionBand(const AttentionSpec &spec) {
  std::optional<MaskSpec> band;
  for (const MaskSpec &m : spec.masks)
    if (m.kind == MaskSpec::Kind::Causal ||
        m.kind == MaskSpec::Kind::SlidingWindow)
      band = m;
  std::optional<MaskSpec> implied =
      spec.maskMod ? attn::impliedBand(*spec.maskMod) : std::nullopt;
  if (!implied)
    return band;
  if (!band)
    return implied;
  if (band->bottomRight)
    return band;
  // Causal is the band with left unbounded and right 0.
  auto bounds = [](const MaskSpec &m) {
    return m.kind == MaskSpec::Kind::Causal
               ? std::pair<int64_t, int64_t>{INT64_MAX, 0}
               : std::pair<int64_t, int64_t>{m.left, m.right};
  };
  auto [l1, r1] = bounds(*band);
  auto [l2, r2] = bounds(*implied);
  if (std::min(l1, l2) != INT64_MAX) {
    band->kind = MaskSpec::Kind::SlidingWindow;
    band->left = std::min(l1, l2);
    band->right = std::min(r1, r2);
  }
  return band;
}

namespace {
/// Builds kernel entries: memref arguments read as tensors, results written
/// back with materialize_in_destination.
struct EntryBuilder {
  MLIRContext &ctx;
  const AttentionSpec &spec;
  OpBuilder b;
  Location loc;
  int64_t B, Sq, Sk;
  std::vector<attn::CaptureSpec> captures;

  EntryBuilder(MLIRContext &ctx, const AttentionSpec &spec)
      : ctx(ctx), spec(spec), b(&ctx), loc(b.getUnknownLoc()),
        B(dimOf(spec.batch)), Sq(dimOf(spec.qLen)), Sk(dimOf(spec.kvLen)),
        captures(spec.captures()) {}

  /// The memref types of `operands` in order.
  SmallVector<Type> operandTypes(ArrayRef<KernelOperand> operands) {
    SmallVector<Type> types;
    unsigned capture = 0;
    for (KernelOperand op : operands)
      types.push_back(op == KernelOperand::Capture
                          ? captureType(captures[capture++])
                          : operandType(op));
    return types;
  }

  MemRefType captureType(const attn::CaptureSpec &c) {
    std::vector<int64_t> shape = c.shapeAt(B, Sq, Sk);
    return stridedMemRef(ctx, shape, elementType(ctx, c.dtype));
  }

  MemRefType operandType(KernelOperand op) {
    Type elt = elementType(ctx, spec.dtype);
    switch (op) {
    case KernelOperand::Query:
      return stridedMemRef(ctx, {B, spec.qHeads, Sq, spec.headDim}, elt);
    case KernelOperand::Key:
      return stridedMemRef(ctx, {B, spec.kvHeads, Sk, spec.headDim}, elt);
    case KernelOperand::Value:
      return stridedMemRef(ctx, {B, spec.kvHeads, Sk, spec.vHeadDim}, elt);
    case KernelOperand::Mask: {
      const MaskSpec *m = spec.findMask(MaskSpec::Kind::Tensor);
      return stridedMemRef(ctx,
                           {m->batchBroadcast ? 1 : B,
                            m->headBroadcast ? 1 : spec.qHeads,
                            m->queryBroadcast ? 1 : Sq, Sk},
                           elementType(ctx, m->dtype));
    }
    case KernelOperand::KvLens:
      return stridedMemRef(
          ctx, {B},
          elementType(ctx, spec.findMask(MaskSpec::Kind::KeyPadding)->dtype));
    case KernelOperand::Output:
      return stridedMemRef(ctx, {B, spec.qHeads, Sq, spec.vHeadDim}, elt);
    case KernelOperand::Lse:
      return stridedMemRef(ctx, {B, spec.qHeads, Sq}, b.getF32Type());
    case KernelOperand::Capture:
      break; // captureType
    }
    return {};
  }

  /// The split-KV workspace: acc [S, B, Hq, Sq, Dv], max and sum
  /// [S, B, Hq, Sq], f32, contiguous.
  SmallVector<Type> workspaceTypes(int64_t splits) {
    Type f32 = b.getF32Type();
    return {MemRefType::get({splits, B, spec.qHeads, Sq, spec.vHeadDim}, f32),
            MemRefType::get({splits, B, spec.qHeads, Sq}, f32),
            MemRefType::get({splits, B, spec.qHeads, Sq}, f32)};
  }

  /// func @name(args..., [extra index args], [wg_begin, wg_end]).
  func::FuncOp entry(StringRef name, ArrayRef<Type> memrefs,
                     unsigned extraIndices, bool workgroupRange) {
    SmallVector<Type> types(memrefs.begin(), memrefs.end());
    types.append(extraIndices + (workgroupRange ? 2 : 0), b.getIndexType());
    auto func = func::FuncOp::create(b, loc, name, b.getFunctionType(types, {}));
    func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    if (workgroupRange) {
      func.setArgAttr(types.size() - 2, mlir::attn::kWorkgroupBeginAttr,
                      b.getUnitAttr());
      func.setArgAttr(types.size() - 1, mlir::attn::kWorkgroupEndAttr,
                      b.getUnitAttr());
    }
    return func;
  }

  Value asTensor(Value memref, bool writable) {
    auto type = cast<MemRefType>(memref.getType());
    return bufferization::ToTensorOp::create(
        b, loc, RankedTensorType::get(type.getShape(), type.getElementType()),
        memref, /*restrict=*/true, writable);
  }

  void writeBack(Value result, Value dest) {
    auto m = bufferization::MaterializeInDestinationOp::create(b, loc, result,
                                                               dest);
    m.setRestrict(true);
    m.setWritable(true);
  }

  /// The op's mask kind, from attentionBand(spec).
  mlir::attn::MaskKindAttrInterface maskKind(bool forceTopLeft) {
    std::optional<MaskSpec> band = attentionBand(spec);
    if (!band)
      return {};
    auto align = band->bottomRight && !forceTopLeft
                     ? mlir::attn::MaskAlignment::BottomRight
                     : mlir::attn::MaskAlignment::TopLeft;
    if (band->kind == MaskSpec::Kind::Causal)
      return mlir::attn::CausalAttr::get(&ctx, align);
    return mlir::attn::SlidingWindowAttr::get(&ctx, band->left, band->right,
                                              align);
  }
};

/// Whether a user function reads a capture with a size the kernel leaves to
/// run time (its reads are clamped with the sizes capture).
bool needsCaptureSizes(const AttentionSpec &spec) {
  auto dynamic = [&](const attn::CaptureSpec &c) {
    return llvm::any_of(c.shape, [&](attn::CaptureSpec::Dim d) {
      return (d.kind == d.Batch && !spec.batch) ||
             (d.kind == d.QLen && !spec.qLen) ||
             (d.kind == d.KvLen && !spec.kvLen);
    });
  };
  bool scoreFunc =
      spec.scoreMod && spec.scoreMod->kind == attn::ScoreModSpec::Kind::Mlir;
  bool maskFunc =
      spec.maskMod && spec.maskMod->kind == attn::MaskModSpec::Kind::Mlir;
  return (scoreFunc && llvm::any_of(spec.scoreMod->func.captures, dynamic)) ||
         (maskFunc && llvm::any_of(spec.maskMod->func.captures, dynamic));
}

/// The inputs of the attention, as tensors.
struct Inputs {
  Value query, key, value, mask, bias, kvLens;
  SmallVector<Value> captures;
};

Inputs readInputs(EntryBuilder &e, const AttentionSpec &spec, Block *body,
                  ArrayRef<KernelOperand> operands,
                  SmallVectorImpl<Value> *outs = nullptr,
                  SmallVectorImpl<Value> *outMemRefs = nullptr) {
  Inputs in;
  for (auto [idx, op] : llvm::enumerate(operands)) {
    Value arg = body->getArgument(idx);
    bool writable = op == KernelOperand::Output || op == KernelOperand::Lse;
    Value t = e.asTensor(arg, writable);
    switch (op) {
    case KernelOperand::Query:
      in.query = t;
      break;
    case KernelOperand::Key:
      in.key = t;
      break;
    case KernelOperand::Value:
      in.value = t;
      break;
    case KernelOperand::Mask:
      (spec.findMask(MaskSpec::Kind::Tensor)->dtype == DType::Bool ? in.mask
                                                                   : in.bias) = t;
      break;
    case KernelOperand::KvLens:
      in.kvLens = t;
      break;
    case KernelOperand::Capture:
      in.captures.push_back(t);
      break;
    case KernelOperand::Output:
    case KernelOperand::Lse:
      outs->push_back(t);
      outMemRefs->push_back(arg);
      break;
    }
  }
  // The sizes capture of buildModFuncRegion, after the spec's captures.
  if (needsCaptureSizes(spec)) {
    OpBuilder &b = e.b;
    auto dim = [&](Value t, int64_t d) -> Value {
      return tensor::DimOp::create(b, e.loc, t, d);
    };
    in.captures.push_back(tensor::FromElementsOp::create(
        b, e.loc, RankedTensorType::get({3}, b.getIndexType()),
        ValueRange{dim(in.query, 0), dim(in.query, 2), dim(in.key, 2)}));
  }
  return in;
}
} // namespace

namespace {
/// The spec's named score modification as the score_mod region of `op`
/// (its ScoreModSpec definition, in f32): ALiBi's slope from the query head,
/// with the constants attn::alibiSlope gives.
void buildScoreModRegion(OpBuilder &b, Location loc, mlir::Region &region,
                         ValueRange captures, const attn::ScoreModSpec &mod,
                         int64_t qHeads) {
  namespace arith = mlir::arith;
  namespace math = mlir::math;
  Type f32 = b.getF32Type(), idx = b.getIndexType();
  Block *block = new Block();
  region.push_back(block);
  for (Type t : {f32, idx, idx, idx, idx})
    block->addArgument(t, loc);
  for (Value capture : captures)
    block->addArgument(capture.getType(), loc);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(block);
  auto f = [&](double v) -> Value {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  };
  auto toF32 = [&](Value i) -> Value {
    Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), i);
    return arith::SIToFPOp::create(b, loc, f32, i64);
  };
  Value s = block->getArgument(0), y;
  if (mod.kind == attn::ScoreModSpec::Kind::Alibi) {
    // The slopes are geometric with ratio slope(0) within each of the two
    // runs attn::alibiSlope (their one owner) describes, [0, c) and
    // [c, H): slope(h) = slope(first) * slope(0)^(h - first).
    int64_t c = static_cast<int64_t>(llvm::bit_floor(
        static_cast<uint64_t>(qHeads)));
    auto lnSlope = [&](int64_t h) { return std::log(attn::alibiSlope(h, qHeads)); };
    Value h = block->getArgument(2);
    Value hf = toF32(h);
    Value lnFirst = f(lnSlope(0)), first = f(0.0);
    if (c != qHeads) {
      Value second = arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::sge, h,
          arith::ConstantIndexOp::create(b, loc, c));
      lnFirst = arith::SelectOp::create(b, loc, second, f(lnSlope(c)), lnFirst);
      first = arith::SelectOp::create(b, loc, second,
                                      f(static_cast<double>(c)), first);
    }
    Value exponent = arith::AddFOp::create(
        b, loc, lnFirst,
        arith::MulFOp::create(b, loc, arith::SubFOp::create(b, loc, hf, first),
                              f(lnSlope(0))));
    Value slope = math::ExpOp::create(b, loc, exponent);
    Value rel = toF32(arith::SubIOp::create(b, loc, block->getArgument(4),
                                            block->getArgument(3)));
    y = arith::AddFOp::create(b, loc, s,
                              arith::MulFOp::create(b, loc, slope, rel));
  } else if (mod.kind == attn::ScoreModSpec::Kind::Softcap) {
    Value cap = f(mod.cap);
    y = arith::MulFOp::create(
        b, loc, cap,
        math::TanhOp::create(b, loc, arith::DivFOp::create(b, loc, s, cap)));
  } else {
    // T5: bucket(j - i) from the distance n (|j - i|, or max(i - j, 0) one
    // way): n itself below `exact`, else exact + the number of logarithmic
    // bucket starts attn::t5BucketThresholds (their one owner) at or below
    // n; bidirectional keys after the query use the upper half. The bias
    // is the table's (bucket, h) entry: the score_mod's first capture.
    using P = arith::CmpIPredicate;
    auto c = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    Value rel = arith::SubIOp::create(b, loc, block->getArgument(4),
                                      block->getArgument(3));
    Value negRel = arith::SubIOp::create(b, loc, c(0), rel);
    int64_t buckets = mod.bidirectional ? mod.numBuckets / 2 : mod.numBuckets;
    int64_t exact = buckets / 2;
    Value n = mod.bidirectional ? arith::MaxSIOp::create(b, loc, rel, negRel)
                                : arith::MaxSIOp::create(b, loc, negRel, c(0));
    Value large = c(exact);
    for (int64_t t : attn::t5BucketThresholds(mod.bidirectional, mod.numBuckets,
                                              mod.maxDistance))
      large = arith::AddIOp::create(
          b, loc, large,
          arith::IndexCastOp::create(
              b, loc, idx,
              arith::ExtUIOp::create(
                  b, loc, b.getI64Type(),
                  arith::CmpIOp::create(b, loc, P::sge, n, c(t)))));
    Value bucket = arith::SelectOp::create(
        b, loc, arith::CmpIOp::create(b, loc, P::slt, n, c(exact)), n, large);
    if (mod.bidirectional)
      bucket = arith::AddIOp::create(
          b, loc, bucket,
          arith::SelectOp::create(
              b, loc, arith::CmpIOp::create(b, loc, P::sgt, rel, c(0)),
              c(buckets), c(0)));
    Value bias =
        tensor::ExtractOp::create(b, loc, block->getArgument(5),
                                  ValueRange{bucket, block->getArgument(2)});
    y = arith::AddFOp::create(b, loc, s, bias);
  }
  mlir::attn::YieldOp::create(b, loc, y);
}

/// The spec's named mask modification as the mask_mod region of `op`
/// (its MaskModSpec definition), reading the op's captures in the order of
/// AttentionSpec::captures, its own from `firstCapture` on.
void buildMaskModRegion(OpBuilder &b, Location loc, mlir::Region &region,
                        ValueRange captures, const attn::MaskModSpec &mod,
                        unsigned firstCapture) {
  namespace arith = mlir::arith;
  Type idx = b.getIndexType();
  Block *block = new Block();
  region.push_back(block);
  for (unsigned i = 0; i < 4; ++i)
    block->addArgument(idx, loc);
  for (Value capture : captures)
    block->addArgument(capture.getType(), loc);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(block);
  Value batch = block->getArgument(0), row = block->getArgument(2),
        key = block->getArgument(3);
  auto c = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  auto cmp = [&](arith::CmpIPredicate p, Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, loc, p, x, y);
  };
  auto both = [&](Value x, Value y) -> Value {
    return arith::AndIOp::create(b, loc, x, y);
  };
  auto either = [&](Value x, Value y) -> Value {
    return arith::OrIOp::create(b, loc, x, y);
  };
  auto rem = [&](Value x, int64_t m) -> Value {
    return arith::RemSIOp::create(b, loc, x, c(m));
  };
  // The value of the mask_mod's capture `n` at (batch, position).
  auto capture = [&](unsigned n, Value position) -> Value {
    return tensor::ExtractOp::create(b, loc,
                                     block->getArgument(4 + firstCapture + n),
                                     ValueRange{batch, position});
  };
  // d = i - j and |d|.
  Value d = arith::SubIOp::create(b, loc, row, key);
  auto absD = [&]() -> Value {
    return arith::MaxSIOp::create(b, loc, d,
                                  arith::SubIOp::create(b, loc, c(0), d));
  };
  using Kind = attn::MaskModSpec::Kind;
  using P = arith::CmpIPredicate;
  Value keep;
  switch (mod.kind) {
  case Kind::Document:
    keep = cmp(P::eq, capture(0, row), capture(1, key));
    break;
  case Kind::PrefixLM: {
    Value prefix = arith::IndexCastOp::create(
        b, loc, idx,
        tensor::ExtractOp::create(b, loc, block->getArgument(4 + firstCapture),
                                  ValueRange{batch}));
    keep = either(cmp(P::sle, key, row), cmp(P::slt, key, prefix));
    break;
  }
  case Kind::DilatedSlidingWindow:
    keep = both(cmp(P::sle, absD(), c(mod.window * mod.dilation)),
                cmp(P::eq, rem(d, mod.dilation), c(0)));
    break;
  case Kind::Strided:
    keep = both(cmp(P::sge, d, c(0)),
                either(cmp(P::slt, d, c(mod.stride)),
                       cmp(P::eq, rem(d, mod.stride), c(0))));
    break;
  case Kind::Fixed: {
    Value sameBlock =
        cmp(P::eq, arith::DivSIOp::create(b, loc, key, c(mod.stride)),
            arith::DivSIOp::create(b, loc, row, c(mod.stride)));
    Value summary =
        cmp(P::sge, rem(key, mod.stride), c(mod.stride - mod.summary));
    keep = both(cmp(P::sle, key, row), either(sameBlock, summary));
    break;
  }
  case Kind::Longformer: {
    Type i32 = b.getI32Type();
    Value zero = arith::ConstantOp::create(b, loc, b.getIntegerAttr(i32, 0));
    keep = either(cmp(P::sle, absD(), c(mod.window)),
                  either(cmp(P::ne, capture(0, row), zero),
                         cmp(P::ne, capture(1, key), zero)));
    break;
  }
  case Kind::Mlir:
    llvm_unreachable("built by buildModFuncRegion");
  }
  mlir::attn::YieldOp::create(b, loc, keep);
}

/// The spec's named score_mod and mask_mod as the regions of `op` (an
/// attn.attention or attn.online_attention whose captures are the spec's).
void buildModRegions(OpBuilder &b, Location loc, mlir::Operation *op,
                     ValueRange captures, const AttentionSpec &spec) {
  std::optional<unsigned> sizes;
  if (needsCaptureSizes(spec))
    sizes = captures.size() - 1;
  if (spec.scoreMod && spec.scoreMod->kind == attn::ScoreModSpec::Kind::Mlir)
    attn::buildModFuncRegion(b, loc, op->getRegion(0), captures,
                             spec.scoreMod->func, /*isScoreMod=*/true, 0,
                             sizes);
  else if (spec.scoreMod)
    buildScoreModRegion(b, loc, op->getRegion(0), captures, *spec.scoreMod,
                        spec.qHeads);
  // The mask_mod's captures follow the score_mod's.
  unsigned first = spec.scoreModCaptures().size();
  if (spec.maskMod && spec.maskMod->kind == attn::MaskModSpec::Kind::Mlir)
    attn::buildModFuncRegion(b, loc, op->getRegion(1), captures,
                             spec.maskMod->func, /*isScoreMod=*/false, first,
                             sizes);
  else if (spec.maskMod)
    buildMaskModRegion(b, loc, op->getRegion(1), captures, *spec.maskMod,
                       first);
}
} // namespace

OwningOpRef<ModuleOp> attn::buildKernelModule(MLIRContext &ctx,
                                              const AttentionSpec &spec,
                                              bool workgroupRange,
                                              int64_t kvSplits) {
  ctx.loadDialect<func::FuncDialect, bufferization::BufferizationDialect,
                  memref::MemRefDialect, tensor::TensorDialect,
                  mlir::arith::ArithDialect, mlir::math::MathDialect,
                  mlir::attn::AttnDialect>();
  EntryBuilder e(ctx, spec);
  OpBuilder &b = e.b;
  Location loc = e.loc;
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  std::vector<KernelOperand> operands = kernelOperands(spec);
  FloatAttr scale = b.getF32FloatAttr(spec.scaleValue());

  if (kvSplits <= 1) {
    SmallVector<Type> types = e.operandTypes(operands);
    func::FuncOp func = e.entry(kKernelEntry, types, 0, workgroupRange);
    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    SmallVector<Value> outs, outMemRefs;
    Inputs in = readInputs(e, spec, body, operands, &outs, &outMemRefs);
    SmallVector<Type> resultTypes =
        llvm::map_to_vector(outs, [](Value v) { return v.getType(); });
    auto attention = mlir::attn::AttentionOp::create(
        b, loc, resultTypes, in.query, in.key, in.value, in.mask, in.bias,
        in.kvLens, in.captures, /*offsets=*/ValueRange{}, Value(), Value(),
        scale, e.maskKind(/*forceTopLeft=*/false), outs);
    buildModRegions(b, loc, attention, in.captures, spec);
    for (auto [res, dest] : llvm::zip(attention.getResults(), outMemRefs))
      e.writeBack(res, dest);
    func::ReturnOp::create(b, loc);
    return module;
  }

  // Split-KV: @attn_kernel(inputs..., workspace..., split, range) computes
  // the online-softmax state of split `split` of the keys;
  // @attn_kernel_merge(workspace..., outputs..., range) merges the splits.
  SmallVector<KernelOperand> inputs, outputs;
  for (KernelOperand op : operands)
    (op == KernelOperand::Output || op == KernelOperand::Lse ? outputs : inputs)
        .push_back(op);
  SmallVector<Type> wsTypes = e.workspaceTypes(kvSplits);
  {
    SmallVector<Type> types = e.operandTypes(inputs);
    types.append(wsTypes.begin(), wsTypes.end());
    func::FuncOp func = e.entry(kKernelEntry, types, 1, workgroupRange);
    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    Inputs in = readInputs(e, spec, body, inputs);
    Value split = body->getArgument(types.size());
    // Keys [k0, k0 + size) of this split.
    auto idx = [&](int64_t v) { return mlir::arith::ConstantIndexOp::create(b, loc, v); };
    Value sk = tensor::DimOp::create(b, loc, in.key, 2);
    Value chunk = mlir::arith::CeilDivSIOp::create(b, loc, sk, idx(kvSplits));
    Value k0 = mlir::arith::MulIOp::create(b, loc, split, chunk);
    Value size = mlir::arith::MaxSIOp::create(
        b, loc,
        mlir::arith::MinSIOp::create(b, loc, chunk,
                                     mlir::arith::SubIOp::create(b, loc, sk, k0)),
        idx(0));
    auto keySlice = [&](Value t, unsigned keyDim) -> Value {
      if (!t)
        return t;
      auto type = cast<RankedTensorType>(t.getType());
      SmallVector<mlir::OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
      SmallVector<mlir::OpFoldResult> sizes =
          mlir::tensor::getMixedSizes(b, loc, t);
      SmallVector<mlir::OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
      offsets[keyDim] = k0;
      sizes[keyDim] = size;
      return tensor::ExtractSliceOp::create(b, loc, t, offsets, sizes, strides);
    };
    // A bottom-right alignment refers to the whole key range: fold its
    // shift into the query position (the split tiles are top-left).
    Value qOff = idx(0);
    if (mlir::attn::MaskKindAttrInterface kind =
            e.maskKind(/*forceTopLeft=*/false))
      qOff = kind.buildDiagonalShift(
          b, loc, tensor::DimOp::create(b, loc, in.query, 2), sk);
    // The running state starts in the workspace slot of this split: the
    // fills are moved into the workgroups by attn-tile-attention, so each
    // workgroup initialises and writes only its own tile of the slot.
    SmallVector<Value> state, views;
    SmallVector<Type> stateTypes;
    for (unsigned i = 0; i < 3; ++i) {
      Value ws = body->getArgument(inputs.size() + i);
      auto wsType = cast<MemRefType>(ws.getType());
      SmallVector<mlir::OpFoldResult> offsets(wsType.getRank(), b.getIndexAttr(0));
      offsets[0] = split;
      SmallVector<mlir::OpFoldResult> sizes = mlir::memref::getMixedSizes(b, loc, ws);
      sizes[0] = b.getIndexAttr(1);
      SmallVector<mlir::OpFoldResult> strides(wsType.getRank(), b.getIndexAttr(1));
      auto viewType = mlir::memref::SubViewOp::inferRankReducedResultType(
          wsType.getShape().drop_front(), wsType, offsets, sizes, strides);
      Value view = mlir::memref::SubViewOp::create(
          b, loc, cast<MemRefType>(viewType), ws, offsets, sizes, strides);
      views.push_back(view);
      double init = i == 1 ? -std::numeric_limits<double>::infinity() : 0.0;
      Value fill = mlir::linalg::FillOp::create(
                       b, loc,
                       ValueRange{mlir::arith::ConstantOp::create(
                           b, loc, b.getF32FloatAttr(init))},
                       ValueRange{e.asTensor(view, /*writable=*/true)})
                       .getResult(0);
      state.push_back(fill);
      stateTypes.push_back(fill.getType());
    }
    // With score_mod / mask_mod regions the op takes the four-offset form
    // (absolute batch, head, query row, key: the regions see the split's
    // keys at their positions in the whole range), and the regions start by
    // taking the shift folded into q_offset back out of q_idx.
    SmallVector<Value> offsets = {qOff, k0};
    if (spec.hasModRegions())
      offsets = {idx(0), idx(0), qOff, k0};
    auto online = mlir::attn::OnlineAttentionOp::create(
        b, loc, stateTypes, in.query, keySlice(in.key, 2),
        keySlice(in.value, 2), keySlice(in.mask, 3), keySlice(in.bias, 3),
        in.kvLens, in.captures, offsets, Value(), Value(), scale,
        e.maskKind(/*forceTopLeft=*/true), state);
    if (spec.hasModRegions()) {
      buildModRegions(b, loc, online, in.captures, spec);
      mlir::attn::shiftModRegionRows(b, loc, online, qOff);
    }
    for (auto [res, view] : llvm::zip(online.getResults(), views))
      e.writeBack(res, view);
    func::ReturnOp::create(b, loc);
  }
  {
    b.setInsertionPointToEnd(module->getBody());
    SmallVector<Type> types(wsTypes);
    for (KernelOperand op : outputs)
      types.push_back(e.operandType(op));
    func::FuncOp func = e.entry(kMergeEntry, types, 0, workgroupRange);
    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    SmallVector<Value> ws, outs;
    for (unsigned i = 0; i < 3; ++i)
      ws.push_back(e.asTensor(body->getArgument(i), /*writable=*/false));
    for (unsigned i = 0; i < outputs.size(); ++i)
      outs.push_back(e.asTensor(body->getArgument(3 + i), /*writable=*/true));
    SmallVector<Value> results =
        mlir::attn::mergeOnlineAttentionPartials(b, loc, ws[0], ws[1], ws[2], outs);
    for (auto [i, res] : llvm::enumerate(results))
      e.writeBack(res, body->getArgument(3 + i));
    func::ReturnOp::create(b, loc);
  }
  return module;
}

mlir::attn::AttentionProblem
attn::getAttentionProblem(const AttentionSpec &spec) {
  using mlir::attn::AttentionProblem;
  auto size = [](const std::optional<int64_t> &v) {
    return v ? *v : ShapedType::kDynamic;
  };
  AttentionProblem p;
  p.batch = size(spec.batch);
  p.qHeads = spec.qHeads;
  p.kvHeads = spec.kvHeads;
  p.qLen = size(spec.qLen);
  p.kvLen = size(spec.kvLen);
  p.headDim = spec.headDim;
  p.vHeadDim = spec.vHeadDim;
  p.elementType = spec.dtype == DType::BF16 ? AttentionProblem::ElementType::BF16
                  : spec.dtype == DType::F16
                      ? AttentionProblem::ElementType::F16
                      : AttentionProblem::ElementType::F32;
  std::optional<MaskSpec> band = attentionBand(spec);
  p.slidingWindow = band && band->kind == MaskSpec::Kind::SlidingWindow;
  p.keyPadding = spec.findMask(MaskSpec::Kind::KeyPadding) != nullptr;
  return p;
}

mlir::attn::AttentionTileSizes
attn::selectCPUTileSizes(const AttentionSpec &spec,
                         const mlir::attn::CPUTargetInfo &target) {
  return mlir::attn::selectCPUTileSizes(getAttentionProblem(spec), target);
}

const DialectRegistry &attn::kernelDialectRegistry() {
  static const DialectRegistry *registry = [] {
    auto *r = new DialectRegistry();
    mlir::registerAllDialects(*r);
    mlir::registerAllExtensions(*r);
    mlir::registerAllToLLVMIRTranslations(*r);
    mlir::attn::registerAttnDialect(*r);
    return r;
  }();
  return *registry;
}
