//===- CPUTileLowering.h - CPU tile stages and their microkernels -*- C++ -*-===//
//
// The CPU road of one attn.online_attention tile, in three passes:
//
//   attn-cpu-decompose-online-attention (CPUDecomposeOnlineAttention.cpp)
//     on tensors: each tile becomes linalg.generic stages, tagged with
//     kStageAttr, inside the key loop (the stage contract is below);
//   attn-cpu-plan-stages (CPUPlanStages.cpp)
//     on tensors: decides each stage's lowering from its structure and
//     which producers of its init operand a microkernel folds in;
//   attn-cpu-lower-stages (CPULowerStages.cpp)
//     on buffers: each stage whose structure (its iterator types, indexing
//     maps and whole body: CPUStageMatch.cpp) still matches its plan is
//     lowered by the microkernel that computes exactly that function (the
//     contractions: CPUTileScores.cpp, CPUTileAMX.cpp, CPUTileDecode.cpp,
//     CPUTileProbsTimesValue.cpp; the reductions: CPUTileReductions.cpp)
//     or by the region vectorizer
//     (CPUVectorizeStage.cpp: the elementwise stages, among them the score
//     stage, whose region is the one place a score modification or a mask
//     test lives). A stage that matches no family is left to the loop
//     lowering, which computes what its body says; tags are hints only.
//
// Internal to lib/Transforms/CPU.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_CPU_CPUTILELOWERING_H
#define ATTN_LIB_TRANSFORMS_CPU_CPUTILELOWERING_H

#include "attn/Transforms/CPU/CPUTarget.h"
#include "attn/Transforms/LinalgBuilders.h"
#include "attn/Transforms/Transforms.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"

