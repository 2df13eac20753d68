//===- CPUHoistStaticAllocations.cpp - tile buffers to function entry -----===//

#include "attn/Transforms/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CPUHOISTSTATICALLOCATIONSPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;

namespace {
struct CPUHoistStaticAllocationsPass
    : attn::impl::CPUHoistStaticAllocationsPassBase<
          CPUHoistStaticAllocationsPass> {
  using Base::Base;
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    Block &entry = func.getBody().front();
    SmallVector<Operation *> allocs;
    func.walk([&](Operation *op) {
      if (!isa<memref::AllocOp, memref::AllocaOp>(op) ||
          op->getBlock() == &entry || op->getNumOperands() != 0)
        return;
      // Not across parallel iterations.
      for (Operation *p = op->getParentOp(); p != func; p = p->getParentOp())
        if (isa<scf::ForallOp, scf::ParallelOp>(p))
          return;
      allocs.push_back(op);
    });
    for (Operation *op : allocs)
      op->moveBefore(&entry, entry.begin());
  }
};
} // namespace
