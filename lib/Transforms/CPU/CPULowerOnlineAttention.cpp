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
//===----------------------------------------------------------------------===//

#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"
#include "dialect/attn/IR/AttnOpDetail.h"

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

struct Lowering {
  OnlineAttentionOp op;
  OpBuilder &b;
  Location loc;
  AttentionOpDetail detail;
  int64_t VL;
  // Tile sizes.
  int64_t B, Hq, Hk, G, M, N, D, Dv, Mp;
  KeyBand band;
  Type f32, i32;

  Lowering(OnlineAttentionOp op, OpBuilder &b, int64_t vectorWidth)
      : op(op), b(b), loc(op.getLoc()), detail(op), VL(vectorWidth) {
    AttentionDims d = detail.dims();
    B = d.batch;
    Hq = d.qHeads;
    Hk = d.kvHeads;
    G = d.groupSize();
    M = d.qLen;
    N = d.kvLen;
    D = d.headDim;
    Dv = d.vHeadDim;
    Mp = (M + VL - 1) / VL * VL;
    band = KeyBand::get(detail.maskKind());
    f32 = b.getF32Type();
    i32 = b.getI32Type();
  }

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value fconst(float v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  VectorType vecType(int64_t width, Type elt) {
    return VectorType::get({width}, elt);
  }
  Value splat(float v, int64_t width) {
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vecType(width, f32), b.getF32FloatAttr(v)));
  }
  Value toF32(Value v) {
    Type elt = getElementTypeOrSelf(v.getType());
    if (elt.isF32())
      return v;
    Type target = isa<VectorType>(v.getType())
                      ? Type(vecType(cast<VectorType>(v.getType()).getNumElements(), f32))
                      : f32;
    return arith::ExtFOp::create(b, loc, target, v);
  }
  Value add(Value x, Value y) { return b.createOrFold<arith::AddIOp>(loc, x, y); }
  Value sub(Value x, Value y) { return b.createOrFold<arith::SubIOp>(loc, x, y); }
  Value minI(Value x, Value y) { return b.createOrFold<arith::MinSIOp>(loc, x, y); }
  Value maxI(Value x, Value y) { return b.createOrFold<arith::MaxSIOp>(loc, x, y); }
  Value loadVec(Value memref, ValueRange indices, int64_t width) {
    Type elt = cast<MemRefType>(memref.getType()).getElementType();
    Value v = vector::LoadOp::create(b, loc, vecType(width, elt), memref, indices);
    return toF32(v);
  }
  Value loadScalar(Value memref, ValueRange indices) {
    return toF32(memref::LoadOp::create(b, loc, memref, indices));
  }
  Value bcast(Value scalar, int64_t width) {
    return vector::BroadcastOp::create(b, loc, vecType(width, scalar.getType()), scalar);
  }
  Value fma(Value a, Value x, Value acc) {
    return vector::FMAOp::create(b, loc, a, x, acc);
  }
  /// Running max step (s > acc ? s : acc): one vmaxps, where IEEE maximumf
  /// needs five more instructions for NaN and signed zeros on x86 and
  /// lengthens the loop-carried chain. A NaN score is skipped here but still
  /// reaches the output, through exp(NaN - m) in the row sum and P V.
  Value runningMax(Value acc, Value s) {
    Value greater = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, s, acc);
    return arith::SelectOp::create(b, loc, greater, s, acc);
  }
  /// exp(x - safe(m)) where safe(-inf) = 0.
  Value safeMax(Value m, int64_t width) {
    Value isNegInf = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, m,
                                           splat(kNegInf, width));
    return arith::SelectOp::create(b, loc, isNegInf, splat(0.0f, width), m);
  }
};

} // namespace

namespace {
/// Scratch buffers of one tile, on the stack at the function entry.
struct Scratch {
  Value st;    // [N, Mp] f32: scores, then probabilities (keys x queries)
  Value alpha; // [Mp] f32: correction factors of this step
  Value probs; // AMX: [M, N] bf16, P row-major
  Value valuePairs; // AMX: [N / 2, 2 Dv] bf16, value rows interleaved in pairs
};

/// Emits loops over [0, total) in blocks of `block`: an scf.for over the
/// full blocks and one remainder block, calling body(start, count).
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

struct TileLowering : Lowering {
  using Lowering::Lowering;
  Value query, key, value, acc, max, sum, mask, bias;
  /// Q K^T with AVX512-BF16 dot products of bf16 pairs (vdpbf16ps).
  bool bf16Dot = false;
  /// Both contractions on AMX tiles (see the file comment); the scores in
  /// st are then unscaled until the row-max pass scales them.
  bool amx = false;

  void init() {
    query = op.getQuery();
    key = op.getKey();
    value = op.getValue();
    acc = op.getOutputs()[0];
    max = op.getOutputs()[1];
    sum = op.getOutputs()[2];
    mask = op.getMask();
    bias = op.getBias();
  }

