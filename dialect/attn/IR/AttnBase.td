//===- AttnBase.td - attn dialect definition ---------------*- tablegen -*-===//
//
// The `attn` dialect: attention as a first-class operation, lowered through
// tiling and the online-softmax (flash) rewrite to linalg.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTNBASE_TD
#define ATTN_DIALECT_ATTNBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let cppNamespace = "::mlir::attn";
  let summary = "Attention operations and their flash lowering";
  let description = [{
    The `attn` dialect models scaled dot-product attention
    (softmax(scale * Q K^T + bias, masked) V) on tensors.

    * `attn.attention` is the user-level operation: multi-head, GQA/MQA,
      causal and sliding-window masks, boolean masks, additive biases and
      per-batch key padding, with an optional log-sum-exp result.
    * `attn.online_attention` is the tile-level operation of the
      online-softmax algorithm (Milakov & Gimelshein 2018; FlashAttention,
      Dao et al. 2022): it consumes one block of keys and values and updates
      the running row maximum, the running row sum and the unnormalised
      accumulator. It is modelled on IREE's `online_attention`.

    Layout convention: every tensor is [batch, heads, sequence, feature].
  }];
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::affine::AffineDialect"
  ];
}

class Attn_Op<string mnemonic, list<Trait> traits = []>
    : Op<Attn_Dialect, mnemonic, traits>;

#endif // ATTN_DIALECT_ATTNBASE_TD