namespace mlir {
namespace attn {
namespace cpu {

//===----------------------------------------------------------------------===//
// The stage contract between the decomposition and the lowering.
//
// Two layouts of the score tile S (f32), chosen by the decomposition from
// the CPU target and the tile (kStageLayoutAttr):
//   query lanes  S^T [N][Mp]: queries on the vector lanes (Mp = M rounded up
//                to the f32 lanes); the query is scaled and transposed (or
//                paired for bf16 dot products) once per query block;
//   key lanes    S [M][N]: keys on the lanes, for tiles of at most
//                kMaxCPUDecodeTileRows rows (decoding).
// Stages (kStageAttr), each a linalg.generic whose region is its exact
// semantics; indices: j key, m query row, d / p head_dim (pairs), e v_dim:
//   query     outs QT [D][Mp] f32 = scale * Q^T, or QP [D/2][2 Mp] bf16
//             pairs; rows >= M are 0. Lowered to loops (once per block).
//   scores    the Q K^T contraction into S (outs, zero-filled by a
//             linalg.fill); kSchemeAttr: fma (K (j,d),
//             QT (d,m)), bf16_dot / amx (K (j,p,r), QP (p,m,r): the
//             2-D buffers expanded so that a pair is a dimension), rows
//             (Q (m,d), K (j,d)).
//   score     elementwise on S (outs only): scale (bf16 / key lanes), bias,
//             tensor mask, band and key range tests; hidden scores -inf.
//   max       reduction over j into the running max (outs, initialised with
//             the old max): query lanes ins (jLo, jHi).
//   alpha     elementwise over rows: ins (m_old, m_new, l_old), outs
//             (alpha = exp(m_old - m_new'), l_old * alpha) with
//             m' = (m == -inf ? 0 : m).
//   exp_sum   outs (S, l): S = exp(S - m_new'), l += S over j; query lanes
//             ins (m_new, jLo, jHi) and only keys in [jLo, jHi).
//   rescale   elementwise acc[m][e] *= alpha[m]: ins (alpha), outs (acc).
//   pv        acc[m][e] = keep ? acc + P[j][m] V[j][e] : acc, keep the
//             conjunction of jLo <= j < jHi, the band on
//             rel = (kv_offset + j) - (q_offset + m) and, for tensor masks,
//             p != 0: ins (P, V, jLo, jHi, q_offset, kv_offset);
//             kSchemeAttr fma or amx. The lowering reads the band and the
//             p != 0 guard off the body.
//===----------------------------------------------------------------------===//

//===----------------------------------------------------------------------===//
// Planning on tensors (attn-cpu-plan-stages).
//
// kPlannedKernelAttr on a stage: getStageKindName of what its structure
// computed on tensors; attn-cpu-lower-stages takes that microkernel only if
// the stage still matches it after bufferization (anything else: loops).
// kFoldedIntoAttr on a producer (a linalg.fill, or a rescale stage): the
// name of the stage kind that folds it in. The planner sets it only where
// the producer's result is the stage's init operand and the stage is its
// only reader, so that after in-place bufferization nothing touches the
// buffer they share between the two; the lowering erases a folded producer
// with the stage it lowers, and leaves it in place otherwise.
//===----------------------------------------------------------------------===//

constexpr llvm::StringLiteral kPlannedKernelAttr = "attn.cpu_kernel";
constexpr llvm::StringLiteral kFoldedIntoAttr = "attn.cpu_folded_into";

constexpr llvm::StringLiteral kStageAttr = "attn.cpu_stage";
constexpr llvm::StringLiteral kSchemeAttr = "attn.cpu_scheme";
constexpr llvm::StringLiteral kStageLayoutAttr = "attn.cpu_layout";

constexpr llvm::StringLiteral kQueryLanes = "query_lanes";
constexpr llvm::StringLiteral kKeyLanes = "key_lanes";

/// AMX tiles hold at most 16 rows of 64 bytes.
constexpr int64_t kAMXTileRows = 16, kAMXPairCols = 32;

/// Whether a bf16 tile suits AMX: whole 16x16 score and output tiles and
/// whole 32-wide reductions, no tensor mask.
inline bool amxApplies(const AttentionDims &d, bool hasTensorMask) {
  return !hasTensorMask && d.qLen % kAMXTileRows == 0 &&
         d.kvLen % kAMXPairCols == 0 && d.headDim % kAMXPairCols == 0 &&
         d.vHeadDim % kAMXTileRows == 0;
}

/// Keys on the lanes for tiles of a few query rows, where queries on the
/// lanes would leave most lanes idle.
inline bool useKeyLanes(const AttentionDims &d, int64_t vectorWidth) {
  return d.qLen <= kMaxCPUDecodeTileRows && d.headDim % vectorWidth == 0;
}

/// Emits loops over [0, total) in blocks of `block`: an scf.for over the
/// full blocks and one remainder block, calling body(start, count).
void forBlocks(OpBuilder &b, Location loc, int64_t total, int64_t block,
               function_ref<void(Value, int64_t)> body);

//===----------------------------------------------------------------------===//
// Matching stages by structure (CPUStageMatch.cpp).
//===----------------------------------------------------------------------===//

/// What a tile stage computes, read from its iterator types, indexing maps
/// and whole body (never from its tags, which are layout hints at most).
/// Indices as in the stage contract above: j key, m query row, d / p
/// head_dim (pairs), e v_dim; "lanes" is the layout with queries on the
/// vector lanes, "rows" the one with keys on the lanes.
struct StageMatch {
  enum class Kind {
    /// Anything else: left to the loop lowering, which computes whatever
    /// the body says.
    None,
    ScoresLanes,     // S[j][m] += K[j][d] * QT[d][m]
    ScoresPairs,     // S[j][m] += K[j][p][r] * QP[p][m][r] (bf16 pairs)
    ScoresRows,      // S[m][j] += Q[m][d] * K[j][d]
    MaxLanes,        // mx[m] = S[j][m] > mx[m] ? S : mx, j in [jLo, jHi)
    MaxRows,         // mx[m] = S[m][j] > mx[m] ? S : mx
    ExpSumLanes,     // S[j][m] = exp(S - safe(mNew[m])), l[m] += S, j in
                     // [jLo, jHi)
    ExpSumRows,      // S[m][j] = exp(S - safe(mNew[m])), l[m] += S
    Rescale,         // acc[m][e] *= alpha[m]
    ProbsTimesValue, // acc[m][e] = keep ? acc + P[j][m] V[j][e] : acc
    Elementwise,     // every loop parallel: the region vectorizer
  };
  Kind kind = Kind::None;
  /// ProbsTimesValue: P is [m][j] (keys on the lanes) rather than [j][m];
  /// the band its guard tests on rel = (kv_offset + j) - (q_offset + m);
  /// whether it also guards on p != 0 (tensor masks).
  bool rowMajorP = false;
  KeyBand band;
  bool guardZero = false;
  /// The index operands the body uses as the key range [jLo, jHi)
  /// (MaxLanes, ExpSumLanes, ProbsTimesValue) and, for the band, as the
  /// positions of row 0 and key 0.
  Value jLo, jHi, qOff, kOff;
  /// For None: what did not match.
  std::string reason;
};

/// Matches `op` against the stage families the microkernels compute.
StageMatch matchStage(linalg::GenericOp op);
/// A few words naming a kind, for remarks.
StringRef stringifyStageKind(StageMatch::Kind kind);
/// The kind's name in kPlannedKernelAttr and kFoldedIntoAttr
/// (`scores_lanes`, `max_rows`, `pv`, ..., `loops` for None).
StringRef getStageKindName(StageMatch::Kind kind);

/// The stage tag (kStageAttr) of `op`, or empty.
inline StringRef stageName(Operation *op) {
  auto a = op->getAttrOfType<StringAttr>(kStageAttr);
  return a ? a.getValue() : StringRef();
}

/// Lowers an elementwise stage (all loops parallel, static, buffers) by
/// vectorizing its region along the innermost loop: see
/// CPUVectorizeStage.cpp. Fails, changing nothing, for a region it cannot
/// vectorize.
LogicalResult vectorizeElementwiseStage(RewriterBase &rewriter,
                                        linalg::GenericOp op,
                                        int64_t vectorWidth);

//===----------------------------------------------------------------------===//
// The microkernels: vector code for one stage on 2-D buffers.
//===----------------------------------------------------------------------===//

/// Builder, vector width and small IR helpers shared by the microkernels.
struct StageBuilder {
  OpBuilder &b;
  Location loc;
  int64_t VL;
  /// Vector registers the microkernels block for
  /// (CPUTargetInfo::fmaRegisterBlock).
  int64_t vectorRegisters;
  Type f32, i32;

