//===- WorkgroupAnalysis.h - the tiled workgroup, read back -----*- C++ -*-===//
//
// The target-neutral analysis half of a GPU workgroup lowering: reads the workgroup
// forall that attn-tile-attention makes (its key loop of
// attn.online_attention tiles, the optional padded tail block, the
// normalisation and the output slices) into a Workgroup description, and
// materialises the tiled IR's index computations (block offsets, bounds,
// positions, kv_lens) inside the kernel. lib/Transforms/CUDA's
// LowerWorkgroup.cpp emits the gpu.launch from it. Internal to
// lib/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_GPU_WORKGROUPANALYSIS_H
#define ATTN_LIB_TRANSFORMS_GPU_WORKGROUPANALYSIS_H

#include "WorkgroupCodegen.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

namespace mlir {
namespace attn {
namespace gpu_lowering {

/// A tensor of the tiled IR traced back to the memref it reads: the offsets
/// of its first element and its extent of real data per dimension (the
/// tensor itself may be padded beyond).
struct TileView {
  Value memref;
  SmallVector<Value> offsets, sizes;
  bool padded = false;
};

/// Clones pure index computations of the workgroup body into the kernel.
/// Copy it to materialise values inside a nested region: the copy's new
/// values do not leak to the parent.
class Materializer {
public:
  /// `kernelKind` names the target in diagnostics ("CUDA": "cannot be
  /// lowered to a CUDA kernel: ...").
  Materializer(OpBuilder &b, Location loc, Operation *scope,
               StringRef kernelKind)
      : b(&b), loc(loc), scope(scope), kernelKind(kernelKind) {}

  IRMapping mapping;

  FailureOr<Value> scalar(Value v);
  FailureOr<TileView> view(Value tensor);
  Emitter emitter() { return Emitter{*b, loc}; }

private:
  LogicalResult fail(Operation *at, const Twine &msg) {
    at->emitOpError("cannot be lowered to a ") << kernelKind << " kernel: "
                                                << msg;
    return failure();
  }
  OpBuilder *b;
  Location loc;
  Operation *scope;
  StringRef kernelKind;
};

/// Where key blocks come from: every iteration of a key loop, or one tile
/// (possibly under an scf.if, the padded tail block).
struct BlockSource {
  OnlineAttentionOp tile;
  scf::ForOp loop;
  Value condition;
};

struct Workgroup {
  scf::ForallOp forall;
  SmallVector<BlockSource> sources;
  tensor::ParallelInsertSliceOp outputInsert, lseInsert;
  Value outputMemRef, lseMemRef;
  SmallVector<Operation *> materializations;
  TileShape shape;
  MaskInfo mask;
  double scale = 1;
};

/// The diagnostic for a workgroup not in the form attn-tile-attention makes.
inline constexpr const char *kNotTiledStructure =
    "the workgroup is not in the form attn-tile-attention makes (one key loop "
    "of agreeing attn.online_attention tiles with a constant step, an "
    "optional conditional tail block)";

/// Reads `forall` (a workgroup of attn-tile-attention on tensors read from
/// memrefs) into a Workgroup; emits an error naming what it cannot lower,
/// "cannot be lowered to a <kernelKind> kernel: ...".
FailureOr<Workgroup> analyzeWorkgroup(scf::ForallOp forall,
                                      StringRef kernelKind);

} // namespace gpu_lowering
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_GPU_WORKGROUPANALYSIS_H
