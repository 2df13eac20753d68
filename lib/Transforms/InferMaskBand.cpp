//===- InferMaskBand.cpp - mask_kind from the mask_mod's band -------------===//
//
// attn-infer-mask-band: an attention's mask_kind narrowed to the band of keys
// its mask_mod region keeps at most (mlir::attn::impliedKeyBand), so that
// tiling skips the tiles outside it.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/Passes.h"
#include "dialect/attn/IR/AttnOpDetail.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_INFERMASKBANDPASS
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

namespace {
/// Narrows the mask_kind of `op` (an attn.attention or
/// attn.online_attention) to its mask_mod's band.
template <typename OpT>
void inferMaskBand(OpT op) {
  Region &maskMod = op->getRegion(1);
  if (maskMod.empty() || !op.getOffsets().empty())
    return;
  KeyBand existing = KeyBand::get(op.getMaskKindAttr());
  if (existing.alignment == MaskAlignment::BottomRight)
    return;
  Block &block = maskMod.front();
  KeyBand implied = impliedKeyBand(block.getTerminator()->getOperand(0),
                                   block.getArgument(2), block.getArgument(3));
  if (implied.isUnbounded())
    return;
  // The intersection of the two top-left bands.
  KeyBand band = existing;
  if (implied.lower)
    band.lower = band.lower ? std::max(*band.lower, *implied.lower)
                            : implied.lower;
  if (implied.upper)
    band.upper = band.upper ? std::min(*band.upper, *implied.upper)
                            : implied.upper;
  MaskKindAttrInterface kind = band.toTopLeftMaskKind(op.getContext());
  if (kind && kind != op.getMaskKindAttr())
    op.setMaskKindAttr(kind);
}

struct InferMaskBandPass
    : public attn::impl::InferMaskBandPassBase<InferMaskBandPass> {
  void runOnOperation() override {
    getOperation()->walk([](Operation *op) {
      if (auto attention = dyn_cast<AttentionOp>(op))
        inferMaskBand(attention);
      else if (auto online = dyn_cast<OnlineAttentionOp>(op))
        inferMaskBand(online);
    });
  }
};
} // namespace
