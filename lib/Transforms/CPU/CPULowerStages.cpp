//===- CPULowerStages.cpp - linalg stages of a CPU tile -> vector code ------===//
//
// Lowers the linalg.generic stages that attn-cpu-decompose-online-attention
// made of each tile (CPUTileLowering.h has the contract), after
// bufferization, as attn-cpu-plan-stages decided on tensors, where each
// stage's structure still says it computes that (CPUStageMatch.cpp), with
// these microkernels:
//
//   scores    register-blocked Q K^T: FMA with each key element broadcast
//             against queries on the lanes (CPUTileScores.cpp), AVX512-BF16
//             dot products of bf16 pairs, AMX tile products
//             (CPUTileAMX.cpp), or keys on the lanes (CPUTileDecode.cpp);
//             the zero fill of its output (planned) is folded in;
//   score, alpha
//             the region vectorizer (CPUVectorizeStage.cpp);
//   max, exp_sum
//             lane-wise over queries (no horizontal reductions), or per row
//             with keys on the lanes (CPUTileReductions.cpp); the -inf fill
//             of the row max is folded in;
//   rescale + pv
//             register-blocked P V with the value dimension on the lanes and
//             each probability broadcast, the rescaling folded into the
//             accumulator loads, per-row guards where a key is kept by only
//             some rows (CPUTileProbsTimesValue.cpp), or AMX tile products.
//
// A stage that matches no microkernel's function stays a linalg.generic
// and is lowered to loops with the rest of the function, which computes
// what its body says.
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"
#include "attn/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <limits>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CPULOWERSTAGESPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cpu;

int64_t mlir::attn::getCPUTileScratchBytes(int64_t batch, int64_t heads,
                                            int64_t query, int64_t key,
                                            int64_t headDim, int64_t vHeadDim,
                                            int64_t vectorWidth, bool amx) {
  // Products of non-negative sizes, saturated at INT64_MAX.
  auto mul = [](std::initializer_list<int64_t> factors) {
    int64_t r = 1;
    for (int64_t f : factors)
      if (f < 0 || __builtin_mul_overflow(r, f, &r))
        return std::numeric_limits<int64_t>::max();
    return r;
  };
  auto add = [](int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max()
                                            : r;
  };
  int64_t vl = std::max<int64_t>(1, vectorWidth);
  int64_t mp = mul({(query + vl - 1) / vl, vl});
  int64_t kp = mul({(key + vl - 1) / vl, vl});
  // The transposed query (f32, or bf16 pairs of the same size in bytes
  // halved, counted as f32), the scores (keys x rows, or rows x keys for
  // row-major decode tiles) and the correction factors.
  int64_t bytes = mul({batch, heads, headDim, mp, 4});
  bytes = add(bytes, std::max(mul({key, mp, 4}), mul({query, kp, 4})));
  bytes = add(bytes, mul({mp, 4}));
  if (amx)
    bytes = add(add(bytes, mul({query, key, 2})), mul({key, vHeadDim, 2}));
  return bytes;
}

