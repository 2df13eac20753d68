//===- CPULowerOnlineAttention.cpp - online attention -> vector code ------===//
//
// Lowers each bufferized attn.online_attention tile (static shapes, memref
// operands) into register-blocked vector code for CPUs with wide SIMD
// (AVX-512: 16 f32 lanes). Per (batch, query head) of the tile:
//
//   QT[d][m]   = scale * query[m][d]          (once per query block: hoisted
//                                              out of the key loop)
//   ST[j][m]   = sum_d key[j][d] * QT[d][m]    queries on the lanes: each
//                                              key element is broadcast
//   m'[m]      = max(m[m], max_j ST[j][m])     lane-wise, no horizontal ops
//   ST[j][m]   = exp(ST[j][m] - m'[m]), l'[m] = alpha[m] l[m] + sum_j ST[j][m]
//   acc[m][e]  = alpha[m] acc[m][e] + sum_j ST[j][m] * value[j][e]
//                                              head_dim on the lanes: each
//                                              probability is broadcast
//
// Only the keys [jLo, jHi) that some row of the tile keeps (causal / sliding
// window band, kv_lens, kv_bound) are reduced, so hidden keys and values are
// never read by the softmax or P V; a per-element mask is applied only when
// the tile straddles the band, or for tensor masks and biases.
//
// bf16 tiles on CPUs with AMX (amx-bf16) compute both contractions on the
// tile unit (amx.tile_mulf, tdpbf16ps: 16x16 f32 += 16x32 bf16 * 32x16 bf16
// in pairs): ST = K QT with the key read in place and the query in pairs
// QP[d/2][2m + d%2]; the probabilities are transposed to P[m][j] in bf16
// (the rounding FlashAttention applies before P V on tensor cores) and
// acc += P VP with the value rows interleaved in pairs VP[j/2][2e + j%2].
// The softmax statistics stay in f32 vector code, as above.
//
// This file is the driver (query hoisting, scratch buffers, key ranges, the
// order of the stages per head, the pass); the stages live in
// CPUTileScores.cpp, CPUTileAMX.cpp and CPUTileDecode.cpp around the shared
// state of CPUTileLowering.h.
//
//===----------------------------------------------------------------------===//

#include "CPUTileLowering.h"
#include "attn/Transforms/Passes.h"

#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

#include <limits>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CPULOWERONLINEATTENTIONPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::cpu;

namespace {


/// Follows view-like ops to the allocation (or block argument) a memref
/// value is a view of.
Value rootOf(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    auto view = dyn_cast<ViewLikeOpInterface>(def);
    if (!view)
      break;
    v = view.getViewSource();
  }
  return v;
}

/// True when some op inside `scope` may write memory aliasing `root`.
bool mayWrite(Operation *scope, Value root) {
  bool writes = false;
  scope->walk([&](Operation *op) {
    if (writes || op == scope)
      return;
    auto iface = dyn_cast<MemoryEffectOpInterface>(op);
    if (!iface) {
      // Unknown effects: conservative unless the op holds regions only
      // (loops, ifs), whose bodies are visited anyway.
      if (op->getNumRegions() == 0 &&
          llvm::any_of(op->getOperands(),
                       [&](Value o) { return isa<MemRefType>(o.getType()) &&
                                             rootOf(o) == root; }))
        writes = true;
      return;
    }
    SmallVector<MemoryEffects::EffectInstance> effects;
    iface.getEffects(effects);
    for (auto &e : effects)
      if (isa<MemoryEffects::Write>(e.getEffect()) &&
          (!e.getValue() || rootOf(e.getValue()) == root))
        writes = true;
  });
  return writes;
}

/// The earliest point at which the scaled, transposed query of `op` can be
/// computed: before the outermost enclosing loop (or if) that neither
/// defines the query nor writes to its buffer.
Operation *queryHoistPoint(Operation *op, Value query) {
  Value root = rootOf(query);
  Operation *point = op;
  for (Operation *parent = op->getParentOp(); parent;
       parent = parent->getParentOp()) {
    if (!isa<scf::ForOp, scf::IfOp>(parent))
      break;
    // The query must be available before `parent`.
    if (parent->isAncestor(query.getParentBlock()->getParentOp()) ||
        (query.getDefiningOp() && parent->isAncestor(query.getDefiningOp())))
      break;
    if (mayWrite(parent, root))
      break;
    point = parent;
  }
  return point;
}

} // namespace

