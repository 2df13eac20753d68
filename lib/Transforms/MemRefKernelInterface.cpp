//===- MemRefKernelInterface.cpp - tensor functions -> memref kernels -----===//
//
// Gives public functions on tensors the interface of the runtime's kernel
// modules: memref arguments read through bufferization.to_tensor, results
// written into trailing memref arguments by materialize_in_destination (see
// the pass description in Passes.td). This is what lets the CUDA pipeline,
// whose workgroup lowering reads and writes the kernel's memrefs directly,
// take the tensor-form functions the CPU pipeline takes.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/Passes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_MEMREFKERNELINTERFACEPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

/// The kernel memref of a tensor type: same shape and element type, dynamic
/// strides with a unit innermost stride, offset 0.
static MemRefType kernelMemRefType(RankedTensorType type) {
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  if (!strides.empty())
    strides.back() = 1;
  auto layout = StridedLayoutAttr::get(type.getContext(), 0, strides);
  return MemRefType::get(type.getShape(), type.getElementType(), layout);
}

/// Whether `type` has tensors in its signature (the functions to convert).
static bool hasTensors(FunctionType type) {
  auto isTensor = [](Type t) { return isa<TensorType>(t); };
  return llvm::any_of(type.getInputs(), isTensor) ||
         llvm::any_of(type.getResults(), isTensor);
}

static LogicalResult convertFunction(func::FuncOp func) {
  FunctionType type = func.getFunctionType();
  for (auto [what, types] : {std::make_pair("argument", type.getInputs()),
                             std::make_pair("result", type.getResults())})
    for (auto [i, t] : llvm::enumerate(types))
      if (isa<UnrankedTensorType>(t))
        return func.emitOpError()
               << what << " #" << i
               << ": the kernel interface needs a ranked tensor, got " << t;

  Block &entry = func.front();
  Location loc = func.getLoc();
  OpBuilder b(func.getContext());
  b.setInsertionPointToStart(&entry);
  SmallVector<Type> inputs;
  for (BlockArgument arg : entry.getArguments()) {
    auto tensor = dyn_cast<RankedTensorType>(arg.getType());
    if (!tensor) {
      inputs.push_back(arg.getType());
      continue;
    }
    MemRefType memref = kernelMemRefType(tensor);
    arg.setType(memref);
    inputs.push_back(memref);
    auto read = bufferization::ToTensorOp::create(b, arg.getLoc(), tensor, arg,
                                                  /*restrict=*/true);
    arg.replaceAllUsesExcept(read, read);
  }

  // One trailing memref argument per tensor result.
  SmallVector<Type> results;
  SmallVector<std::optional<BlockArgument>> outputs;
  for (Type t : type.getResults()) {
    auto tensor = dyn_cast<RankedTensorType>(t);
    if (!tensor) {
      results.push_back(t);
      outputs.push_back(std::nullopt);
      continue;
    }
    MemRefType memref = kernelMemRefType(tensor);
    inputs.push_back(memref);
    outputs.push_back(entry.addArgument(memref, loc));
  }

  SmallVector<func::ReturnOp> returns;
  func.walk([&](func::ReturnOp ret) { returns.push_back(ret); });
  for (func::ReturnOp ret : returns) {
    b.setInsertionPoint(ret);
    SmallVector<Value> kept;
    for (auto [value, out] : llvm::zip(ret.getOperands(), outputs)) {
      if (!out) {
        kept.push_back(value);
        continue;
      }
      if (auto read = value.getDefiningOp<bufferization::ToTensorOp>())
        if (isa<BlockArgument>(read.getBuffer()) &&
            read.getBuffer().getParentBlock() == &entry)
          return ret.emitOpError()
                 << "returns function argument #"
                 << cast<BlockArgument>(read.getBuffer()).getArgNumber()
                 << ": the kernel output would alias an input";
      bufferization::MaterializeInDestinationOp::create(
          b, ret.getLoc(), TypeRange{}, value, *out, /*restrict=*/true,
          /*writable=*/true);
    }
    func::ReturnOp::create(b, ret.getLoc(), kept);
    ret.erase();
  }
  func.setType(FunctionType::get(func.getContext(), inputs, results));
  // Argument and result attributes no longer line up with the signature.
  func.removeArgAttrsAttr();
  func.removeResAttrsAttr();
  return success();
}

namespace {
struct MemRefKernelInterfacePass
    : attn::impl::MemRefKernelInterfacePassBase<MemRefKernelInterfacePass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (func::FuncOp func :
         llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
      if (func.isExternal() || !func.isPublic())
        continue;
      if (!hasTensors(func.getFunctionType()))
        continue;
      if (!SymbolTable::symbolKnownUseEmpty(func, module)) {
        func.emitOpError("is called within the module: the kernel interface "
                         "would change the signature its callers use");
        return signalPassFailure();
      }
      if (failed(convertFunction(func)))
        return signalPassFailure();
    }
  }
};
} // namespace
