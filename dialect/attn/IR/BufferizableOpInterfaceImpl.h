//===- BufferizableOpInterfaceImpl.h - bufferization of attn ops -*- C++ -*-===//
#ifndef ATTN_DIALECT_ATTN_IR_BUFFERIZABLEOPINTERFACEIMPL_H
#define ATTN_DIALECT_ATTN_IR_BUFFERIZABLEOPINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;
namespace attn {

/// Makes attn.online_attention bufferizable (destination-passing style).
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);

} // namespace attn
} // namespace mlir

#endif // ATTN_DIALECT_ATTN_IR_BUFFERIZABLEOPINTERFACEIMPL_H