namespace mlir {
namespace attn {
namespace cpu {

void forBlocks(OpBuilder &b, Location loc, int64_t total, int64_t block,
               function_ref<void(Value, int64_t)> body) {
  int64_t full = total / block, rest = total % block;
  if (full == 1) {
    body(arith::ConstantIndexOp::create(b, loc, 0), block);
  } else if (full > 1) {
    auto loop = scf::ForOp::create(
        b, loc, arith::ConstantIndexOp::create(b, loc, 0),
        arith::ConstantIndexOp::create(b, loc, full * block),
        arith::ConstantIndexOp::create(b, loc, block));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    body(loop.getInductionVar(), block);
  }
  if (rest)
    body(arith::ConstantIndexOp::create(b, loc, full * block), rest);
}

void TileLowering::emitTile(Value qt, const Scratch &scratch) {
  Value qOff = detail.queryOffset() ? detail.queryOffset() : idx(0);
  Value kOff = detail.keyOffset() ? detail.keyOffset() : idx(0);
  if (detail.maskKind())
    qOff = add(qOff, idx(detail.maskKind().getDiagonalShift(M, N)));
  scf::buildLoopNest(
      b, loc, ValueRange{idx(0), idx(0)}, ValueRange{idx(B), idx(Hq)},
      ValueRange{idx(1), idx(1)}, [&](OpBuilder &nb, Location, ValueRange iv) {
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        emitHead(qt, scratch, iv[0], iv[1], qOff, kOff);
      });
}

void TileLowering::emitHead(Value qt, const Scratch &scratch, Value bIdx, Value h,
              Value qOff, Value kOff) {
  Value hk = G == 1 ? h : arith::DivUIOp::create(b, loc, h, idx(G)).getResult();
  // Keys [jLo, jHi) that some row of the tile keeps.
  Value jLo = idx(0), jHi = idx(N);
  if (Value bound = detail.kvBound())
    jHi = minI(jHi, sub(bound, kOff));
  if (Value lens = detail.kvLens()) {
    Value len = memref::LoadOp::create(b, loc, lens, ValueRange{bIdx});
    len = arith::IndexCastOp::create(b, loc, b.getIndexType(), len);
    jHi = minI(jHi, sub(len, kOff));
  }
  // The last real (not padding) row.
  Value qLast = add(qOff, idx(M - 1));
  if (Value qBound = shiftedQBound(qOff))
    qLast = minI(qLast, sub(qBound, idx(1)));
  band.narrowToSomeRow(b, loc, qOff, qLast, kOff, jLo, jHi);
  jLo = minI(jLo, idx(N));
  jHi = maxI(jHi, jLo);

  if (rowMajor()) {
    emitRowMajorSoftmax(scratch.st, scratch.alpha, bIdx, h, hk, jLo, jHi,
                        qOff, kOff);
    emitProbsTimesValue(scratch.st, scratch.alpha, bIdx, h, hk, jLo, jHi,
                        qOff, kOff, /*rowMajor=*/true);
    return;
  }
  if (amx)
    emitScoresAMX(qt, scratch.st, bIdx, h, hk, jLo, jHi);
  else
    emitScores(qt, scratch.st, bIdx, h, hk);

  // Is the tile inside the band (every pair of rows [qOff, qLast] x keys
  // [jLo, jHi) kept)? If not, it straddles the band and masks per element.
  Value insideBand;
  if (!band.isUnbounded()) {
    Value hiKey = add(kOff, sub(jHi, idx(1))), loKey = add(kOff, jLo);
    insideBand = band.buildKeepsAnyAll(b, loc, sub(loKey, qLast),
                                       sub(hiKey, qOff))
                     .second;
  }
  bool elementMasks = mask || bias;
  // Softmax statistics, chunk by chunk of VL queries.
  auto chunkLoop = scf::ForOp::create(b, loc, idx(0), idx(Mp), idx(VL));
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(chunkLoop.getBody()->getTerminator());
    Value c = chunkLoop.getInductionVar();
    // The keys some row of this chunk keeps: a band hides the others from
    // every row of the chunk, so their scores are neither reduced nor
    // exponentiated (P V reads them only under its per-row band guard).
    // The AMX path transposes all of [jLo, jHi), so it keeps the range.
    Value cLo = jLo, cHi = jHi;
    if (!band.isUnbounded() && !amx) {
      if (band.upper)
        cHi = minI(cHi, sub(add(qOff, add(c, idx(VL - 1 + *band.upper + 1))), kOff));
      if (band.lower)
        cLo = maxI(cLo, sub(add(add(qOff, c), idx(*band.lower)), kOff));
      cHi = maxI(cHi, cLo);
    }
    auto readRow = [&](Value memref, float pad) {
      AffineMap map = AffineMap::get(3, 0, {b.getAffineDimExpr(2)}, b.getContext());
      return vector::TransferReadOp::create(
          b, loc, vecType(VL, f32), memref, ValueRange{bIdx, h, c},
          AffineMapAttr::get(map), fconst(pad), Value(),
          b.getBoolArrayAttr({Mp == M}));
    };
    auto writeRow = [&](Value v, Value memref) {
      AffineMap map = AffineMap::get(3, 0, {b.getAffineDimExpr(2)}, b.getContext());
      vector::TransferWriteOp::create(b, loc, v, memref, ValueRange{bIdx, h, c},
                                      AffineMapAttr::get(map), Value(),
                                      b.getBoolArrayAttr({Mp == M}));
    };
    Value mOld = readRow(max, kNegInf);
    Value lOld = readRow(sum, 0.0f);
    Value rowMax;
    auto emitMax = [&](bool applyBand) {
      return emitRowMax(scratch.st, c, cLo, cHi, elementMasks || applyBand,
                        applyBand, bIdx, h, qOff, kOff);
    };
    if (insideBand) {
      auto ifOp = scf::IfOp::create(b, loc, TypeRange{vecType(VL, f32)},
                                    insideBand, /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPointToStart(ifOp.thenBlock());
        scf::YieldOp::create(b, loc, emitMax(false));
        b.setInsertionPointToStart(ifOp.elseBlock());
        scf::YieldOp::create(b, loc, emitMax(true));
      }
      rowMax = ifOp.getResult(0);
    } else {
      rowMax = emitMax(false);
    }
    Value mNew = arith::MaximumFOp::create(b, loc, mOld, rowMax);
    Value mSafe = safeMax(mNew, VL);
    Value alpha = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, mOld, mSafe));
    Value lInit = arith::MulFOp::create(b, loc, lOld, alpha);
    auto sumLoop = scf::ForOp::create(b, loc, cLo, cHi, idx(1), ValueRange{lInit});
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(sumLoop.getBody());
      Value j = sumLoop.getInductionVar();
      Value s = vector::LoadOp::create(b, loc, vecType(VL, f32), scratch.st,
                                       ValueRange{j, c});
      Value p = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, s, mSafe));
      vector::StoreOp::create(b, loc, p, scratch.st, ValueRange{j, c});
      scf::YieldOp::create(
          b, loc, arith::AddFOp::create(b, loc, sumLoop.getRegionIterArgs()[0], p)
                      .getResult());
    }
    writeRow(mNew, max);
    writeRow(sumLoop.getResult(0), sum);
    vector::StoreOp::create(b, loc, alpha, scratch.alpha, ValueRange{c});
  }

  if (amx) {
    emitProbsTranspose(scratch.st, scratch.probs, jLo, jHi);
    emitValuePairs(scratch.valuePairs, bIdx, hk, jLo, jHi);
    emitProbsTimesValueAMX(scratch.probs, scratch.valuePairs, scratch.alpha,
                           bIdx, h);
    return;
  }
  emitProbsTimesValue(scratch.st, scratch.alpha, bIdx, h, hk, jLo, jHi, qOff,
                      kOff);
}

} // namespace cpu
} // namespace attn
} // namespace mlir

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

