//===- TileSelection.h - the compiler's choice of tile sizes ----*- C++ -*-===//
//
// The one owner of default tile sizes. attn-tile-attention (with
// `target=cpu` or `target=cuda`, as attn-cpu-pipeline and attn-cuda-pipeline
// set it when no tile-sizes are given) asks it for each op, and the runtime
// asks it for the spec it compiles, so attn-opt and the runtime produce the
// same kernel for the same attention and target. The problem is read from
// the op (AttentionProblem::get) or built from a spec with the same fields.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_TILESELECTION_H
#define ATTN_TRANSFORMS_TILESELECTION_H

#include "attn/Transforms/CPU/CPUTarget.h"
#include "attn/Transforms/Transforms.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"

namespace mlir {
namespace attn {

/// What tile selection looks at in one attention: sizes (batch, q_len and
/// kv_len may be ShapedType::kDynamic), the element type of query / key /
/// value, and the masks that cost the CUDA kernels registers.
struct AttentionProblem {
  enum class ElementType { F32, F16, BF16 };
  int64_t batch = ShapedType::kDynamic, qHeads = 1, kvHeads = 1;
  int64_t qLen = ShapedType::kDynamic, kvLen = ShapedType::kDynamic;
  int64_t headDim = 64, vHeadDim = 64;
  ElementType elementType = ElementType::F32;
  /// A sliding-window mask kind.
  bool slidingWindow = false;
  /// Key padding (kv_lens).
  bool keyPadding = false;

  /// The problem of an attn.attention or attn.online_attention op on
  /// tensors or memrefs; fails for element types other than f32/f16/bf16 or
  /// dynamic head counts.
  static FailureOr<AttentionProblem> get(Operation *op);
};


/// CPU tiles: query rows on the vector lanes, 64 x 64 tiles (128 x 128 for
/// bf16 on AMX, keys in whole 32-key reductions) or the rounded sequence
/// when shorter, the exact row count for decoding (q_len <= 4: keys on the
/// lanes), and for GQA/MQA a whole query-head group per workgroup (so each
/// key/value block is loaded once for the group) or its largest divisor
/// whose tile fits kMaxCPUTileScratchBytes.
AttentionTileSizes selectCPUTileSizes(const AttentionProblem &problem,
                                      const CPUTargetInfo &target);

/// CUDA tiles: f32 (FMA) 64 x 32 with 4 x 4 elements per thread (fewer rows
/// for short q_len); f16/bf16 (tensor cores) 128 x 64, with 32-key blocks
/// when head_dim > 64 and blocks need element masks besides the causal
/// diagonal (a sliding window, key padding, a ragged or dynamic kv_len):
/// the extra masking state would otherwise push the kernel past 255
/// registers (docs/gpu-performance-model.md).
AttentionTileSizes selectCUDATileSizes(const AttentionProblem &problem);

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_TILESELECTION_H