  StageBuilder(OpBuilder &b, Location loc, int64_t vectorWidth,
               int64_t vectorRegisters = 32)
      : b(b), loc(loc), VL(vectorWidth), vectorRegisters(vectorRegisters),
        f32(b.getF32Type()), i32(b.getI32Type()) {}

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
  /// The online softmax's safe max (buildSafeMax, LinalgBuilders.h).
  Value safeMax(Value m) { return builders::buildSafeMax(b, loc, m); }
  /// Keys [from, to) rounded out to multiples of `align` (within [0, n)).
  std::pair<Value, Value> alignKeys(Value from, Value to, int64_t align,
                                    int64_t n);

  //===--------------------------------------------------------------------===//
  // Q K^T (scores stage).
  //===--------------------------------------------------------------------===//

  /// st[j][m] = sum_d key[j][d] * qt[d][m] for all N keys, queries on the
  /// lanes, register blocks of CPUTargetInfo::fmaRegisterBlock (up to 24
  /// accumulators with 32 registers, 12 with 16) with each key element
  /// broadcast. The head_dim is reduced in chunks of at most 64, so that the
  /// chunk of the transposed query that every key block reads stays in L1;
  /// partial sums go through st between chunks.
  void emitScores(Value key, Value qt, Value st);

  /// st[j][m] = sum_d key[j][d] * query[m][d] with vdpbf16ps (AVX512-BF16):
  /// each pair (key[j][2p], key[j][2p+1]) broadcast as 32 bits against the
  /// query pairs qp[p][2m..2m+1] of 16 rows, accumulating in f32.
  void emitScoresBF16(Value key, Value qp, Value st);

  /// AMX: st[j][m] = sum_d key[j][d] * query[m][d] for all keys, in blocks
  /// of 16 keys: C (16 keys x 16 queries, f32) += A (16 keys x 32 head_dim of
  /// the key, read in place) * B (the query pairs qp[d0/2 ..][2 m0 ..]), up
  /// to four C tiles per key block so that each key tile is loaded once.
  void emitScoresAMX(Value key, Value qp, Value st);

  /// Keys on the lanes: st[m][j] = query[m] . key[j] for every key, VL keys
  /// at a time, with the horizontal sums of VL keys done at once
  /// (transposeReduce).
  void emitScoresRows(Value query, Value key, Value st);

  /// Horizontal sums of VL vectors at once: r[i] = sum of the lanes of
  /// parts[i], by a tree of two-source shuffles and adds (each level halves
  /// the number of vectors and of partial lanes per key, keeping key order).
  Value transposeReduce(SmallVector<Value> parts);

  //===--------------------------------------------------------------------===//
  // The row statistics (max and exp_sum stages).
  //===--------------------------------------------------------------------===//