LogicalResult mlir::attn::lowerOnlineAttentionToVectors(
    RewriterBase &rewriter, OnlineAttentionOp op, int64_t vectorWidth,
    DenseMap<Value, std::pair<Value, Operation *>> &transposedQueries,
    bool useBF16Dot, bool useAMX) {
  if (vectorWidth != 8 && vectorWidth != 16)
    return op.emitOpError() << "CPU lowering supports vector widths of 8 "
                               "(AVX2) and 16 (AVX-512) f32 lanes, got "
                            << vectorWidth;
  if (!op.hasPureBufferSemantics())
    return op.emitOpError("CPU lowering expects a bufferized op (memref "
                          "operands)");
  AttentionDims d = AttentionOpDetail(op).dims();
  for (int64_t s : {d.batch, d.qHeads, d.kvHeads, d.qLen, d.kvLen, d.headDim,
                    d.vHeadDim})
    if (ShapedType::isDynamic(s))
      return op.emitOpError("CPU lowering needs a tile with static sizes");
  int64_t scratchBytes =
      getCPUTileScratchBytes(d.batch, d.qHeads, d.qLen, d.kvLen, d.headDim,
                             d.vHeadDim, vectorWidth, useAMX);
  if (scratchBytes > kMaxCPUTileScratchBytes)
    return op.emitOpError()
           << "CPU lowering: a tile of " << d.batch << "x" << d.qHeads << "x"
           << d.qLen << " queries and " << d.kvLen << " keys needs "
           << scratchBytes
           << " bytes of stack scratch, more than the "
           << kMaxCPUTileScratchBytes << " allowed; use smaller tile sizes";
  if (op->getParentOfType<scf::ForallOp>() ||
      op->getParentOfType<scf::ParallelOp>())
    return op.emitOpError("CPU lowering does not support tiles inside "
                          "parallel loops; run attn-cpu-distribute-workgroups");
  auto func = op->getParentOfType<FunctionOpInterface>();
  if (!func || func.isExternal())
    return op.emitOpError("CPU lowering needs an enclosing function");

  OpBuilder::InsertionGuard guard(rewriter);
  TileLowering lowering(op, rewriter, vectorWidth);
  lowering.init();
  lowering.bf16Dot = useBF16Dot && vectorWidth == 16 &&
                     getElementTypeOrSelf(op.getQuery().getType()).isBF16() &&
                     d.headDim % 2 == 0;
  lowering.amx = useAMX && vectorWidth == 16 &&
                 getElementTypeOrSelf(op.getQuery().getType()).isBF16() &&
                 !lowering.rowMajor() &&
                 TileLowering::amxApplies(d, op.getMask() || op.getBias());
  if (lowering.amx)
    lowering.bf16Dot = false;
  Location loc = op.getLoc();
  Block &entry = func.getFunctionBody().front();
  auto allocaAtEntry = [&](ArrayRef<int64_t> shape, Type elt) {
    OpBuilder::InsertionGuard g(rewriter);
    rewriter.setInsertionPointToStart(&entry);
    return memref::AllocaOp::create(rewriter, loc, MemRefType::get(shape, elt),
                                    rewriter.getI64IntegerAttr(64))
        .getResult();
  };

  // The scaled, transposed query: once per query block, hoisted out of the
  // key loop; a transposition of the same query already emitted before this
  // op (e.g. for the key loop, reused by the padded tail block) is reused.
  // Row-major tiles (few rows) read the query directly.
  Value query = op.getQuery();
  Operation *point = queryHoistPoint(op, query);
  Value qt;
  bool rowMajor = lowering.rowMajor();
  auto known = transposedQueries.find(query);
  if (!rowMajor && known != transposedQueries.end()) {
    auto [buffer, fill] = known->second;
    Operation *ancestor = fill->getBlock()->findAncestorOpInBlock(*op);
    if (ancestor && fill->isBeforeInBlock(ancestor))
      qt = buffer;
  }
  if (!qt && !rowMajor) {
    rewriter.setInsertionPoint(point);
    Operation *fill;
    if (lowering.bf16Dot || lowering.amx) {
      qt = allocaAtEntry({d.batch, d.qHeads, d.headDim / 2, 2 * lowering.Mp},
                         rewriter.getBF16Type());
      fill = lowering.emitQueryPairs(qt);
    } else {
      qt = allocaAtEntry({d.batch, d.qHeads, d.headDim, lowering.Mp},
                         rewriter.getF32Type());
      fill = lowering.emitQueryTranspose(qt);
    }
    transposedQueries[query] = {qt, fill};
  }

  Scratch scratch;
  int64_t vl = vectorWidth;
  scratch.st = rowMajor
                   ? allocaAtEntry({d.qLen, (d.kvLen + vl - 1) / vl * vl},
                                   rewriter.getF32Type())
                   : allocaAtEntry({d.kvLen, lowering.Mp}, rewriter.getF32Type());
  scratch.alpha = allocaAtEntry({lowering.Mp}, rewriter.getF32Type());
  if (lowering.amx) {
    scratch.probs = allocaAtEntry({d.qLen, d.kvLen}, rewriter.getBF16Type());
    scratch.valuePairs = allocaAtEntry({d.kvLen / 2, 2 * d.vHeadDim},
                                       rewriter.getBF16Type());
  }
  rewriter.setInsertionPoint(op);
  lowering.emitTile(qt, scratch);
  rewriter.eraseOp(op);
  return success();
}

namespace {
struct CPULowerOnlineAttentionPass
    : attn::impl::CPULowerOnlineAttentionPassBase<CPULowerOnlineAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    SmallVector<OnlineAttentionOp> ops;
    getOperation()->walk([&](OnlineAttentionOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    DenseMap<Value, std::pair<Value, Operation *>> transposed;
    for (OnlineAttentionOp op : ops)
      if (failed(lowerOnlineAttentionToVectors(rewriter, op, vectorWidth,
                                               transposed, bf16Dot, amx)))
        return signalPassFailure();
  }
};
} // namespace