namespace {

/// The decomposition's choice of microkernel where two compute the same
/// function (AMX or AVX512-BF16 for bf16 pairs, AMX or FMA for P V): a
/// hint, never a reason to take a body for what it does not compute.
StringRef schemeOf(Operation *op) {
  auto a = op->getAttrOfType<StringAttr>(kSchemeAttr);
  return a ? a.getValue() : StringRef();
}

/// The producer that attn-cpu-plan-stages folded into `op` (tagged
/// kFoldedIntoAttr with `kind`) and that writes `buffer`, op's output: the
/// nearest such op before `op` in its block, provided no op between them
/// uses the buffer (the planner proved this on tensors; it is checked here
/// again on the buffer itself). Null if there is none: bufferization may
/// have given the stage a buffer of its own.
Operation *foldedProducer(Operation *op, Value buffer, StringRef kind) {
  for (Operation *prev = op->getPrevNode(); prev; prev = prev->getPrevNode()) {
    auto tag = prev->getAttrOfType<StringAttr>(kFoldedIntoAttr);
    auto dps = dyn_cast<DestinationStyleOpInterface>(prev);
    if (tag && tag.getValue() == kind && dps && dps.getNumDpsInits() >= 1 &&
        dps.getDpsInits()[0] == buffer)
      return prev;
    for (Operation *user : buffer.getUsers())
      if (prev->isAncestor(user))
        return nullptr;
  }
  return nullptr;
}

Value allocaAtEntry(RewriterBase &rewriter, Operation *op,
                    ArrayRef<int64_t> shape, Type elt) {
  auto func = op->getParentOfType<FunctionOpInterface>();
  OpBuilder::InsertionGuard g(rewriter);
  rewriter.setInsertionPointToStart(&func.getFunctionBody().front());
  return memref::AllocaOp::create(rewriter, op->getLoc(),
                                  MemRefType::get(shape, elt),
                                  rewriter.getI64IntegerAttr(64))
      .getResult();
}

/// Why the microkernel of `match` cannot take the stage's shapes (the
/// structure matched, but a microkernel also needs static sizes, whole
/// vectors where it has no remainder code, and bf16 pairs as views of 2-D
/// buffers), or empty when it can.
std::string microkernelMisfit(linalg::GenericOp op, const StageMatch &match,
                              int64_t vectorWidth, bool amx) {
  using K = StageMatch::Kind;
  for (Value v : op->getOperands())
    if (auto t = dyn_cast<MemRefType>(v.getType()); t && !t.hasStaticShape())
      return "an operand has a dynamic size";
  OperandRange ins = op.getInputs();
  Value out = op.getOutputs()[0];
  auto divides = [](int64_t size, int64_t by) { return size % by == 0; };
  switch (match.kind) {
  case K::ScoresLanes:
  case K::MaxLanes:
  case K::ExpSumLanes: {
    // Queries on the lanes: whole vectors of rows.
    Value scores = match.kind == K::MaxLanes ? ins[0] : out;
    if (!divides(dimOf(scores, 1), vectorWidth))
      return "the query rows are not a whole number of vectors";
    return "";
  }
  case K::ScoresRows:
    if (!divides(dimOf(ins[0], 1), vectorWidth))
      return "head_dim is not a whole number of vectors";
    return "";
  case K::ScoresPairs: {
    for (Value v : {ins[0], ins[1]}) {
      auto expand = v.getDefiningOp<memref::ExpandShapeOp>();
      if (!expand || expand.getSrcType().getRank() != 2 ||
          !expand.getSrcType().getElementType().isBF16())
        return "the bf16 pairs are not views of 2-D bf16 buffers";
    }
    int64_t n = dimOf(out, 0), mp = dimOf(out, 1);
    int64_t d = 2 * cast<MemRefType>(ins[0].getType()).getDimSize(1);
    if (amx && (!divides(n, kAMXTileRows) || !divides(mp, kAMXTileRows) ||
                !divides(d, kAMXPairCols)))
      return "the tile is not whole AMX tiles";
    if (!amx && !divides(mp, vectorWidth))
      return "the query rows are not a whole number of vectors";
    return "";
  }
  case K::ProbsTimesValue:
    if (amx) {
      int64_t m = dimOf(out, 0), dv = dimOf(out, 1), n = dimOf(ins[1], 0);
      if (!divides(m, kAMXTileRows) || !divides(n, kAMXPairCols) ||
          !divides(dv, kAMXTileRows) ||
          !cast<MemRefType>(ins[1].getType()).getElementType().isBF16())
        return "the tile is not whole bf16 AMX tiles";
    }
    return "";
  default:
    return "";
  }
}

/// Lowers one stage by what its structure says it computes (matchStage).
/// Returns the lowering taken, or failure with `reason` for a stage left to
/// the loop lowering.
FailureOr<std::string> lowerStage(RewriterBase &rewriter, linalg::GenericOp op,
                                  int64_t vectorWidth, int64_t vectorRegisters,
                                  std::string &reason) {
  using K = StageMatch::Kind;
  StageMatch match = matchStage(op);
  auto planned = op->getAttrOfType<StringAttr>(kPlannedKernelAttr);
  if (!planned) {
    reason = "no plan: attn-cpu-plan-stages decides a stage's lowering on "
             "tensors";
    return failure();
  }
  if (match.kind == K::None) {
    reason = match.reason;
    return failure();
  }
  if (planned.getValue() != getStageKindName(match.kind)) {
    reason = ("its body no longer computes what was planned on tensors ('" +
              planned.getValue() + "')")
                 .str();
    return failure();
  }
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  StageBuilder sb(rewriter, op.getLoc(), vectorWidth, vectorRegisters);
  // The microkernels read rows with vector loads (a dimension of size 1 is
  // read with scalar loads).
  for (Value v : op->getOperands())
    if (auto t = dyn_cast<MemRefType>(v.getType())) {
      SmallVector<int64_t> strides;
      int64_t offset;
      if (failed(t.getStridesAndOffset(strides, offset)) ||
          (!strides.empty() && strides.back() != 1 &&
           t.getShape().back() != 1)) {
        reason = "an operand is not contiguous in its last dimension";
        return failure();
      }
    }
  bool amxHint = schemeOf(op) == "amx" && !match.rowMajorP && !match.guardZero;
  reason = microkernelMisfit(op, match, vectorWidth, amxHint);
  if (!reason.empty())
    return failure();
  OperandRange ins = op.getInputs();
  OperandRange outs = op.getOutputs();
  std::string what = stringifyStageKind(match.kind).str();
  switch (match.kind) {
  case K::None:
    llvm_unreachable("handled above");
  case K::ScoresLanes:
  case K::ScoresPairs:
  case K::ScoresRows: {
    Operation *fill = foldedProducer(op, outs[0], planned.getValue());
    if (!fill) {
      reason = "no zero fill of its output was folded into it on tensors";
      return failure();
    }
    // bf16 pairs are a dimension of their own in the stage: the
    // microkernels read the 2-D buffers under the expand_shape views.
    auto unpaired = [](Value v) {
      auto expand = v.getDefiningOp<memref::ExpandShapeOp>();
      return expand ? expand.getSrc() : v;
    };
    if (match.kind == K::ScoresLanes) {
      sb.emitScores(ins[0], ins[1], outs[0]);
      what += " (FMA)";
    } else if (match.kind == K::ScoresRows) {
      sb.emitScoresRows(ins[0], ins[1], outs[0]);
    } else if (amxHint) {
      sb.emitScoresAMX(unpaired(ins[0]), unpaired(ins[1]), outs[0]);
      what += " (AMX)";
    } else {
      sb.emitScoresBF16(unpaired(ins[0]), unpaired(ins[1]), outs[0]);
      what += " (AVX512-BF16)";
    }
    rewriter.eraseOp(fill);
    break;
  }
  case K::MaxLanes:
  case K::MaxRows: {
    Operation *fill = foldedProducer(op, outs[0], planned.getValue());
    if (match.kind == K::MaxRows)
      sb.emitRowMaxRows(ins[0], outs[0], fill != nullptr);
    else
      sb.emitRowMaxLanes(ins[0], outs[0], match.jLo, match.jHi,
                         fill != nullptr);
    if (fill)
      rewriter.eraseOp(fill);
    break;
  }
  case K::ExpSumLanes:
    sb.emitExpSumLanes(outs[0], outs[1], ins[0], match.jLo, match.jHi);
    break;
  case K::ExpSumRows:
    sb.emitExpSumRows(outs[0], outs[1], ins[0]);
    break;
  case K::Rescale: {
    // Left for the P V stage that reads it, which folds it in.
    if (op->hasAttr(kFoldedIntoAttr))
      return std::string("row rescale, folded into the P V stage after it");
    if (failed(vectorizeElementwiseStage(rewriter, op, vectorWidth))) {
      reason = "the region vectorizer does not take it";
      return failure();
    }
    return std::string("row rescale, region vectorizer");
  }
  case K::Elementwise:
    // The query stage (a transposing gather, once per query block) is left
    // to loops: a layout hint, which changes how, not what, it computes.
    if (stageName(op) == "query") {
      reason = "the query stage runs once per query block";
      return failure();
    }
    if (failed(vectorizeElementwiseStage(rewriter, op, vectorWidth))) {
      reason = "the region vectorizer does not take it";
      return failure();
    }
    return std::string("elementwise, region vectorizer");
  case K::ProbsTimesValue: {
    Value alpha;
    auto prev = dyn_cast_or_null<linalg::GenericOp>(
        foldedProducer(op, outs[0], planned.getValue()));
    if (prev && matchStage(prev).kind == K::Rescale)
      alpha = prev.getInputs()[0];
    StageBuilder::KeyGuard keys;
    keys.band = match.band;
    keys.jLo = match.jLo;
    keys.jHi = match.jHi;
    keys.qOff = match.qOff;
    keys.kOff = match.kOff;
    keys.guardZero = match.guardZero;
    if (amxHint) {
      int64_t M = dimOf(outs[0], 0), Dv = dimOf(outs[0], 1), N = dimOf(ins[1], 0);
      Type bf16 = rewriter.getBF16Type();
      Value probs = allocaAtEntry(rewriter, op, {M, N}, bf16);
      Value pairs = allocaAtEntry(rewriter, op, {N / 2, 2 * Dv}, bf16);
      sb.emitProbsTimesValueAMX(ins[0], ins[1], outs[0], alpha, keys.jLo,
                                keys.jHi, probs, pairs);
      what += " (AMX)";
    } else {
      sb.emitProbsTimesValue(ins[0], ins[1], outs[0], alpha, keys,
                             match.rowMajorP);
      what += " (FMA)";
    }
    if (alpha) {
      rewriter.eraseOp(prev);
      what += ", with the row rescale before it";
    }
    break;
  }
  }
  rewriter.eraseOp(op);
  return what;
}

struct CPULowerStagesPass
    : attn::impl::CPULowerStagesPassBase<CPULowerStagesPass> {
  using Base::Base;
  void runOnOperation() override {
    if (vectorWidth != 8 && vectorWidth != 16) {
      getOperation()->emitError()
          << "CPU lowering supports vector widths of 8 (AVX2) and 16 "
             "(AVX-512) f32 lanes, got "
          << static_cast<int64_t>(vectorWidth);
      return signalPassFailure();
    }
    if (vectorRegisters < 8) {
      getOperation()->emitError()
          << "CPU lowering needs at least 8 vector registers, got "
          << static_cast<int64_t>(vectorRegisters);
      return signalPassFailure();
    }
    SmallVector<linalg::GenericOp> stages;
    WalkResult walk = getOperation()->walk([&](linalg::GenericOp op) {
      if (stageName(op).empty())
        return WalkResult::advance();
      if (!op.hasPureBufferSemantics()) {
        op.emitOpError("CPU stage lowering expects a bufferized stage "
                       "(memref operands); run it after bufferization");
        return WalkResult::interrupt();
      }
      if (op->getParentOfType<scf::ForallOp>() ||
          op->getParentOfType<scf::ParallelOp>()) {
        op.emitOpError("CPU lowering does not support tiles inside parallel "
                       "loops; run attn-cpu-distribute-workgroups");
        return WalkResult::interrupt();
      }
      stages.push_back(op);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    IRRewriter rewriter(&getContext());
    // In order: a rescale stage is left in place for the pv stage after
    // it, which folds it in.
    for (linalg::GenericOp op : stages) {
      std::string reason;
      Location loc = op.getLoc();
      std::string stage = stageName(op).str();
      FailureOr<std::string> lowered =
          lowerStage(rewriter, op, vectorWidth, vectorRegisters, reason);
      if (!remarks)
        continue;
      if (succeeded(lowered))
        emitRemark(loc) << "stage '" << stage << "': " << *lowered;
      else
        emitRemark(loc) << "stage '" << stage << "': left to loops: "
                        << reason;
    }
  }
};

} // namespace
