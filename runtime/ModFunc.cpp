//===- ModFunc.cpp - user-defined score_mod / mask_mod functions ----------===//
//
// The "mlir" kind of the spec's score_mod and mask_mod (ModFuncSpec): the
// check and canonical form of the user's func.func, and its clone into the
// attention op's region with every capture read clamped into bounds.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "attn/Support/NestingDepth.h"
#include "dialect/attn/IR/AttnAttrs.h"
#include "dialect/attn/IR/AttnDialect.h"
#include "dialect/attn/IR/AttnOpDetail.h"
#include "dialect/attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Parser/Parser.h"

using namespace mlir;
using ::attn::CaptureSpec;
using ::attn::DType;
using ::attn::MaskSpec;
using ::attn::ModFuncSpec;

namespace {
const char *modKey(bool isScoreMod) {
  return isScoreMod ? "score_mod" : "mask_mod";
}

/// The leading argument types (score, b, h, q_idx, kv_idx or b, h, q_idx,
/// kv_idx) and the result type of a score_mod / mask_mod.
std::pair<SmallVector<Type>, Type> modSignature(MLIRContext &ctx,
                                                bool isScoreMod) {
  Type idx = IndexType::get(&ctx), f32 = Float32Type::get(&ctx);
  if (isScoreMod)
    return {{f32, idx, idx, idx, idx}, f32};
  return {{idx, idx, idx, idx}, IntegerType::get(&ctx, 1)};
}

std::optional<DType> captureDType(Type elt) {
  if (elt.isF32())
    return DType::F32;
  if (elt.isSignlessInteger(32))
    return DType::I32;
  if (elt.isSignlessInteger(64))
    return DType::I64;
  return std::nullopt;
}

std::string typeString(Type type) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << type;
  return s;
}

/// At most this many characters of a diagnostic are kept in an error.
constexpr size_t kMaxMessage = 200;
/// The deepest bracket nesting of a function's text.
constexpr unsigned kMaxNesting = 64;

