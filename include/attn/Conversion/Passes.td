//===- Passes.td - attn conversion passes ------------------*- tablegen -*-===//

#ifndef ATTN_CONVERSION_PASSES_TD
#define ATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertAttnToLinalgPass : Pass<"convert-attn-to-linalg"> {
  let summary = "Unfused reference lowering of attn.attention to linalg";
  let description = [{
    Lowers `attn.attention` the textbook way: it materialises the whole
    [B, Hq, Sq, Sk] score matrix, takes the row maximum, exponentiates,
    sums, normalises the probabilities and multiplies by V. It is the
    baseline in benchmarks and a cross-check in tests, never the fast path
    (use `attn-tile-attention` for that).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect"
  ];
}

#endif // ATTN_CONVERSION_PASSES_TD