  /// Queries on the lanes: mx[c..c+VL) = running max of mx (-inf with
  /// negInfInit: its fill folded in) and st[j][c..]
  /// over j in [jLo, jHi), for each chunk c of Mp. Keys go in pairs with two
  /// running maxima (halving the loop-carried chain), then the odd one.
  void emitRowMaxLanes(Value st, Value mx, Value jLo, Value jHi,
                       bool negInfInit);
  /// Keys on the lanes: mx[m] = running max of mx[m] and st[m][j] over all j.
  void emitRowMaxRows(Value st, Value mx, bool negInfInit);
  /// Queries on the lanes: st[j][c..] = exp(st - safe(mNew)), l += st over
  /// j in [jLo, jHi).
  void emitExpSumLanes(Value st, Value l, Value mNew, Value jLo, Value jHi);
  /// Keys on the lanes: the same per row over all keys.
  void emitExpSumRows(Value st, Value l, Value mNew);

  //===--------------------------------------------------------------------===//
  // P V (pv stage, with the rescale stage folded in).
  //===--------------------------------------------------------------------===//

  /// The keys each row of the pv stage keeps and how they are read.
  struct KeyGuard {
    KeyBand band;
    Value jLo, jHi, qOff, kOff;
    bool guardZero = false; // tensor masks: also p != 0
  };

  /// acc[m][e] = alpha[m] * acc + sum_j p[j][m] * value[j][e] (p[m][j] when
  /// `rowMajorP`) over the keys each row keeps, head_dim on the lanes, each
  /// probability broadcast; `alpha` may be null (no rescaling). For a band
  /// mask, each block of rows splits [jLo, jHi) into the keys every row of
  /// the block keeps (plain FMAs) and the keys only some rows keep (FMAs
  /// guarded per row, so that a value a row does not keep, even NaN, never
  /// reaches it); with guardZero every FMA is guarded by p != 0.
  void emitProbsTimesValue(Value p, Value value, Value acc, Value alpha,
                           const KeyGuard &guard, bool rowMajorP);

  /// AMX: the rescaling in vector code, then probs[m][j] = bf16(p[j][m]) and
  /// value pairs vp[j/2][2e + j%2] for the keys of [jLo, jHi) (0 for the
  /// others, so that a hidden value, even NaN, never meets a zero
  /// probability), then per 16 rows and up to four 16-column blocks of acc,
  /// C (loaded from acc) += A (probs, 16 x 32 keys) * B (value pairs).
  void emitProbsTimesValueAMX(Value p, Value value, Value acc, Value alpha,
                              Value jLo, Value jHi, Value probs, Value vp);

  //===--------------------------------------------------------------------===//
  // AMX helpers.
  //===--------------------------------------------------------------------===//

  /// Output tiles at most kTileGroup at a time, so that their C tiles, one
  /// A and one B tile fit the 8 AMX tile registers.
  static constexpr int64_t kTileGroup = 4;
  amx::TileType tileType(int64_t cols, Type elt) {
    return amx::TileType::get({kAMXTileRows, cols}, elt);
  }
  /// i1: jLo <= j < jHi.
  Value keyInRange(Value j, Value jLo, Value jHi) {
    return arith::AndIOp::create(
        b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j, jLo),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j, jHi));
  }
  /// For each output tile t < `outputs`: c = init(t) + sum over the `steps`
  /// reduction steps s of loadA(s) * loadB(s, t) (amx.tile_mulf), then
  /// store(t, c); each A tile is loaded once per group of output tiles.
  void emitTileProducts(int64_t outputs, int64_t steps,
                        function_ref<Value(int64_t)> init,
                        function_ref<Value(int64_t)> loadA,
                        function_ref<Value(int64_t, int64_t)> loadB,
                        function_ref<void(int64_t, Value)> store);
  /// 16 x 16 transposition of the rows `r` (16 vectors of 16 lanes) by four
  /// rounds of two-source shuffles, each swapping the off-diagonal blocks of
  /// size h = 8, 4, 2, 1 of every 2h x 2h block.
  void transpose16(SmallVector<Value> &r);
};

/// Static sizes of a 2-D buffer.
inline int64_t dimOf(Value memref, unsigned i) {
  return cast<MemRefType>(memref.getType()).getDimSize(i);
}

} // namespace cpu
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_CPU_CPUTILELOWERING_H