/// Parses `mod.func` into `ctx` and checks it against the signature of
/// ModFuncSpec for `mod.captures`; the one func.func it holds, or an error
/// naming the key and, for a diagnostic, the line and column in the text.
llvm::Expected<func::FuncOp> parseModFunc(MLIRContext &ctx,
                                          const ModFuncSpec &mod,
                                          bool isScoreMod,
                                          OwningOpRef<ModuleOp> &holder) {
  std::string key = std::string("'") + modKey(isScoreMod) + ".func'";
  auto fail = [&](const llvm::Twine &msg) -> llvm::Error {
    std::string text = msg.str();
    if (text.size() > kMaxMessage)
      text = text.substr(0, kMaxMessage) + "...";
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "spec: " + key + ": " + text);
  };
  // The first error diagnostic, with its position in the text.
  std::string diagnostic;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    if (diag.getSeverity() != DiagnosticSeverity::Error || !diagnostic.empty())
      return success();
    std::string where;
    if (auto file = dyn_cast<FileLineColLoc>(diag.getLocation()))
      where = std::to_string(file.getLine()) + ":" +
              std::to_string(file.getColumn()) + ": ";
    diagnostic = where + diag.str();
    // One line: the first line of the message.
    diagnostic = diagnostic.substr(0, diagnostic.find('\n'));
    while (!diagnostic.empty() && diagnostic.back() == ' ')
      diagnostic.pop_back();
    return success();
  });
  // The parser recurses per nesting level: a function of scalar ops nests
  // a few levels, a hostile text thousands (a stack overflow).
  if (std::optional<size_t> at =
          mlir::attn::findNestingOverflow(mod.func, kMaxNesting))
    return fail("nests brackets deeper than " + llvm::Twine(kMaxNesting) +
                " levels (at byte " + llvm::Twine(*at) + ")");
  ctx.loadDialect<func::FuncDialect, arith::ArithDialect, math::MathDialect,
                  tensor::TensorDialect>();
  ParserConfig config(&ctx);
  holder = parseSourceString<ModuleOp>(mod.func, config, modKey(isScoreMod));
  if (!holder)
    return fail(diagnostic.empty() ? "does not parse" : diagnostic);
  Block *body = holder->getBody();
  auto fn =
      body->empty() ? func::FuncOp() : dyn_cast<func::FuncOp>(body->front());
  if (!fn || !llvm::hasSingleElement(*body) || fn.isExternal())
    return fail("must hold one func.func with a body, and nothing else");

  auto [leading, result] = modSignature(ctx, isScoreMod);
  FunctionType type = fn.getFunctionType();
  size_t want = leading.size() + mod.captures.size();
  std::string signature;
  llvm::raw_string_ostream os(signature);
  llvm::interleaveComma(leading, os);
  if (type.getNumInputs() != want || type.getNumResults() != 1 ||
      type.getResult(0) != result ||
      TypeRange(type.getInputs().take_front(leading.size())) !=
          TypeRange(leading))
    return fail("must be (" + signature + ", one tensor per capture: " +
                llvm::Twine(mod.captures.size()) + ") -> " +
                typeString(result) + ", got " + typeString(type));
  for (auto [n, capture] : llvm::enumerate(mod.captures)) {
    Type arg = type.getInput(leading.size() + n);
    auto tensor = dyn_cast<RankedTensorType>(arg);
    std::string what = "argument " + std::to_string(leading.size() + n) +
                       " (capture '" + capture.name + "')";
    if (!tensor || !captureDType(tensor.getElementType()))
      return fail(what + " must be a ranked tensor of f32, i32 or i64, got " +
                  typeString(arg));
    if (tensor.getRank() != static_cast<int64_t>(capture.shape.size()))
      return fail(what + " must have rank " +
                  llvm::Twine(capture.shape.size()) + " (its 'shape'), got " +
                  typeString(arg));
    for (auto [d, dim] : llvm::enumerate(capture.shape)) {
      int64_t size = tensor.getDimSize(d);
      if (ShapedType::isDynamic(size))
        continue;
      if (dim.kind != CaptureSpec::Dim::Fixed || dim.size != size)
        return fail(what + " dimension " + llvm::Twine(d) +
                    " must be ? or its 'shape' entry, got " + typeString(arg));
    }
  }
  if (!fn.getBody().hasOneBlock())
    return fail("must have one block");
  if (failed(mlir::attn::verifyModBody(fn.getBody().front(), leading.size(),
                                       modKey(isScoreMod))))
    return fail(diagnostic);
  return fn;
}
} // namespace

