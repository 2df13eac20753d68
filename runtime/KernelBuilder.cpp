//===- KernelBuilder.cpp - attention spec -> MLIR kernel module -----------===//

#include "KernelBuilder.h"

#include "attn/InitAttn.h"
#include "dialect/attn/IR/AttnOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/InitAllDialects.h"
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
using attn::AttentionSpec;
using attn::DType;
using attn::MaskSpec;

std::vector<attn::KernelOperand>
attn::kernelOperands(const AttentionSpec &spec) {
  std::vector<KernelOperand> ops = {KernelOperand::Query, KernelOperand::Key,
                                    KernelOperand::Value};
  if (spec.findMask(MaskSpec::Kind::Tensor))
    ops.push_back(KernelOperand::Mask);
  if (spec.findMask(MaskSpec::Kind::KeyPadding))
    ops.push_back(KernelOperand::KvLens);
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

OwningOpRef<ModuleOp> attn::buildKernelModule(MLIRContext &ctx,
                                              const AttentionSpec &spec,
                                              bool workgroupRange) {
  ctx.loadDialect<func::FuncDialect, bufferization::BufferizationDialect,
                  memref::MemRefDialect, tensor::TensorDialect,
                  mlir::attn::AttnDialect>();
  OpBuilder b(&ctx);
  Location loc = b.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());

  int64_t B = dimOf(spec.batch), Sq = dimOf(spec.qLen), Sk = dimOf(spec.kvLen);
  Type elt = elementType(ctx, spec.dtype);
  Type f32 = b.getF32Type();
  SmallVector<Type> argTypes;
  std::vector<KernelOperand> operands = kernelOperands(spec);
  for (KernelOperand op : operands) {
    switch (op) {
    case KernelOperand::Query:
      argTypes.push_back(
          stridedMemRef(ctx, {B, spec.qHeads, Sq, spec.headDim}, elt));
      break;
    case KernelOperand::Key:
      argTypes.push_back(
          stridedMemRef(ctx, {B, spec.kvHeads, Sk, spec.headDim}, elt));
      break;
    case KernelOperand::Value:
      argTypes.push_back(
          stridedMemRef(ctx, {B, spec.kvHeads, Sk, spec.vHeadDim}, elt));
      break;
    case KernelOperand::Mask: {
      const MaskSpec *m = spec.findMask(MaskSpec::Kind::Tensor);
      argTypes.push_back(stridedMemRef(
          ctx,
          {m->batchBroadcast ? 1 : B, m->headBroadcast ? 1 : spec.qHeads,
           m->queryBroadcast ? 1 : Sq, Sk},
          elementType(ctx, m->dtype)));
      break;
    }
    case KernelOperand::KvLens:
      argTypes.push_back(stridedMemRef(
          ctx, {B},
          elementType(ctx, spec.findMask(MaskSpec::Kind::KeyPadding)->dtype)));
      break;
    case KernelOperand::Output:
      argTypes.push_back(
          stridedMemRef(ctx, {B, spec.qHeads, Sq, spec.vHeadDim}, elt));
      break;
    case KernelOperand::Lse:
      argTypes.push_back(stridedMemRef(ctx, {B, spec.qHeads, Sq}, f32));
      break;
    }
  }
  unsigned numMemRefs = argTypes.size();
  if (workgroupRange) {
    argTypes.push_back(b.getIndexType());
    argTypes.push_back(b.getIndexType());
  }
  auto func = func::FuncOp::create(b, loc, kKernelEntry,
                                   b.getFunctionType(argTypes, {}));
  func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  if (workgroupRange) {
    func.setArgAttr(numMemRefs, mlir::attn::kWorkgroupBeginAttr,
                    b.getUnitAttr());
    func.setArgAttr(numMemRefs + 1, mlir::attn::kWorkgroupEndAttr,
                    b.getUnitAttr());
  }
  Block *body = func.addEntryBlock();
  b.setInsertionPointToStart(body);

  // Read every memref as a tensor (restrict: no other alias in the kernel).
  Value query, key, value, mask, bias, kvLens;
  SmallVector<Value> outs;
  SmallVector<Value> outMemRefs;
  for (auto [idx, op] : llvm::enumerate(operands)) {
    Value arg = body->getArgument(idx);
    auto memrefType = cast<MemRefType>(arg.getType());
    bool writable = op == KernelOperand::Output || op == KernelOperand::Lse;
    auto tensorType = RankedTensorType::get(memrefType.getShape(),
                                            memrefType.getElementType());
    Value t = bufferization::ToTensorOp::create(b, loc, tensorType, arg,
                                                /*restrict=*/true, writable);
    switch (op) {
    case KernelOperand::Query:
      query = t;
      break;
    case KernelOperand::Key:
      key = t;
      break;
    case KernelOperand::Value:
      value = t;
      break;
    case KernelOperand::Mask:
      (spec.findMask(MaskSpec::Kind::Tensor)->dtype == DType::Bool ? mask
                                                                   : bias) = t;
      break;
    case KernelOperand::KvLens:
      kvLens = t;
      break;
    case KernelOperand::Output:
    case KernelOperand::Lse:
      outs.push_back(t);
      outMemRefs.push_back(arg);
      break;
    }
  }

  // The compile-time mask kind.
  mlir::attn::MaskKindAttrInterface maskKind;
  for (const MaskSpec &m : spec.masks) {
    auto align = m.bottomRight ? mlir::attn::MaskAlignment::BottomRight
                               : mlir::attn::MaskAlignment::TopLeft;
    if (m.kind == MaskSpec::Kind::Causal)
      maskKind = mlir::attn::CausalAttr::get(&ctx, align);
    else if (m.kind == MaskSpec::Kind::SlidingWindow)
      maskKind =
          mlir::attn::SlidingWindowAttr::get(&ctx, m.left, m.right, align);
  }
  SmallVector<Type> resultTypes =
      llvm::map_to_vector(outs, [](Value v) { return v.getType(); });
  auto attention = mlir::attn::AttentionOp::create(
      b, loc, resultTypes, query, key, value, mask, bias, kvLens,
      ValueRange{}, Value(), Value(), b.getF32FloatAttr(spec.scaleValue()),
      maskKind,
      outs);
  for (auto [res, dest] : llvm::zip(attention.getResults(), outMemRefs)) {
    auto m = bufferization::MaterializeInDestinationOp::create(b, loc, res,
                                                               dest);
    m.setRestrict(true);
    m.setWritable(true);
  }
  func::ReturnOp::create(b, loc);
  return module;
}

mlir::attn::AttentionTileSizes
attn::selectCPUTileSizes(const AttentionSpec &spec) {
  mlir::attn::AttentionTileSizes sizes;
  auto roundUp = [](int64_t v, int64_t m) { return (v + m - 1) / m * m; };
  // Query rows sit on the 16 f32 lanes of AVX-512: tiles of 64 rows, or the
  // (rounded) sequence when it is shorter; decoding (up to 4 rows) uses the
  // exact row count, which the CPU lowering handles with keys on the lanes.
  if (spec.qLen)
    sizes.query = *spec.qLen <= 4 ? *spec.qLen
                                  : std::min<int64_t>(64, roundUp(*spec.qLen, 16));
  if (spec.kvLen)
    sizes.key = std::min<int64_t>(64, roundUp(*spec.kvLen, 8));
  // GQA/MQA: one workgroup takes a whole group of query heads, so that each
  // key/value block is loaded once for the group.
  sizes.heads = spec.qHeads / spec.kvHeads;
  return sizes;
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
