//===- BufferizableOpInterfaceImpl.cpp - bufferization of online attention ===//
//
// attn.online_attention is destination-passing: its acc, max and sum outs
// bufferize in place into their results, and the op becomes its memref form
// (no results), which buffer-level lowerings consume.
//
//===----------------------------------------------------------------------===//

#include "dialect/attn/IR/AttnOpDetail.h"
#include "dialect/attn/IR/AttnOps.h"
#include "dialect/attn/IR/BufferizableOpInterfaceImpl.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::bufferization;

namespace {
struct OnlineAttentionOpBufferization
    : DstBufferizableOpInterfaceExternalModel<OnlineAttentionOpBufferization,
                                              OnlineAttentionOp> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    auto attention = cast<OnlineAttentionOp>(op);
    // The regions read their captures as tensors.
    if (failed(rejectModRegions(op, "bufferization")))
      return failure();
    auto buffer = [&](Value v) -> FailureOr<Value> {
      if (!v || !isa<TensorType>(v.getType()))
        return v;
      return getBuffer(rewriter, v, options, state);
    };
    FailureOr<Value> query = buffer(attention.getQuery());
    FailureOr<Value> key = buffer(attention.getKey());
    FailureOr<Value> value = buffer(attention.getValue());
    FailureOr<Value> mask = buffer(attention.getMask());
    FailureOr<Value> bias = buffer(attention.getBias());
    FailureOr<Value> kvLens = buffer(attention.getKvLens());
    if (failed(query) || failed(key) || failed(value) || failed(mask) ||
        failed(bias) || failed(kvLens))
      return failure();
    SmallVector<Value> outs;
    for (Value out : attention.getOutputs()) {
      FailureOr<Value> b = buffer(out);
      if (failed(b))
        return failure();
      outs.push_back(*b);
    }
    rewriter.setInsertionPoint(op);
    OnlineAttentionOp::create(rewriter, op->getLoc(), TypeRange{}, *query, *key,
                              *value, *mask, *bias, *kvLens, ValueRange{},
                              attention.getOffsets(), attention.getKvBound(),
                              attention.getQBound(),
                              attention.getScaleAttr(),
                              attention.getMaskKindAttr(), outs);
    replaceOpWithBufferizedValues(rewriter, op, outs);
    return success();
  }
};
} // namespace

void mlir::attn::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, AttnDialect *) {
    OnlineAttentionOp::attachInterface<OnlineAttentionOpBufferization>(*ctx);
  });
}