namespace attn {
llvm::Expected<ModFuncSpec> resolveModFunc(const ModFuncSpec &mod,
                                           bool isScoreMod) {
  MLIRContext ctx(MLIRContext::Threading::DISABLED);
  OwningOpRef<ModuleOp> holder;
  llvm::Expected<func::FuncOp> fn = parseModFunc(ctx, mod, isScoreMod, holder);
  if (!fn)
    return fn.takeError();
  ModFuncSpec resolved = mod;
  unsigned first = isScoreMod ? 5 : 4;
  for (auto [n, capture] : llvm::enumerate(resolved.captures))
    capture.dtype =
        *captureDType(cast<RankedTensorType>(fn->getArgumentTypes()[first + n])
                          .getElementType());
  // The canonical text: MLIR's printed form (value names by position, one
  // spelling of every op), the function named after its role, each capture
  // typed by its shape (fixed sizes static, run-time ones `?`: the reads,
  // the only uses, are the same at either type).
  fn->setSymName(modKey(isScoreMod));
  Block &entry = fn->getBody().front();
  for (auto [n, capture] : llvm::enumerate(resolved.captures)) {
    SmallVector<int64_t> shape;
    for (CaptureSpec::Dim d : capture.shape)
      shape.push_back(d.kind == CaptureSpec::Dim::Fixed ? d.size
                                                        : ShapedType::kDynamic);
    BlockArgument arg = entry.getArgument(first + n);
    arg.setType(RankedTensorType::get(
        shape, cast<RankedTensorType>(arg.getType()).getElementType()));
  }
  fn->setType(FunctionType::get(&ctx, entry.getArgumentTypes(),
                                fn->getFunctionType().getResults()));
  resolved.func.clear();
  llvm::raw_string_ostream os(resolved.func);
  fn->print(os);
  return resolved;
}

std::optional<MaskSpec> modFuncBand(const ModFuncSpec &mod) {
  MLIRContext ctx(MLIRContext::Threading::DISABLED);
  ctx.loadDialect<mlir::attn::AttnDialect>(); // the mask kind attributes
  OwningOpRef<ModuleOp> holder;
  llvm::Expected<func::FuncOp> fn =
      parseModFunc(ctx, mod, /*isScoreMod=*/false, holder);
  if (!fn) { // validate() reports it
    llvm::consumeError(fn.takeError());
    return std::nullopt;
  }
  Block &body = fn->getBody().front();
  mlir::attn::KeyBand band =
      mlir::attn::impliedKeyBand(body.getTerminator()->getOperand(0),
                                 body.getArgument(2), body.getArgument(3));
  // The dialect's widening to a top-left mask kind, as a MaskSpec.
  mlir::attn::MaskKindAttrInterface kind = band.toTopLeftMaskKind(&ctx);
  if (!kind)
    return std::nullopt;
  MaskSpec m;
  if (auto window = dyn_cast<mlir::attn::SlidingWindowAttr>(kind)) {
    m.kind = MaskSpec::Kind::SlidingWindow;
    m.left = window.getLeft();
    m.right = window.getRight();
  }
  return m;
}

void buildModFuncRegion(OpBuilder &b, Location loc, Region &region,
                        ValueRange captures, const ModFuncSpec &mod,
                        bool isScoreMod, unsigned firstCapture,
                        std::optional<unsigned> sizesCapture) {
  MLIRContext &ctx = *b.getContext();
  OwningOpRef<ModuleOp> holder;
  llvm::Expected<func::FuncOp> fn = parseModFunc(ctx, mod, isScoreMod, holder);
  // AttentionSpec::validate checked the function: it parses as it did then.
  if (!fn)
    llvm::report_fatal_error(llvm::toString(fn.takeError()).c_str());
  auto [leading, result] = modSignature(ctx, isScoreMod);
  Block *block = new Block();
  region.push_back(block);
  for (Type t : leading)
    block->addArgument(t, loc);
  for (Value capture : captures)
    block->addArgument(capture.getType(), loc);
  Block &src = fn->getBody().front();
  IRMapping map;
  for (unsigned i = 0; i < leading.size(); ++i)
    map.map(src.getArgument(i), block->getArgument(i));
  for (unsigned n = 0; n < mod.captures.size(); ++n)
    map.map(src.getArgument(leading.size() + n),
            block->getArgument(leading.size() + firstCapture + n));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(block);
  for (Operation &op : src.without_terminator()) {
    Operation *clone = b.clone(op, map);
    auto extract = dyn_cast<tensor::ExtractOp>(clone);
    if (!extract)
      continue;
    // Clamp each index into [0, size): a size the kernel's type does not
    // fix (batch, q_len or kv_len at run time) is read from the sizes
    // capture [B, Sq, Sk].
    auto arg = cast<BlockArgument>(extract.getTensor());
    const CaptureSpec &capture =
        mod.captures[arg.getArgNumber() - leading.size() - firstCapture];
    auto type = cast<RankedTensorType>(arg.getType());
    b.setInsertionPoint(extract);
    auto c = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    for (unsigned d = 0; d < type.getRank(); ++d) {
      Value last;
      if (!type.isDynamicDim(d)) {
        last = c(type.getDimSize(d) - 1);
      } else {
        assert(sizesCapture && "a dynamic capture size needs the sizes");
        unsigned which = capture.shape[d].kind == CaptureSpec::Dim::Batch  ? 0
                         : capture.shape[d].kind == CaptureSpec::Dim::QLen ? 1
                                                                           : 2;
        Value size = tensor::ExtractOp::create(
            b, loc, block->getArgument(leading.size() + *sizesCapture),
            ValueRange{c(which)});
        last = arith::SubIOp::create(b, loc, size, c(1));
      }
      Value index = extract.getIndices()[d];
      Value clamped = arith::MinSIOp::create(
          b, loc, arith::MaxSIOp::create(b, loc, index, c(0)), last);
      extract.getIndicesMutable()[d].set(clamped);
    }
    b.setInsertionPointToEnd(block);
  }
  mlir::attn::YieldOp::create(b, loc,
                              map.lookup(src.getTerminator()->getOperand(0)));
}
} // namespace attn
