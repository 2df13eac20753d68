//===- CPUPlanStages.cpp - decide each CPU tile stage's lowering on tensors
//-===//
//
// attn-cpu-plan-stages: before bufferization, while a stage's init operand
// is an SSA value, decides how attn-cpu-lower-stages lowers each stage of a
// tile (CPUTileLowering.h, "Planning on tensors"):
//
//   * the stage's function, read from its structure (matchStage), is
//     recorded as kPlannedKernelAttr; after bufferization the lowering
//     takes that microkernel only if the body still matches it;
//   * a producer whose write a microkernel folds in (the zero fill of a
//     score contraction, the -inf fill of a row max, the row rescale of the
//     P V accumulator) is folded only when it is the stage's init operand
//     and the stage is its only reader: that producer is tagged
//     kFoldedIntoAttr, so that after bufferization, where the same fact
//     would be a guess from op order, the lowering finds it by its tag and
//     the buffer they share.
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"
#include "attn/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CPUPLANSTAGESPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cpu;

namespace {

/// The linalg.fill of `value` that produces `init`, read by nothing but
/// `stage`.
linalg::FillOp foldableFill(Value init, Operation *stage, double value) {
  auto fill = init.getDefiningOp<linalg::FillOp>();
  if (!fill || !init.hasOneUse() || *init.getUsers().begin() != stage)
    return nullptr;
  auto cst = fill.getInputs().front().getDefiningOp<arith::ConstantOp>();
  auto f = cst ? dyn_cast<FloatAttr>(cst.getValue()) : FloatAttr();
  if (!f || f.getValueAsDouble() != value)
    return nullptr;
  return fill;
}

/// The row rescale stage that produces `init`, read by nothing but `stage`.
linalg::GenericOp foldableRescale(Value init, Operation *stage) {
  auto rescale = init.getDefiningOp<linalg::GenericOp>();
  if (!rescale || !init.hasOneUse() || *init.getUsers().begin() != stage ||
      !rescale->hasAttr(kStageAttr) ||
      matchStage(rescale).kind != StageMatch::Kind::Rescale)
    return nullptr;
  return rescale;
}

struct CPUPlanStagesPass
    : attn::impl::CPUPlanStagesPassBase<CPUPlanStagesPass> {
  using Base::Base;
  void runOnOperation() override {
    using K = StageMatch::Kind;
    SmallVector<linalg::GenericOp> stages;
    WalkResult walk = getOperation()->walk([&](linalg::GenericOp op) {
      if (!op->hasAttr(kStageAttr))
        return WalkResult::advance();
      if (!op.hasPureTensorSemantics()) {
        op.emitOpError("CPU stage planning expects a stage on tensors; run "
                       "it before bufferization");
        return WalkResult::interrupt();
      }
      stages.push_back(op);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    Builder b(&getContext());
    for (linalg::GenericOp op : stages) {
      StageMatch match = matchStage(op);
      op->setAttr(kPlannedKernelAttr,
                  b.getStringAttr(getStageKindName(match.kind)));
      Value init = op.getDpsInits()[0];
      Operation *folded = nullptr;
      switch (match.kind) {
      case K::ScoresLanes:
      case K::ScoresPairs:
      case K::ScoresRows:
        folded = foldableFill(init, op, 0.0);
        break;
      case K::MaxLanes:
      case K::MaxRows:
        folded = foldableFill(init, op, kNegInf);
        break;
      case K::ProbsTimesValue:
        folded = foldableRescale(init, op);
        break;
      default:
        break;
      }
      if (folded)
        folded->setAttr(kFoldedIntoAttr,
                        b.getStringAttr(getStageKindName(match.kind)));
      if (!remarks)
        continue;
      InFlightDiagnostic remark = emitRemark(op.getLoc())
                                  << "stage '" << stageName(op)
                                  << "': " << getStageKindName(match.kind);
      if (folded)
        remark << ", folds in its init's "
               << (isa<linalg::FillOp>(folded) ? "fill" : "row rescale");
      if (match.kind == K::None)
        remark << " (" << match.reason << ")";
    }
  }
};

} // namespace
