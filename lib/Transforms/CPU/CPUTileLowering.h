//===- CPUTileLowering.h - tile -> vector code, shared state ---*- C++ -*-===//
//
// The state and the stages of the CPU lowering of one bufferized
// attn.online_attention tile (see CPULowerOnlineAttention.cpp for the
// algorithm), split by responsibility:
//
//   CPULowerOnlineAttention.cpp  the driver: query hoisting, scratch
//                                buffers, key ranges, per-head order of the
//                                stages, the pass
//   CPUTileScores.cpp            query layouts, Q K^T on FMA and AVX512-BF16,
//                                the score stage (bias, tensor mask, band),
//                                row max, P V
//   CPUTileAMX.cpp               both contractions on AMX tiles (bf16)
//   CPUTileDecode.cpp            keys on the lanes for tiles of a few rows
//
// Internal to lib/Transforms/CPU.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_CPU_CPUTILELOWERING_H
#define ATTN_LIB_TRANSFORMS_CPU_CPUTILELOWERING_H

#include "attn/Transforms/Transforms.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"

namespace mlir {
namespace attn {
namespace cpu {

/// The tile's op, builder, sizes (B, Hq, Hk, G, M, N, D, Dv; M padded to
/// Mp, a multiple of the VL f32 lanes), key band and small IR helpers.
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
               function_ref<void(Value, int64_t)> body);

/// Lowers one tile: the operands, the chosen contraction schemes (FMA,
/// AVX512-BF16, AMX) and the stages, defined in the files listed above.
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
                           function_ref<void(ValueRange, Value)> store);

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
  void emitScoresBF16(Value qt, Value st, Value bIdx, Value h, Value hk);

  /// st[j][m] = sum_d key[b][hk][j][d] * qt[b][h][d][m] for all N keys.
  /// The head_dim is reduced in chunks of at most 64, so that the chunk of
  /// the transposed query that every key block reads stays in L1; partial
  /// sums go through st between chunks.
  void emitScores(Value qt, Value st, Value bIdx, Value h, Value hk);

  /// The per-element masking of st[j][c..c+VL) (bias added first); returns
  /// the masked scores and the keep predicate (null when all kept).
  std::pair<Value, Value> maskScores(Value s, Value j, Value c, Value bIdx,
                                     Value h, Value qOff, Value kOff,
                                     bool applyBand);

  /// Row max over [jLo, jHi) of chunk c, masking in place when asked. Keys
  /// go in pairs with two running maxima (halving the loop-carried chain),
  /// then the odd one.
  Value emitRowMax(Value st, Value c, Value jLo, Value jHi, bool masked,
                   bool applyBand, Value bIdx, Value h, Value qOff, Value kOff);

  /// acc[b][h][m][e] = alpha[m] * acc + sum_j st[j][m] * value[j][e] over
  /// the keys each row keeps. For a band mask, each block of rows splits
  /// [jLo, jHi) into the keys every row of the block keeps (plain FMAs) and
  /// the keys only some rows keep (FMAs guarded per row, so that a value a
  /// row does not keep, even NaN, never reaches it); with a tensor mask every
  /// FMA is guarded by p != 0.
  void emitProbsTimesValue(Value st, Value alphaBuf, Value bIdx, Value h,
                           Value hk, Value jLo, Value jHi, Value qOff,
                           Value kOff, bool rowMajor = false);


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
                        function_ref<void(int64_t, Value)> store);

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
                     Value jLo, Value jHi);

  /// 16 x 16 transposition of the rows `r` (16 vectors of 16 lanes) by four
  /// rounds of two-source shuffles, each swapping the off-diagonal blocks of
  /// size h = 8, 4, 2, 1 of every 2h x 2h block.
  void transpose16(SmallVector<Value> &r);

  /// probs[m][j] = bf16(st[j][m]) for the keys of [jLo, jHi), 0 for the
  /// other keys of the tile (their scores were not computed or masked).
  void emitProbsTranspose(Value st, Value probs, Value jLo, Value jHi);

  /// valuePairs[j/2][2e + j%2] = value[j][e] for the keys of [jLo, jHi), 0
  /// for the others (so that a hidden value, even NaN, never meets a zero
  /// probability in a tile product).
  void emitValuePairs(Value vp, Value bIdx, Value hk, Value jLo, Value jHi);

  /// acc[m][e] = alpha[m] * acc[m][e] + sum_j probs[m][j] * value[j][e]: the
  /// rescaling in vector code, then per 16 rows and up to four 16-column
  /// blocks of acc, C (loaded from acc) += A (probs, 16 x 32 keys) * B (the
  /// value pairs), over all N keys (probs and pairs are 0 outside
  /// [jLo, jHi); the loop has no tile-carried values).
  void emitProbsTimesValueAMX(Value probs, Value vp, Value alphaBuf,
                              Value bIdx, Value h);

  //===--------------------------------------------------------------------===//
  // Keys on the lanes, for tiles of a few query rows (decoding).
  //===--------------------------------------------------------------------===//

  /// Horizontal sums of 16 vectors at once: r[i] = sum of the lanes of
  /// parts[i], by a tree of two-source shuffles and adds (each level halves
  /// the number of vectors and of partial lanes per key, keeping key order).
  Value transposeReduce(SmallVector<Value> parts);

  /// The lanes of key vector [j0, j0 + VL) of row m that are kept: inside
  /// [jLo, jHi), and inside the band.
  Value keyLanesKept(Value j0, Value m, Value jLo, Value jHi, Value qOff,
                     Value kOff);

  /// S[m][j] = scale * query[m] . key[j] for every key (keys on the lanes),
  /// then the row statistics and P = exp(S - m'), for each of the M rows.
  void emitRowMajorSoftmax(Value sr, Value alphaBuf, Value bIdx, Value h,
                           Value hk, Value jLo, Value jHi, Value qOff,
                           Value kOff);

  /// The whole tile, given the transposed query and scratch buffers.
  void emitTile(Value qt, const Scratch &scratch);

  /// Keys on the lanes (S as [rows][keys]) for tiles of at most
  /// kMaxCPUDecodeTileRows query rows, where queries on the lanes would
  /// leave most lanes idle.
  bool rowMajor() const { return M <= kMaxCPUDecodeTileRows && D % VL == 0; }

  /// q_bound in the coordinates of qOff (which includes a bottom-right
  /// shift), or null.
  Value shiftedQBound(Value qOff) {
    Value qBound = detail.qBound();
    if (qBound && detail.maskKind())
      qBound = add(qBound, idx(detail.maskKind().getDiagonalShift(M, N)));
    return qBound;
  }

  void emitHead(Value qt, const Scratch &scratch, Value bIdx, Value h,
                Value qOff, Value kOff);
};

} // namespace cpu
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_CPU_CPUTILELOWERING_H