  /// A loop nest over (b, h, m, d) of the query block with its rows padded
  /// to Mp: calls store(iv, q) with q = convert(query[b][h][m][d]) (the
  /// element as stored when `convert` is null), 0 for padded rows m >= M.
  /// Returns the outermost loop.
  Operation *emitQueryCopy(function_ref<Value(Value)> convert,
                           function_ref<void(ValueRange, Value)> store) {
    scf::LoopNest nest = scf::buildLoopNest(
        b, loc, ValueRange{idx(0), idx(0), idx(0), idx(0)},
        ValueRange{idx(B), idx(Hq), idx(Mp), idx(D)},
        ValueRange{idx(1), idx(1), idx(1), idx(1)},
        [&](OpBuilder &nb, Location, ValueRange iv) {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          Value row = minI(iv[2], idx(M - 1));
          Value q = memref::LoadOp::create(b, loc, query,
                                           ValueRange{iv[0], iv[1], row, iv[3]});
          if (convert)
            q = convert(q);
          if (Mp != M) {
            Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                                 iv[2], idx(M));
            Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(q.getType()));
            q = arith::SelectOp::create(b, loc, inside, q, zero);
          }
          store(iv, q);
        });
    return nest.loops.front();
  }

  /// qt[b][h][d][m] = scale * query[b][h][m][d], 0 for padded rows m >= M.
  /// Returns the outermost loop.
  Operation *emitQueryTranspose(Value qt) {
    Value scale = fconst(static_cast<float>(detail.scale()));
    return emitQueryCopy(
        [&](Value q) { return arith::MulFOp::create(b, loc, toF32(q), scale); },
        [&](ValueRange iv, Value q) {
          memref::StoreOp::create(b, loc, q, qt, ValueRange{iv[0], iv[1], iv[3], iv[2]});
        });
  }

  /// For bf16 dot products and AMX tiles: qt[b][h][d / 2][2 m + d % 2] =
  /// query[b][h][m][d] (bf16, unscaled; 0 for padded rows), i.e. for each
  /// pair of head_dim entries the queries on the lanes with their two values
  /// side by side. Returns the outermost loop.
  Operation *emitQueryPairs(Value qt) {
    return emitQueryCopy(nullptr, [&](ValueRange iv, Value q) {
      Value pair = arith::DivUIOp::create(b, loc, iv[3], idx(2));
      Value col = add(arith::MulIOp::create(b, loc, iv[2], idx(2)),
                      arith::RemUIOp::create(b, loc, iv[3], idx(2)));
      memref::StoreOp::create(b, loc, q, qt, ValueRange{iv[0], iv[1], pair, col});
    });
  }

  /// st[j][m] = scale * sum_d key[j][d] * query[m][d] with vdpbf16ps: each
  /// pair (key[j][2p], key[j][2p+1]) broadcast as 32 bits against the query
  /// pairs of 16 rows, accumulating in f32.
  void emitScoresBF16(Value qt, Value st, Value bIdx, Value h, Value hk) {
    int64_t chunks = Mp / VL;
    int64_t mrv = std::min<int64_t>(4, chunks);
    int64_t jr = std::max<int64_t>(1, 24 / mrv);
    Type bf16 = b.getBF16Type();
    Value scale = splat(static_cast<float>(detail.scale()), VL);
    forBlocks(b, loc, N, jr, [&](Value j0, int64_t nj) {
      forBlocks(b, loc, chunks, mrv, [&](Value c0, int64_t nc) {
        Value m0 = arith::MulIOp::create(b, loc, c0, idx(VL));
        SmallVector<Value> init(nj * nc, splat(0.0f, VL));
        auto loop = scf::ForOp::create(b, loc, idx(0), idx(D / 2), idx(1), init);
        {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(loop.getBody());
          Value p = loop.getInductionVar();
          SmallVector<Value> qv;
          for (int64_t r = 0; r < nc; ++r)
            qv.push_back(vector::LoadOp::create(
                b, loc, vecType(2 * VL, bf16), qt,
                ValueRange{bIdx, h, p,
                           arith::MulIOp::create(b, loc, add(m0, idx(r * VL)), idx(2))}));
          Value d = arith::MulIOp::create(b, loc, p, idx(2));
          SmallVector<Value> next(loop.getRegionIterArgs());
          for (int64_t jj = 0; jj < nj; ++jj) {
            Value pair = vector::LoadOp::create(b, loc, vecType(2, bf16), key,
                                                ValueRange{bIdx, hk, add(j0, idx(jj)), d});
            Value bits = vector::BitCastOp::create(b, loc, vecType(1, i32), pair);
            Value word = vector::ExtractOp::create(b, loc, bits, ArrayRef<int64_t>{0});
            Value kb = vector::BitCastOp::create(b, loc, vecType(2 * VL, bf16),
                                                 bcast(word, VL));
            for (int64_t r = 0; r < nc; ++r)
              next[jj * nc + r] = x86vector::DotBF16Op::create(
                  b, loc, vecType(VL, f32), next[jj * nc + r], kb, qv[r]);
          }
          scf::YieldOp::create(b, loc, next);
        }
        for (int64_t jj = 0; jj < nj; ++jj)
          for (int64_t r = 0; r < nc; ++r)
            vector::StoreOp::create(
                b, loc, arith::MulFOp::create(b, loc, loop.getResult(jj * nc + r), scale),
                st, ValueRange{add(j0, idx(jj)), add(m0, idx(r * VL))});
      });
    });
  }

  /// st[j][m] = sum_d key[b][hk][j][d] * qt[b][h][d][m] for all N keys.
  /// The head_dim is reduced in chunks of at most 64, so that the chunk of
  /// the transposed query that every key block reads stays in L1; partial
  /// sums go through st between chunks.
  void emitScores(Value qt, Value st, Value bIdx, Value h, Value hk) {
    if (bf16Dot)
      return emitScoresBF16(qt, st, bIdx, h, hk);
    int64_t chunks = Mp / VL;
    int64_t mrv = std::min<int64_t>(4, chunks);
    int64_t jr = std::max<int64_t>(1, 24 / mrv);
    constexpr int64_t kDChunk = 64;
    for (int64_t d0 = 0; d0 < D; d0 += kDChunk) {
      int64_t d1 = std::min(D, d0 + kDChunk);
      forBlocks(b, loc, N, jr, [&](Value j0, int64_t nj) {
        forBlocks(b, loc, chunks, mrv, [&](Value c0, int64_t nc) {
          Value m0 = arith::MulIOp::create(b, loc, c0, idx(VL));
          SmallVector<Value> init;
          for (int64_t jj = 0; jj < nj; ++jj)
            for (int64_t r = 0; r < nc; ++r)
              init.push_back(d0 == 0 ? splat(0.0f, VL)
                                     : vector::LoadOp::create(
                                           b, loc, vecType(VL, f32), st,
                                           ValueRange{add(j0, idx(jj)),
                                                      add(m0, idx(r * VL))})
                                           .getResult());
          auto loop = scf::ForOp::create(b, loc, idx(d0), idx(d1), idx(1), init);
          {
            OpBuilder::InsertionGuard g(b);
            b.setInsertionPointToStart(loop.getBody());
            Value d = loop.getInductionVar();
            SmallVector<Value> qv;
            for (int64_t r = 0; r < nc; ++r)
              qv.push_back(loadVec(qt, {bIdx, h, d, add(m0, idx(r * VL))}, VL));
            SmallVector<Value> next(loop.getRegionIterArgs());
            for (int64_t jj = 0; jj < nj; ++jj) {
              Value kb =
                  bcast(loadScalar(key, {bIdx, hk, add(j0, idx(jj)), d}), VL);
              for (int64_t r = 0; r < nc; ++r)
                next[jj * nc + r] = fma(kb, qv[r], next[jj * nc + r]);
            }
            scf::YieldOp::create(b, loc, next);
          }
          for (int64_t jj = 0; jj < nj; ++jj)
            for (int64_t r = 0; r < nc; ++r)
              vector::StoreOp::create(
                  b, loc, loop.getResult(jj * nc + r), st,
                  ValueRange{add(j0, idx(jj)), add(m0, idx(r * VL))});
        });
      });
    }
  }

  /// The per-element masking of st[j][c..c+VL) (bias added first); returns
  /// the masked scores and the keep predicate (null when all kept).
  std::pair<Value, Value> maskScores(Value s, Value j, Value c, Value bIdx,
                                     Value h, Value qOff, Value kOff,
                                     bool applyBand) {
    VectorType iv = vecType(VL, i32), bv = vecType(VL, b.getI1Type());
    Value keep;
    auto conj = [&](Value k) {
      keep = keep ? arith::AndIOp::create(b, loc, keep, k).getResult() : k;
    };
    // Row index of each lane, clamped into the tile for gathers.
    auto laneRows = [&](function_ref<Value(Value)> loadAt) {
      SmallVector<Value> elems;
      for (int64_t l = 0; l < VL; ++l)
        elems.push_back(loadAt(minI(add(c, idx(l)), idx(M - 1))));
      return vector::FromElementsOp::create(
          b, loc, vecType(VL, elems.front().getType()), elems);
    };
    auto maskIndex = [&](Value v, Value row) -> SmallVector<Value> {
      auto t = cast<MemRefType>(v.getType());
      return {t.getDimSize(0) == 1 ? idx(0) : bIdx,
              t.getDimSize(1) == 1 ? idx(0) : h, row, j};
    };
    auto isRowBroadcast = [&](Value v) {
      return cast<MemRefType>(v.getType()).getDimSize(2) == 1 && M != 1;
    };
    if (bias) {
      Value bv2 = isRowBroadcast(bias)
                      ? bcast(loadScalar(bias, maskIndex(bias, idx(0))), VL)
                      : laneRows([&](Value row) {
                          return loadScalar(bias, maskIndex(bias, row));
                        });
      s = arith::AddFOp::create(b, loc, s, bv2);
    }
    if (mask) {
      Value mv = isRowBroadcast(mask)
                     ? bcast(memref::LoadOp::create(b, loc, mask,
                                                    maskIndex(mask, idx(0))),
                             VL)
                     : laneRows([&](Value row) -> Value {
                         return memref::LoadOp::create(b, loc, mask,
                                                       maskIndex(mask, row));
                       });
      conj(mv);
    }
    if (applyBand) {
      // diff = (kOff + j) - (qOff + c + lane)
      auto toI32 = [&](Value x) {
        return arith::IndexCastOp::create(b, loc, i32, x).getResult();
      };
      Value kpos = bcast(toI32(add(kOff, j)), VL);
      Value qbase = bcast(toI32(add(qOff, c)), VL);
      SmallVector<int32_t> lanes;
      for (int64_t l = 0; l < VL; ++l)
        lanes.push_back(static_cast<int32_t>(l));
      Value iota = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(iv, ArrayRef<int32_t>(lanes)));
      Value diff = arith::SubIOp::create(
          b, loc, kpos, arith::AddIOp::create(b, loc, qbase, iota));
      conj(band.buildKeeps(b, loc, diff));
    }
    (void)bv;
    if (keep)
      s = arith::SelectOp::create(b, loc, keep, s, splat(kNegInf, VL));
    return {s, keep};
  }

  /// Row max over [jLo, jHi) of chunk c, masking in place when asked. Keys
  /// go in pairs with two running maxima (halving the loop-carried chain),
  /// then the odd one.
  Value emitRowMax(Value st, Value c, Value jLo, Value jHi, bool masked,
                   bool applyBand, Value bIdx, Value h, Value qOff, Value kOff) {
    auto score = [&](Value j) {
      Value s = vector::LoadOp::create(b, loc, vecType(VL, f32), st, ValueRange{j, c});
      if (amx)
        s = arith::MulFOp::create(b, loc, s, splat(static_cast<float>(detail.scale()), VL));
      if (masked)
        s = maskScores(s, j, c, bIdx, h, qOff, kOff, applyBand).first;
      if (masked || amx)
        vector::StoreOp::create(b, loc, s, st, ValueRange{j, c});
      return s;
    };
    Value pairsEnd = add(jLo, arith::AndIOp::create(b, loc, sub(jHi, jLo), idx(-2)));
    Value negInf = splat(kNegInf, VL);
    auto pairs = scf::ForOp::create(b, loc, jLo, pairsEnd, idx(2),
                                    ValueRange{negInf, negInf});
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(pairs.getBody());
      Value j = pairs.getInductionVar();
      Value r0 = runningMax(pairs.getRegionIterArgs()[0], score(j));
      Value r1 = runningMax(pairs.getRegionIterArgs()[1], score(add(j, idx(1))));
      scf::YieldOp::create(b, loc, ValueRange{r0, r1});
    }
    auto rest = scf::ForOp::create(b, loc, pairsEnd, jHi, idx(1),
                                   ValueRange{pairs.getResult(0)});
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(rest.getBody());
      scf::YieldOp::create(
          b, loc, runningMax(rest.getRegionIterArgs()[0], score(rest.getInductionVar())));
    }
    return runningMax(rest.getResult(0), pairs.getResult(1));
  }

  /// acc[b][h][m][e] = alpha[m] * acc + sum_j st[j][m] * value[j][e] over
  /// the keys each row keeps. For a band mask, each block of rows splits
  /// [jLo, jHi) into the keys every row of the block keeps (plain FMAs) and
  /// the keys only some rows keep (FMAs guarded per row, so that a value a
  /// row does not keep, even NaN, never reaches it); with a tensor mask every
  /// FMA is guarded by p != 0.
  void emitProbsTimesValue(Value st, Value alphaBuf, Value bIdx, Value h,
                           Value hk, Value jLo, Value jHi, Value qOff,
                           Value kOff, bool rowMajor = false) {
    SmallVector<std::pair<int64_t, int64_t>> chunks;
    for (int64_t e = 0; e < Dv; e += VL)
      chunks.push_back({e, std::min(VL, Dv - e)});
    int64_t eb = std::min<int64_t>(4, chunks.size());
    int64_t mr = std::max<int64_t>(1, 24 / eb);
    for (size_t e0 = 0; e0 < chunks.size(); e0 += eb) {
      ArrayRef<std::pair<int64_t, int64_t>> block =
          ArrayRef(chunks).slice(e0, std::min<size_t>(eb, chunks.size() - e0));
      int64_t ne = block.size();
      forBlocks(b, loc, M, mr, [&](Value m0, int64_t nm) {
        SmallVector<Value> state;
        for (int64_t i = 0; i < nm; ++i) {
          Value row = add(m0, idx(i));
          Value a = memref::LoadOp::create(b, loc, alphaBuf, ValueRange{row});
          for (auto [off, width] : block) {
            Value cur = vector::LoadOp::create(b, loc, vecType(width, f32), acc,
                                               ValueRange{bIdx, h, row, idx(off)});
            state.push_back(arith::MulFOp::create(b, loc, cur, bcast(a, width)));
          }
        }
        // Key ranges of this row block.
        Value lo = jLo, hi = jHi, cl = jLo, ch = jHi;
        if (!band.isUnbounded()) {
          Value first = add(qOff, m0), last = add(qOff, add(m0, idx(nm - 1)));
          band.narrowToSomeRow(b, loc, first, last, kOff, lo, hi);
          band.narrowToEveryRow(b, loc, first, last, kOff, cl, ch);
          hi = maxI(hi, lo);
          cl = minI(maxI(cl, lo), hi);
          ch = minI(maxI(ch, cl), hi);
        }
        auto reduce = [&](Value from, Value to, bool guardBand) {
          auto loop = scf::ForOp::create(b, loc, from, to, idx(1), state);
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(loop.getBody());
          Value j = loop.getInductionVar();
          SmallVector<Value> vv;
          for (auto [off, width] : block)
            vv.push_back(loadVec(value, {bIdx, hk, j, idx(off)}, width));
          SmallVector<Value> next(loop.getRegionIterArgs());
          for (int64_t i = 0; i < nm; ++i) {
            Value row = add(m0, idx(i));
            Value p = memref::LoadOp::create(
                b, loc, st, rowMajor ? ValueRange{row, j} : ValueRange{j, row});
            Value keep;
            if (guardBand) {
              Value rel = sub(add(kOff, j), add(qOff, add(m0, idx(i))));
              keep = band.buildKeeps(b, loc, rel);
            }
            if (mask) {
              Value c = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, p,
                                              fconst(0.0f));
              keep = keep ? arith::AndIOp::create(b, loc, keep, c).getResult() : c;
            }
            for (int64_t e = 0; e < ne; ++e) {
              Value r = fma(bcast(p, block[e].second), vv[e], next[i * ne + e]);
              next[i * ne + e] =
                  keep ? arith::SelectOp::create(b, loc, keep, r, next[i * ne + e])
                             .getResult()
                       : r;
            }
          }
          scf::YieldOp::create(b, loc, next);
          state.assign(loop.getResults().begin(), loop.getResults().end());
        };
        if (band.isUnbounded()) {
          reduce(lo, hi, false);
        } else {
          reduce(lo, cl, true);
          reduce(cl, ch, false);
          reduce(ch, hi, true);
        }
        for (int64_t i = 0; i < nm; ++i)
          for (int64_t e = 0; e < ne; ++e)
            vector::StoreOp::create(b, loc, state[i * ne + e], acc,
                                    ValueRange{bIdx, h, add(m0, idx(i)),
                                               idx(block[e].first)});
      });
    }
  }


  //===--------------------------------------------------------------------===//
  // AMX tiles (bf16).
  //===--------------------------------------------------------------------===//

  /// AMX tiles hold at most 16 rows of 64 bytes.
  static constexpr int64_t kTileRows = 16, kPairCols = 32;

  /// Whether the tile shapes suit the AMX path: whole 16x16 score and
  /// output tiles and whole 32-wide reductions.
  static bool amxApplies(const AttentionDims &d, bool hasTensorMask) {
    return !hasTensorMask && d.qLen % kTileRows == 0 &&
           d.kvLen % kPairCols == 0 && d.headDim % kPairCols == 0 &&
           d.vHeadDim % kTileRows == 0;
  }

  /// i1: jLo <= j < jHi.
  Value keyInRange(Value j, Value jLo, Value jHi) {
    return arith::AndIOp::create(
        b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j, jLo),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j, jHi));
  }

  amx::TileType tileType(int64_t cols, Type elt) {
    return amx::TileType::get({kTileRows, cols}, elt);
  }

  /// Output tiles at most kTileGroup at a time, so that their C tiles, one
  /// A and one B tile fit the 8 AMX tile registers.
  static constexpr int64_t kTileGroup = 4;

  /// For each output tile t < `outputs`: c = init(t) + sum over the `steps`
  /// reduction steps s of loadA(s) * loadB(s, t) (amx.tile_mulf), then
  /// store(t, c); each A tile is loaded once per group of output tiles.
  void emitTileProducts(int64_t outputs, int64_t steps,
                        function_ref<Value(int64_t)> init,
                        function_ref<Value(int64_t)> loadA,
                        function_ref<Value(int64_t, int64_t)> loadB,
                        function_ref<void(int64_t, Value)> store) {
    for (int64_t t0 = 0; t0 < outputs; t0 += kTileGroup) {
      int64_t n = std::min(kTileGroup, outputs - t0);
      SmallVector<Value> c;
      for (int64_t i = 0; i < n; ++i)
        c.push_back(init(t0 + i));
      for (int64_t step = 0; step < steps; ++step) {
        Value a = loadA(step);
        for (int64_t i = 0; i < n; ++i)
          c[i] = amx::TileMulFOp::create(b, loc, c[i].getType(), a,
                                         loadB(step, t0 + i), c[i]);
      }
      for (int64_t i = 0; i < n; ++i)
        store(t0 + i, c[i]);
    }
  }

  /// Keys [from, to) rounded out to multiples of `align` (within [0, N)).
  std::pair<Value, Value> alignKeys(Value from, Value to, int64_t align) {
    Value lo = arith::MulIOp::create(
        b, loc, arith::DivUIOp::create(b, loc, from, idx(align)), idx(align));
    Value hi = arith::MulIOp::create(
        b, loc,
        arith::DivUIOp::create(b, loc, add(to, idx(align - 1)), idx(align)),
        idx(align));
    return {lo, minI(hi, idx(N))};
  }

  /// st[j][m] = sum_d key[j][d] * query[m][d] (unscaled) for the keys of
  /// [jLo, jHi) rounded out to blocks of 16: C (16 keys x 16 queries, f32)
  /// += A (16 keys x 32 head_dim of the key, read in place) * B (the query
  /// pairs qp[d0/2 .. d0/2 + 16][2 m0 .. 2 m0 + 32]), up to four C tiles
  /// per key block so that each key tile is loaded once for them.
  void emitScoresAMX(Value qp, Value st, Value bIdx, Value h, Value hk,
                     Value jLo, Value jHi) {
    Type bf16 = b.getBF16Type();
    amx::TileType pairs = tileType(kPairCols, bf16), scores = tileType(kTileRows, f32);
    auto [from, to] = alignKeys(jLo, jHi, kTileRows);
    auto loop = scf::ForOp::create(b, loc, from, to, idx(kTileRows));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value j0 = loop.getInductionVar();
    emitTileProducts(
        Mp / kTileRows, D / kPairCols,
        [&](int64_t) { return amx::TileZeroOp::create(b, loc, scores); },
        [&](int64_t step) {
          return amx::TileLoadOp::create(b, loc, pairs, key,
                                         ValueRange{bIdx, hk, j0, idx(step * kPairCols)});
        },
        [&](int64_t step, int64_t t) {
          return amx::TileLoadOp::create(
              b, loc, pairs, qp,
              ValueRange{bIdx, h, idx(step * kPairCols / 2), idx(2 * t * kTileRows)});
        },
        [&](int64_t t, Value c) {
          amx::TileStoreOp::create(b, loc, st, ValueRange{j0, idx(t * kTileRows)}, c);
        });
  }

  /// 16 x 16 transposition of the rows `r` (16 vectors of 16 lanes) by four
  /// rounds of two-source shuffles, each swapping the off-diagonal blocks of
  /// size h = 8, 4, 2, 1 of every 2h x 2h block.
  void transpose16(SmallVector<Value> &r) {
    for (int64_t hw = VL / 2; hw >= 1; hw /= 2) {
      SmallVector<int64_t> upper, lower;
      for (int64_t l = 0; l < VL; ++l) {
        upper.push_back((l & hw) ? VL + l - hw : l);
        lower.push_back((l & hw) ? VL + l : l + hw);
      }
      for (int64_t i = 0; i < VL; ++i) {
        if (i & hw)
          continue;
        Value x = r[i], y = r[i + hw];
        r[i] = vector::ShuffleOp::create(b, loc, x, y, upper);
        r[i + hw] = vector::ShuffleOp::create(b, loc, x, y, lower);
      }
    }
  }

  /// probs[m][j] = bf16(st[j][m]) for the keys of [jLo, jHi), 0 for the
  /// other keys of the tile (their scores were not computed or masked).
  void emitProbsTranspose(Value st, Value probs, Value jLo, Value jHi) {
    Type bf16 = b.getBF16Type();
    auto loop = scf::ForOp::create(b, loc, idx(0), idx(N), idx(VL));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value j0 = loop.getInductionVar();
    SmallVector<Value> keep;
    for (int64_t i = 0; i < VL; ++i)
      keep.push_back(keyInRange(add(j0, idx(i)), jLo, jHi));
    auto chunkLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(VL));
    b.setInsertionPoint(chunkLoop.getBody()->getTerminator());
    Value c = chunkLoop.getInductionVar();
    SmallVector<Value> rows;
    for (int64_t i = 0; i < VL; ++i) {
      Value s = vector::LoadOp::create(b, loc, vecType(VL, f32), st,
                                       ValueRange{add(j0, idx(i)), c});
      rows.push_back(arith::SelectOp::create(b, loc, keep[i], s, splat(0.0f, VL)));
    }
    transpose16(rows);
    for (int64_t i = 0; i < VL; ++i)
      vector::StoreOp::create(
          b, loc, arith::TruncFOp::create(b, loc, vecType(VL, bf16), rows[i]),
          probs, ValueRange{add(c, idx(i)), j0});
  }

  /// valuePairs[j/2][2e + j%2] = value[j][e] for the keys of [jLo, jHi), 0
  /// for the others (so that a hidden value, even NaN, never meets a zero
  /// probability in a tile product).
  void emitValuePairs(Value vp, Value bIdx, Value hk, Value jLo, Value jHi) {
    Type bf16 = b.getBF16Type();
    Value zero = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vecType(VL, bf16), b.getZeroAttr(bf16)));
    SmallVector<int64_t> interleave;
    for (int64_t l = 0; l < VL; ++l) {
      interleave.push_back(l);
      interleave.push_back(VL + l);
    }
    auto loop = scf::ForOp::create(b, loc, idx(0), idx(N), idx(2));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value j = loop.getInductionVar();
    Value pair = arith::DivUIOp::create(b, loc, j, idx(2));
    Value keep0 = keyInRange(j, jLo, jHi);
    Value keep1 = keyInRange(add(j, idx(1)), jLo, jHi);
    for (int64_t e0 = 0; e0 < Dv; e0 += VL) {
      Value v0 = vector::LoadOp::create(b, loc, vecType(VL, bf16), value,
                                        ValueRange{bIdx, hk, j, idx(e0)});
      Value v1 = vector::LoadOp::create(b, loc, vecType(VL, bf16), value,
                                        ValueRange{bIdx, hk, add(j, idx(1)), idx(e0)});
      v0 = arith::SelectOp::create(b, loc, keep0, v0, zero);
      v1 = arith::SelectOp::create(b, loc, keep1, v1, zero);
      vector::StoreOp::create(b, loc, vector::ShuffleOp::create(b, loc, v0, v1, interleave),
                              vp, ValueRange{pair, idx(2 * e0)});
    }
  }

  /// acc[m][e] = alpha[m] * acc[m][e] + sum_j probs[m][j] * value[j][e]: the
  /// rescaling in vector code, then per 16 rows and up to four 16-column
  /// blocks of acc, C (loaded from acc) += A (probs, 16 x 32 keys) * B (the
  /// value pairs), over all N keys (probs and pairs are 0 outside
  /// [jLo, jHi); the loop has no tile-carried values).
  void emitProbsTimesValueAMX(Value probs, Value vp, Value alphaBuf,
                              Value bIdx, Value h) {
    auto rowLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(1));
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(rowLoop.getBody()->getTerminator());
      Value m = rowLoop.getInductionVar();
      Value a = bcast(memref::LoadOp::create(b, loc, alphaBuf, ValueRange{m}), VL);
      for (int64_t e0 = 0; e0 < Dv; e0 += VL) {
        Value cur = vector::LoadOp::create(b, loc, vecType(VL, f32), acc,
                                           ValueRange{bIdx, h, m, idx(e0)});
        vector::StoreOp::create(b, loc, arith::MulFOp::create(b, loc, cur, a),
                                acc, ValueRange{bIdx, h, m, idx(e0)});
      }
    }
    Type bf16 = b.getBF16Type();
    amx::TileType pairs = tileType(kPairCols, bf16), out = tileType(kTileRows, f32);
    auto mLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(kTileRows));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(mLoop.getBody()->getTerminator());
    Value m0 = mLoop.getInductionVar();
    auto accAt = [&](int64_t t) {
      return SmallVector<Value, 4>{bIdx, h, m0, idx(t * kTileRows)};
    };
    emitTileProducts(
        Dv / kTileRows, N / kPairCols,
        [&](int64_t t) {
          return amx::TileLoadOp::create(b, loc, out, acc, accAt(t));
        },
        [&](int64_t step) {
          return amx::TileLoadOp::create(b, loc, pairs, probs,
                                         ValueRange{m0, idx(step * kPairCols)});
        },
        [&](int64_t step, int64_t t) {
          return amx::TileLoadOp::create(
              b, loc, pairs, vp,
              ValueRange{idx(step * kPairCols / 2), idx(2 * t * kTileRows)});
        },
        [&](int64_t t, Value c) { amx::TileStoreOp::create(b, loc, acc, accAt(t), c); });
  }

  //===--------------------------------------------------------------------===//
  // Keys on the lanes, for tiles of a few query rows (decoding).
  //===--------------------------------------------------------------------===//

  /// Horizontal sums of 16 vectors at once: r[i] = sum of the lanes of
  /// parts[i], by a tree of two-source shuffles and adds (each level halves
  /// the number of vectors and of partial lanes per key, keeping key order).
  Value transposeReduce(SmallVector<Value> parts) {
    int64_t lanes = VL;
    while (parts.size() > 1) {
      int64_t keysPer = VL / lanes; // keys held by each input vector
      SmallVector<int64_t> lowMask, highMask;
      for (int64_t src = 0; src < 2; ++src)
        for (int64_t kk = 0; kk < keysPer; ++kk)
          for (int64_t t = 0; t < lanes / 2; ++t) {
            lowMask.push_back(src * VL + kk * lanes + t);
            highMask.push_back(src * VL + kk * lanes + lanes / 2 + t);
          }
      SmallVector<Value> next;
      for (size_t i = 0; i < parts.size(); i += 2) {
        Value lo = vector::ShuffleOp::create(b, loc, parts[i], parts[i + 1], lowMask);
        Value hi = vector::ShuffleOp::create(b, loc, parts[i], parts[i + 1], highMask);
        next.push_back(arith::AddFOp::create(b, loc, lo, hi));
      }
      parts = next;
      lanes /= 2;
    }
    return parts.front();
  }

  /// The lanes of key vector [j0, j0 + VL) of row m that are kept: inside
  /// [jLo, jHi), and inside the band.
  Value keyLanesKept(Value j0, Value m, Value jLo, Value jHi, Value qOff,
                     Value kOff) {
    VectorType iv = vecType(VL, i32);
    SmallVector<int32_t> lanes;
    for (int64_t l = 0; l < VL; ++l)
      lanes.push_back(static_cast<int32_t>(l));
    Value iota = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(iv, ArrayRef<int32_t>(lanes)));
    auto toI32 = [&](Value x) {
      return bcast(arith::IndexCastOp::create(b, loc, i32, x).getResult(), VL);
    };
    Value j = arith::AddIOp::create(b, loc, toI32(j0), iota);
    Value keep = arith::AndIOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j, toI32(jLo)),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j, toI32(jHi)));
    if (!band.isUnbounded()) {
      Value rel = arith::SubIOp::create(
          b, loc, arith::AddIOp::create(b, loc, j, toI32(kOff)),
          toI32(add(qOff, m)));
      keep = arith::AndIOp::create(b, loc, keep, band.buildKeeps(b, loc, rel));
    }
    return keep;
  }

  /// S[m][j] = scale * query[m] . key[j] for every key (keys on the lanes),
  /// then the row statistics and P = exp(S - m'), for each of the M rows.
  void emitRowMajorSoftmax(Value sr, Value alphaBuf, Value bIdx, Value h,
                           Value hk, Value jLo, Value jHi, Value qOff,
                           Value kOff) {
    int64_t dChunks = D / VL, nBlocks = (N + VL - 1) / VL;
    Value scale = splat(static_cast<float>(detail.scale()), VL);
    auto rowLoop = scf::ForOp::create(b, loc, idx(0), idx(M), idx(1));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(rowLoop.getBody()->getTerminator());
    Value m = rowLoop.getInductionVar();
    SmallVector<Value> qrow;
    for (int64_t dc = 0; dc < dChunks; ++dc)
      qrow.push_back(arith::MulFOp::create(
          b, loc, loadVec(query, {bIdx, h, m, idx(dc * VL)}, VL), scale));
    // Scores, VL keys at a time.
    auto blockLoop = scf::ForOp::create(b, loc, idx(0), idx(nBlocks * VL), idx(VL));
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPoint(blockLoop.getBody()->getTerminator());
      Value j0 = blockLoop.getInductionVar();
      SmallVector<Value> parts;
      for (int64_t jj = 0; jj < VL; ++jj) {
        // Keys past the tile (N % VL != 0) read the last key; masked below.
        Value j = minI(add(j0, idx(jj)), idx(N - 1));
        Value acc = splat(0.0f, VL);
        for (int64_t dc = 0; dc < dChunks; ++dc)
          acc = fma(loadVec(key, {bIdx, hk, j, idx(dc * VL)}, VL), qrow[dc], acc);
        parts.push_back(acc);
      }
      Value s = transposeReduce(parts);
      if (bias) {
        SmallVector<Value> elems;
        auto t = cast<MemRefType>(bias.getType());
        for (int64_t l = 0; l < VL; ++l)
          elems.push_back(loadScalar(
              bias, {t.getDimSize(0) == 1 ? idx(0) : bIdx,
                     t.getDimSize(1) == 1 ? idx(0) : h,
                     t.getDimSize(2) == 1 ? idx(0) : m,
                     minI(add(j0, idx(l)), idx(N - 1))}));
        s = arith::AddFOp::create(
            b, loc, s, vector::FromElementsOp::create(b, loc, vecType(VL, f32), elems));
      }
      Value keep = keyLanesKept(j0, m, jLo, jHi, qOff, kOff);
      if (mask) {
        SmallVector<Value> elems;
        auto t = cast<MemRefType>(mask.getType());
        for (int64_t l = 0; l < VL; ++l)
          elems.push_back(memref::LoadOp::create(
              b, loc, mask,
              ValueRange{t.getDimSize(0) == 1 ? idx(0) : bIdx,
                         t.getDimSize(1) == 1 ? idx(0) : h,
                         t.getDimSize(2) == 1 ? idx(0) : m,
                         minI(add(j0, idx(l)), idx(N - 1))}));
        keep = arith::AndIOp::create(
            b, loc, keep,
            vector::FromElementsOp::create(b, loc, vecType(VL, b.getI1Type()), elems));
      }
      s = arith::SelectOp::create(b, loc, keep, s, splat(kNegInf, VL));
      vector::StoreOp::create(b, loc, s, sr, ValueRange{m, j0});
    }
    // Row statistics (horizontal over the key lanes).
    auto maxLoop = scf::ForOp::create(b, loc, idx(0), idx(nBlocks * VL), idx(VL),
                                      ValueRange{splat(kNegInf, VL)});
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(maxLoop.getBody());
      Value sv = vector::LoadOp::create(b, loc, vecType(VL, f32), sr,
                                        ValueRange{m, maxLoop.getInductionVar()});
      scf::YieldOp::create(b, loc, runningMax(maxLoop.getRegionIterArgs()[0], sv));
    }
    Value rowMax = vector::ReductionOp::create(b, loc, vector::CombiningKind::MAXIMUMF,
                                               maxLoop.getResult(0));
    Value mOld = memref::LoadOp::create(b, loc, max, ValueRange{bIdx, h, m});
    Value lOld = memref::LoadOp::create(b, loc, sum, ValueRange{bIdx, h, m});
    Value mNew = arith::MaximumFOp::create(b, loc, mOld, rowMax);
    Value isNegInf = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, mNew,
                                           fconst(kNegInf));
    Value mSafe = arith::SelectOp::create(b, loc, isNegInf, fconst(0.0f), mNew);
    Value alpha = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, mOld, mSafe));
    Value mSafeV = bcast(mSafe, VL);
    auto sumLoop = scf::ForOp::create(b, loc, idx(0), idx(nBlocks * VL), idx(VL),
                                      ValueRange{splat(0.0f, VL)});
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(sumLoop.getBody());
      Value j0 = sumLoop.getInductionVar();
      Value sv = vector::LoadOp::create(b, loc, vecType(VL, f32), sr, ValueRange{m, j0});
      Value p = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, sv, mSafeV));
      vector::StoreOp::create(b, loc, p, sr, ValueRange{m, j0});
      scf::YieldOp::create(
          b, loc, arith::AddFOp::create(b, loc, sumLoop.getRegionIterArgs()[0], p)
                      .getResult());
    }
    Value rowSum = vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                               sumLoop.getResult(0));
    Value lNew = arith::AddFOp::create(b, loc, arith::MulFOp::create(b, loc, lOld, alpha),
                                       rowSum);
    memref::StoreOp::create(b, loc, mNew, max, ValueRange{bIdx, h, m});
    memref::StoreOp::create(b, loc, lNew, sum, ValueRange{bIdx, h, m});
    memref::StoreOp::create(b, loc, alpha, alphaBuf, ValueRange{m});
  }

  /// The whole tile, given the transposed query and scratch buffers.
  void emitTile(Value qt, const Scratch &scratch) {
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

  /// Keys on the lanes (S as [rows][keys]) for tiles of at most 4 query
  /// rows, where queries on the lanes would leave most lanes idle.
  bool rowMajor() const { return M <= 4 && D % VL == 0; }

  /// q_bound in the coordinates of qOff (which includes a bottom-right
  /// shift), or null.
  Value shiftedQBound(Value qOff) {
    Value qBound = detail.qBound();
    if (qBound && detail.maskKind())
      qBound = add(qBound, idx(detail.maskKind().getDiagonalShift(M, N)));
    return qBound;
  }

  void emitHead(Value qt, const Scratch &scratch, Value bIdx, Value h,
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
};

} // namespace

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
