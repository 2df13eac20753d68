//===- WorkgroupCodegen.h - target-neutral GPU kernel pieces ----*- C++ -*-===//
//
// What every GPU target's workgroup lowering shares: an arithmetic emitter
// (whose exp2, log2 and shuffles come from the GPUTargetInfo), the static
// facts of a tiled workgroup (tile shape, mask kind, the values the key loop
// needs) and the key-block visibility and element-mask helpers over the
// KeyBand of the op detail. WorkgroupAnalysis.h reads a tiled workgroup into
// these; lib/Transforms/CUDA emits NVIDIA kernels from them. Internal to
// lib/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_GPU_WORKGROUPCODEGEN_H
#define ATTN_LIB_TRANSFORMS_GPU_WORKGROUPCODEGEN_H

#include "attn/Transforms/GPU/GPUTarget.h"
#include "dialect/attn/IR/AttnOpDetail.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace attn {
namespace gpu_lowering {

/// Index / float arithmetic at the builder's insertion point.
struct Emitter {
  OpBuilder &b;
  Location loc;
  /// The GPU's fast exp2 / log2 and subgroup size; null: math.exp2 /
  /// math.log2 and 32-lane shuffles.
  const GPUTargetInfo *target = nullptr;

  Value idx(int64_t v);
  Value i32(int64_t v);
  Value f32(double v);
  Value add(Value x, Value y);
  Value sub(Value x, Value y);
  Value mul(Value x, Value y);
  Value minI(Value x, Value y);
  Value maxI(Value x, Value y);
  Value cmpI(arith::CmpIPredicate pred, Value x, Value y);
  Value andI(Value x, Value y);
  Value select(Value cond, Value x, Value y);
  /// Result `result` of `map` applied to `operands` (affine.apply).
  Value apply(AffineMap map, unsigned result, ValueRange operands);
  /// Index -> i32 and back.
  Value toI32(Value v);
  /// exp2 / log2 with the target's fast intrinsics (CUDA: the PTX
  /// approximations ex2.approx.ftz.f32 and lg2.approx.ftz.f32, relative error
  /// about 2^-22, no libdevice needed), else math.exp2 / math.log2.
  Value exp2(Value x);
  Value log2(Value x);
  /// Butterfly shuffle of an f32 within the subgroup (gpu.shuffle xor;
  /// CUDA: shfl.sync.bfly).
  Value shuffleXor(Value x, int32_t mask);
};

/// Static facts of a workgroup tile.
struct TileShape {
  Type elementType;       // of query, key and value: f16, bf16 or f32
  Type outputElementType; // of the output
  int64_t blockQ, blockK, headDim, vHeadDim;
  bool hasLse = false;
};

/// How keys are hidden: a band relative to the diagonal (causal, sliding
/// window) and a limit on absolute key positions (kv_bound, kv_lens).
struct MaskInfo {
  KeyBand band;
  /// The tile's own bottom-right shift (tile kv_len - tile q_len); tiling
  /// folds alignments into the query offset, so this is usually 0.
  int64_t shift = 0;
  bool hasKeyLimit = false;
  bool maskFree() const { return band.isUnbounded() && !hasKeyLimit; }
};

/// Values every block codegen needs, materialised in the kernel before the
/// key loop.
struct KernelInputs {
  Value threadId, warpId, laneId;
  /// query memref and the offsets of the tile's first element; rows of real
  /// data (the rest of the tile is padding, never stored).
  Value query;
  SmallVector<Value> queryOffsets;
  Value queryRows;
  /// Absolute position of query row 0 on the key axis (the op's q_offset).
  Value queryPos;
  Value output;
  SmallVector<Value> outputOffsets;
  Value outputRows;
  Value lse; // optional
  SmallVector<Value> lseOffsets;
};

/// Positions of one key block: its first key's absolute position and the
/// absolute position from which keys are hidden (kv_bound / kv_lens).
struct BlockPositions {
  Value keyPos;   // index
  Value keyLimit; // index; a huge value when nothing limits the keys
};

/// Shared-memory views: key and value tiles of the two pipeline stages,
/// memref<2 x blockK x (dim + pad) x T, workgroup>, and the dynamic shared
/// memory base (memref<?xi8, workgroup>) with the byte offset of the
/// codegen's own scratch.
struct SharedTiles {
  Value keys, values, base;
  int64_t scratchOffset = 0;
};

/// Visibility of a key block for query rows [rowFirst, rowLast] (absolute):
/// `any` when some (row, key) pair is kept, `all` when every pair is.
struct Visibility {
  Value any, all;
};
Visibility getVisibility(Emitter &e, const MaskInfo &mask, Value rowFirst,
                         Value rowLast, const BlockPositions &pos,
                         int64_t blockK);

/// Per-block constants for element masks: for the row at local index `row`
/// and the key at local index `col`, keep(row, col) is
///   lower <= relBase + col - row <= upper  and  col < colLimit.
struct ElementMask {
  Value relBase;  // i32: keyPos - queryPos - shift
  Value colLimit; // i32: keyLimit - keyPos clamped to [0, blockK]
};
ElementMask getElementMask(Emitter &e, const MaskInfo &mask,
                           const KernelInputs &in, const BlockPositions &pos,
                           int64_t blockK);
/// i1: keep(row, col) for i32 `row` and `col` (local indices).
Value keepElement(Emitter &e, const MaskInfo &mask, const ElementMask &em,
                  Value row, Value col);

/// log2(e) and ln(2) (the running max starts at attn::kNegInf).
constexpr double kLog2E = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

/// The score hook of the CUDA tile code, shared by the tensor-core and the
/// FMA (SIMT) emitters: what happens to each raw score q . k before the
/// online softmax, the CUDA counterpart of builders::buildScoreElement (a
/// score modification on CUDA is written here once). A positive scale is
/// folded into exp2's factor (expFactor = scale * log2 e, FlashAttention-2's
/// trick); a zero or negative one is multiplied in first (preScale), so that
/// the running max is taken on the scaled scores. Hidden keys get -inf.
struct ScoreHook {
  double scale;

