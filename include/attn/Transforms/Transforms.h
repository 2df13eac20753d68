//===- Transforms.h - attn rewrites as free functions -----------*- C++ -*-===//
//
// The logic of the attn passes, callable from pipelines, tests and the
// runtime without going through the pass manager.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_TRANSFORMS_H
#define ATTN_TRANSFORMS_TRANSFORMS_H

#include "attn/Transforms/TileSizes.h"
#include "dialect/attn/IR/AttnOps.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir {
class RewritePatternSet;
namespace scf {
class ForallOp;
} // namespace scf
namespace gpu {
class LaunchOp;
} // namespace gpu

namespace attn {
struct CUDATarget;
struct CPUTargetInfo;

/// Rewrites `op` into its online-softmax form: fills of the running state
/// (acc = 0 [B,Hq,Sq,Dv] f32, max = -inf and sum = 0 [B,Hq,Sq] f32), one
/// attn.online_attention over every key, and a linalg.generic computing
/// out = acc / sum (0 where sum = 0, cast to the output element type) and,
/// when requested, lse = max + log(sum) (-inf where sum = 0). Returns the
/// replacement values of the op's results and replaces the op.
FailureOr<SmallVector<Value>> convertToOnlineAttention(RewriterBase &rewriter,
                                                       AttentionOp op);

/// Split-KV (flash-decoding): merges `S` partial online-softmax states
/// computed over disjoint key ranges — acc [S, B, Hq, Sq, Dv] and max, sum
/// [S, B, Hq, Sq], all f32 — into the normalised output (outInits[0],
/// [B, Hq, Sq, Dv] in its element type) and, when given, the log-sum-exp
/// (outInits[1], [B, Hq, Sq] f32), by rescaling every state to the global
/// row maximum (FlashDecoding, Dao et al. 2023). Returns the new values.
SmallVector<Value> mergeOnlineAttentionPartials(OpBuilder &b, Location loc,
                                                Value acc, Value max,
                                                Value sum, ValueRange outInits);

/// Tiles `op` (see the attn-tile-attention pass description): an
/// scf.forall over (batch, head, query-block) tiles, mapped to
/// #gpu.block<z, y, x>, holding the online-softmax form of each tile with an
/// scf.for over the key blocks that the masks leave visible. Replaces the op
/// and returns the forall. Errors are emitted on the op.
FailureOr<scf::ForallOp> tileAttention(RewriterBase &rewriter, AttentionOp op,
                                       const AttentionTileSizes &sizes);
/// Same for a stand-alone attn.online_attention (no normalisation).
FailureOr<scf::ForallOp> tileAttention(RewriterBase &rewriter,
                                       OnlineAttentionOp op,
                                       const AttentionTileSizes &sizes);

/// Name of the function-argument attributes that mark the workgroup range of
/// a CPU kernel entry (see attn-cpu-distribute-workgroups).
constexpr llvm::StringLiteral kWorkgroupBeginAttr = "attn.workgroup_begin";
constexpr llvm::StringLiteral kWorkgroupEndAttr = "attn.workgroup_end";

/// Number of workgroups attn-tile-attention creates for the given sizes:
/// ceil(batch / tb) * (q_heads / th) * ceil(q_len / tq).
int64_t getWorkgroupCount(int64_t batch, int64_t qHeads, int64_t qLen,
                          const AttentionTileSizes &sizes);

/// Rewrites the workgroup forall into an scf.for over the linear workgroup
/// ids [begin, end) (every workgroup when `begin` is null).
LogicalResult distributeWorkgroups(RewriterBase &rewriter,
                                   scf::ForallOp forall, Value begin,
                                   Value end);

/// Bytes of stack scratch (memref.alloca at the function entry) that
/// the CPU stages (decomposeOnlineAttentionForCPU) allocate for one tile of the given sizes
/// (batch x heads query heads, `query` rows, `key` keys) with `vectorWidth`
/// f32 lanes; with `amx` the AMX buffers too. Saturates instead of
/// overflowing. The single owner of this rule: the lowering refuses tiles
/// over kMaxCPUTileScratchBytes, the runtime checks requested tile sizes
/// with it before compiling.
int64_t getCPUTileScratchBytes(int64_t batch, int64_t heads, int64_t query,
                               int64_t key, int64_t headDim, int64_t vHeadDim,
                               int64_t vectorWidth, bool amx);
/// CPU tiles of at most this many query rows are lowered with keys on the
/// vector lanes (the decode scheme); tile selection gives a q_len this
/// short its exact row count, and the runtime sends calls of a q_len-dynamic
/// kernel with at most this many rows to its one-row (decode) kernel.
constexpr int64_t kMaxCPUDecodeTileRows = 4;
/// The most stack scratch a CPU tile may use: the kernels run on worker
/// threads with the platform's default stack (8 MiB on Linux), which also
/// holds the frames around them.
constexpr int64_t kMaxCPUTileScratchBytes = int64_t(4) << 20;

/// Decomposes the tile `op` (tensors, static sizes) into the CPU stages
/// (linalg.generic ops tagged attn.cpu_stage, see the
/// attn-cpu-decompose-online-attention pass) in the layout `target` wants,
/// and replaces it. `queryStages` remembers, per query tensor, its query
/// stage (the scaled, transposed query), so that the tiles of one query block
/// share it. With AVX512-BF16, bf16 tiles compute Q K^T with dot products of
/// bf16 pairs; with amx-bf16, bf16 tiles of whole 16-row, 32-key blocks
/// without tensor masks compute both contractions on AMX tiles.
LogicalResult decomposeOnlineAttentionForCPU(RewriterBase &rewriter,
                                             OnlineAttentionOp op,
                                             const CPUTargetInfo &target,
                                             DenseMap<Value, Value> &queryStages);

/// Lowers `op` to linalg.generic ops on tensors (see the
/// attn-decompose-online-attention pass) and replaces it.
FailureOr<SmallVector<Value>>
decomposeOnlineAttention(RewriterBase &rewriter, OnlineAttentionOp op);

/// Unfused reference lowering of `op` (see convert-attn-to-linalg).
FailureOr<SmallVector<Value>> lowerAttentionToLinalg(RewriterBase &rewriter,
                                                     AttentionOp op);

/// Lowers the workgroup `forall` made by attn-tile-attention (on tensors read
/// with bufferization.to_tensor and written with
/// bufferization.materialize_in_destination) to a software-pipelined
/// gpu.launch for `target` (see the attn-cuda-lower-attention pass). Replaces
/// the forall and the materializations; emits an error naming the problem
/// and leaves the IR unchanged on failure.
FailureOr<gpu::LaunchOp> lowerWorkgroupToCUDAKernel(RewriterBase &rewriter,
                                                    scf::ForallOp forall,
                                                    const CUDATarget &target);

/// Patterns wrapping the functions above.
void populateConvertToOnlineAttentionPatterns(RewritePatternSet &patterns);
void populateDecomposeOnlineAttentionPatterns(RewritePatternSet &patterns);
void populateAttnToLinalgPatterns(RewritePatternSet &patterns);

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_TRANSFORMS_H
