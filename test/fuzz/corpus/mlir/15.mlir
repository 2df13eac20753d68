func.func @operands(%q: tensor<?x4x?x32xf16>, %k: tensor<?x4x?x32xf16>, %v: tensor<?x4x?x32xf16>,
                    %m: tensor<?x1x1x?xi1>, %b: tensor<1x4x?x?xf32>, %lens: tensor<?xi32>,
                    %init: tensor<?x4x?x32xf16>) -> tensor<?x4x?x32xf16> {
  %o = attn.attention ins(%q, %k, %v : tensor<?x4x?x32xf16>, tensor<?x4x?x32xf16>, tensor<?x4x?x32xf16>)
         mask(%m : tensor<?x1x1x?xi1>) bias(%b : tensor<1x4x?x?xf32>) kv_lens(%lens : tensor<?xi32>)
         outs(%init : tensor<?x4x?x32xf16>) -> tensor<?x4x?x32xf16>
  return %o : tensor<?x4x?x32xf16>
}
