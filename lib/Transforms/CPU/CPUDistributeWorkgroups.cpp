//===- CPUDistributeWorkgroups.cpp - workgroup forall -> range loop -------===//

#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CPUDISTRIBUTEWORKGROUPSPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

int64_t mlir::attn::getWorkgroupCount(int64_t batch, int64_t qHeads,
                                      int64_t qLen,
                                      const AttentionTileSizes &sizes) {
  return getWorkgroupGrid(batch, qHeads, qLen, sizes).count();
}

LogicalResult mlir::attn::distributeWorkgroups(RewriterBase &rewriter,
                                               scf::ForallOp forall,
                                               Value begin, Value end) {
  if (!forall.isNormalized())
    return forall.emitOpError("workgroup forall must have zero lower bounds "
                              "and unit steps");
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(forall);
  Location loc = forall.getLoc();
  SmallVector<OpFoldResult> counts = forall.getMixedUpperBound();
  if (!begin) {
    begin = arith::ConstantIndexOp::create(rewriter, loc, 0);
    end = arith::ConstantIndexOp::create(rewriter, loc, 1);
    for (OpFoldResult c : counts)
      end = rewriter.createOrFold<arith::MulIOp>(
          loc, end, getValueOrCreateConstantIndexOp(rewriter, loc, c));
  }
  Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
  auto loop = scf::ForOp::create(rewriter, loc, begin, end, one,
                                 forall.getOutputs());
  rewriter.setInsertionPointToStart(loop.getBody());
  auto ids = affine::AffineDelinearizeIndexOp::create(
      rewriter, loc, loop.getInductionVar(), counts, /*hasOuterBound=*/true);

  IRMapping mapping;
  mapping.map(forall.getInductionVars(), ids.getResults());
  mapping.map(forall.getRegionIterArgs(), loop.getRegionIterArgs());
  for (Operation &op : forall.getBody()->without_terminator())
    rewriter.clone(op, mapping);

  // parallel_insert_slice -> insert_slice into the running value.
  SmallVector<Value> current(loop.getRegionIterArgs());
  for (Operation &op : forall.getTerminator().getYieldingOps()) {
    auto insert = cast<tensor::ParallelInsertSliceOp>(&op);
    auto dest = cast<BlockArgument>(insert.getDest());
    unsigned idx = dest.getArgNumber() - forall.getRank();
    auto remap = [&](ValueRange values) {
      return llvm::map_to_vector(
          values, [&](Value v) { return mapping.lookupOrDefault(v); });
    };
    current[idx] = tensor::InsertSliceOp::create(
        rewriter, insert.getLoc(), mapping.lookup(insert.getSource()),
        current[idx], remap(insert.getOffsets()), remap(insert.getSizes()),
        remap(insert.getStrides()), insert.getStaticOffsets(),
        insert.getStaticSizes(), insert.getStaticStrides());
  }
  scf::YieldOp::create(rewriter, loc, current);
  rewriter.replaceOp(forall, loop.getResults());
  return success();
}

namespace {
struct CPUDistributeWorkgroupsPass
    : attn::impl::CPUDistributeWorkgroupsPassBase<CPUDistributeWorkgroupsPass> {
  using Base::Base;
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    Value begin, end;
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      if (func.getArgAttr(i, kWorkgroupBeginAttr))
        begin = func.getArgument(i);
      if (func.getArgAttr(i, kWorkgroupEndAttr))
        end = func.getArgument(i);
    }
    if (!begin != !end) {
      func.emitOpError() << "needs both " << kWorkgroupBeginAttr << " and "
                         << kWorkgroupEndAttr << " arguments";
      return signalPassFailure();
    }
    SmallVector<scf::ForallOp> foralls;
    func.walk([&](scf::ForallOp forall) {
      std::optional<ArrayAttr> mapping = forall.getMapping();
      if (mapping && !mapping->empty() &&
          isa<gpu::GPUBlockMappingAttr>(mapping->getValue().front()))
        foralls.push_back(forall);
    });
    if (begin && foralls.size() > 1) {
      func.emitOpError("a kernel with a workgroup range must hold exactly one "
                       "workgroup forall");
      return signalPassFailure();
    }
    IRRewriter rewriter(&getContext());
    for (scf::ForallOp forall : foralls)
      if (failed(distributeWorkgroups(rewriter, forall, begin, end)))
        return signalPassFailure();
  }
};
} // namespace
