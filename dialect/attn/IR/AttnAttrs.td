//===- AttnAttrs.td - attn dialect attributes --------------*- tablegen -*-===//
//
// Mask kinds that the compiler understands at compile time. Each one is a
// band around the (possibly shifted) diagonal of the score matrix, which lets
// tiling skip key/value blocks that the band hides.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTNATTRS_TD
#define ATTN_DIALECT_ATTNATTRS_TD

include "dialect/attn/IR/AttnBase.td"
include "mlir/IR/EnumAttr.td"

def Attn_MaskAlignment : I32EnumAttr<"MaskAlignment",
    "where the diagonal of a causal or sliding-window mask starts", [
      I32EnumAttrCase<"TopLeft", 0, "top_left">,
      I32EnumAttrCase<"BottomRight", 1, "bottom_right">
    ]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

def Attn_MaskAlignmentAttr : EnumAttr<Attn_Dialect, Attn_MaskAlignment,
                                      "alignment"> {
  let assemblyFormat = "`<` $value `>`";
}

def Attn_MaskKindAttrInterface : AttrInterface<"MaskKindAttrInterface"> {
  let cppNamespace = "::mlir::attn";
  let description = [{
    A compile-time mask kind. It describes the kept keys of query row `i` as
    the band `-lower <= j - (i + shift) <= upper`, where `shift` is 0 for
    top-left alignment and `kv_len - q_len` for bottom-right alignment, and a
    missing bound is unbounded.
  }];
  let methods = [
    InterfaceMethod<"Lower bound of the band (keys to the left of the "
                    "diagonal), or std::nullopt when unbounded.",
                    "std::optional<int64_t>", "getBandLower">,
    InterfaceMethod<"Upper bound of the band (keys to the right of the "
                    "diagonal), or std::nullopt when unbounded.",
                    "std::optional<int64_t>", "getBandUpper">,
    InterfaceMethod<"Alignment of the diagonal.",
                    "::mlir::attn::MaskAlignment", "getBandAlignment">,
    // The alignment is folded into row positions here and nowhere else:
    // tiling, the decomposition, the CPU and CUDA lowerings and the
    // runtime's split-KV kernels ask these two methods.
    InterfaceMethod<[{
        The diagonal shift of query rows for static lengths: 0 for top-left
        alignment, `kvLen - qLen` for bottom-right alignment.
      }], "int64_t", "getDiagonalShift",
      (ins "int64_t":$qLen, "int64_t":$kvLen), [{}], [{
        return $_attr.getBandAlignment() ==
                       ::mlir::attn::MaskAlignment::BottomRight
                   ? kvLen - qLen
                   : 0;
      }]>,
    InterfaceMethod<[{
        The diagonal shift as an index value built at `b` from the index
        values `qLen` and `kvLen` (folded when they are constants).
      }], "::mlir::Value", "buildDiagonalShift",
      (ins "::mlir::OpBuilder &":$b, "::mlir::Location":$loc,
           "::mlir::Value":$qLen, "::mlir::Value":$kvLen), [{}], [{
        if ($_attr.getBandAlignment() ==
            ::mlir::attn::MaskAlignment::BottomRight)
          return b.createOrFold<::mlir::arith::SubIOp>(loc, kvLen, qLen);
        return ::mlir::arith::ConstantIndexOp::create(b, loc, 0);
      }]>,
  ];
}

class Attn_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Attn_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Attn_CausalAttr : Attn_Attr<"Causal", "causal",
    [DeclareAttrInterfaceMethods<Attn_MaskKindAttrInterface>]> {
  let summary = "causal mask: a query sees the keys up to its own position";
  let description = [{
    Query row `i` keeps key `j` iff `j <= i + shift`, with `shift = 0` for
    `top_left` alignment (PyTorch's `is_causal`) and `shift = kv_len - q_len`
    for `bottom_right` alignment (FlashAttention >= 2.1, decoding with a KV
    cache). With top-left alignment and `q_len > kv_len`, or bottom-right
    alignment and `q_len > kv_len`, some rows keep no key: their output is 0
    and their log-sum-exp is -inf.

    Example: `#attn.causal` (top-left) or `#attn.causal<bottom_right>`.
  }];
  let parameters = (ins DefaultValuedParameter<"::mlir::attn::MaskAlignment",
                        "::mlir::attn::MaskAlignment::TopLeft">:$alignment);
  let assemblyFormat = "(`<` $alignment^ `>`)?";
}

def Attn_SlidingWindowAttr : Attn_Attr<"SlidingWindow", "sliding_window",
    [DeclareAttrInterfaceMethods<Attn_MaskKindAttrInterface>]> {
  let summary = "sliding-window (local) mask of `left` past and `right` "
                "future keys";
  let description = [{
    Query row `i` keeps key `j` iff
    `i + shift - left <= j <= i + shift + right`, with `shift` as for
    `#attn.causal` (FlashAttention's `window_size=(left, right)`, Mistral's
    sliding window with `right = 0`). Both bounds are key counts >= 0.

    Example: `#attn.sliding_window<left = 256, right = 0>` or
    `#attn.sliding_window<left = 4, right = 4, align = bottom_right>`.
  }];
  let parameters = (ins "int64_t":$left, "int64_t":$right,
                        DefaultValuedParameter<"::mlir::attn::MaskAlignment",
                        "::mlir::attn::MaskAlignment::TopLeft">:$alignment);
  let assemblyFormat = [{
    `<` `left` `=` $left `,` `right` `=` $right
        (`,` `align` `=` $alignment^)? `>`
  }];
  let genVerifyDecl = 1;
}

#endif // ATTN_DIALECT_ATTNATTRS_TD