  bool preScale() const { return scale <= 0; }
  /// The factor of exp2 for scores in the units of the running max.
  double expFactor() const { return preScale() ? kLog2E : scale * kLog2E; }
  /// `s` (f32 or a vector of f32) multiplied by the scale when preScale.
  Value applyScale(Emitter &e, Value s) const;
  /// keep(row, col) ? s : -inf, for i32 local `row` and `col`.
  Value applyMask(Emitter &e, const MaskInfo &mask, const ElementMask &em,
                  Value row, Value col, Value s) const;
};

/// The end of the online softmax for one row, in the epilogue of both CUDA
/// emitters: the row sum `l` summed over the `lanes` lanes that hold parts
/// of it (xor shuffles), `empty` = (l == 0) for a row with no visible key,
/// and the output factor `inv` = empty ? 0 : 1 / l.
struct RowNormalizer {
  Value l, empty, inv;
};
RowNormalizer normalizeRow(Emitter &e, Value l, int64_t lanes);

/// When local row `row` is a real row (row < outputRows), stores
/// out[row][col(k)] = acc(k) * inv, cast to the output element type, for
/// `count` vectors of `width` f32 (acc and col are called inside the guard),
/// then the row's log-sum-exp (storeLogSumExp with `writer`, the running
/// max `m` and the normalizer).
void storeOutputRow(Emitter &e, const KernelInputs &in, Value row,
                    int64_t count, int64_t width,
                    function_ref<Value(int64_t)> acc,
                    function_ref<Value(int64_t)> col, Type outputElementType,
                    const RowNormalizer &norm, Value writer, Value m,
                    double expFactor);

/// Epilogue: when `writer` holds, stores the log-sum-exp of local row `row`,
/// ln(sum_j exp(scale s_j)) = (m * expFactor + log2 l) * ln 2 for the
/// running max `m` (in score units) and the row sum `l` of exp2 terms, or
/// -inf for a row with no visible key (`empty`). No-op without an LSE
/// output.
void storeLogSumExp(Emitter &e, const KernelInputs &in, Value writer, Value row,
                    Value m, Value l, Value empty, double expFactor);

/// Keys at or past this absolute position when nothing limits them.
constexpr int64_t kNoKeyLimit = int64_t(1) << 40;

} // namespace gpu_lowering
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_GPU_WORKGROUPCODEGEN_H
