//===- KernelBuilder.h - attention spec -> MLIR kernel module ---*- C++ -*-===//
#ifndef ATTN_RUNTIME_KERNELBUILDER_H
#define ATTN_RUNTIME_KERNELBUILDER_H

#include "attn/Runtime/Spec.h"
#include "attn/Transforms/TileSelection.h"
#include "attn/Transforms/Transforms.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

namespace attn {

/// Name of the kernel entry function.
constexpr const char *kKernelEntry = "attn_kernel";
/// Name of the split-KV merge entry.
constexpr const char *kMergeEntry = "attn_kernel_merge";

/// The operands of the kernel entry in order, for a spec: query, key, value,
/// [mask], [kv_lens], captures..., output, [lse] (then the workgroup range
/// on the CPU). The n-th Capture is spec.captures()[n].
enum class KernelOperand {
  Query,
  Key,
  Value,
  Mask,
  KvLens,
  Capture,
  Output,
  Lse
};
std::vector<KernelOperand> kernelOperands(const AttentionSpec &spec);

/// Builds
///   func @attn_kernel(%query: memref<..., strided<[?, ?, ?, 1]>>, ...,
///                     [%wg_begin: index, %wg_end: index])
/// whose body reads the memrefs as tensors, runs one attn.attention and
/// writes the result into the output memrefs. Sizes left dynamic by the spec
/// are `?`; every operand has dynamic outer strides and a unit innermost
/// stride. With `workgroupRange`, the two trailing index arguments carry the
/// attn.workgroup_begin / attn.workgroup_end attributes.
///
/// With `kvSplits` > 1 (split-KV, flash-decoding) the module holds two
/// entries instead: @attn_kernel(inputs..., ws_acc, ws_max, ws_sum, %split,
/// range) computes the online-softmax state of key split `split` (keys
/// [split * ceil(Sk / S), ...)) into slot `split` of the f32 workspace
/// (acc [S, B, Hq, Sq, Dv], max and sum [S, B, Hq, Sq]), and
/// @attn_kernel_merge(ws_acc, ws_max, ws_sum, outputs..., range) merges the
/// slots into the outputs.
mlir::OwningOpRef<mlir::ModuleOp>
buildKernelModule(mlir::MLIRContext &context, const AttentionSpec &spec,
                  bool workgroupRange, int64_t kvSplits = 1);

/// The tile-selection problem of the kernel module's attention for `spec`
/// (the fields AttentionProblem::get reads off the op buildKernelModule
/// builds), so that the compiler's selection gives the runtime and attn-opt
/// the same tiles.
mlir::attn::AttentionProblem getAttentionProblem(const AttentionSpec &spec);

/// Tile sizes the CPU pipeline chooses for `spec` on `target`
/// (mlir::attn::selectCPUTileSizes). On an AMX target, bf16 gets 128 x 128
/// tiles of whole 16-row / 32-key blocks: the tile unit makes the
/// contractions cheap, and larger tiles halve the per-tile work around them
/// (query pairs, value pairs, probability transposition) per FLOP.
mlir::attn::AttentionTileSizes
selectCPUTileSizes(const AttentionSpec &spec,
                   const mlir::attn::CPUTargetInfo &target);

/// Builds the user's function `mod` (validated: resolveModFunc) as the
/// score_mod (`isScoreMod`) or mask_mod `region` of an attention op whose
/// captures are `captures`: the block takes the leading scalars and one
/// argument per capture, the function's captures are `captures` from
/// `firstCapture` on, and func.return becomes attn.yield. Every index of a
/// capture read is clamped into [0, size); sizes the capture's type leaves
/// dynamic come from `captures[*sizesCapture]`, a tensor<3xindex> holding
/// [B, Sq, Sk].
void buildModFuncRegion(mlir::OpBuilder &b, mlir::Location loc,
                        mlir::Region &region, mlir::ValueRange captures,
                        const ModFuncSpec &mod, bool isScoreMod,
                        unsigned firstCapture,
                        std::optional<unsigned> sizesCapture);

/// A registry with every dialect and extension the pipelines need.
const mlir::DialectRegistry &kernelDialectRegistry();

} // namespace attn

#endif // ATTN_RUNTIME_KERNELBUILDER_H
