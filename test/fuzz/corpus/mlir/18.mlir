func.func @dynamic_masks(%q: tensor<?x2x?x16xf32>, %k: tensor<?x2x?x16xf32>, %v: tensor<?x2x?x16xf32>,
                         %m: tensor<?x1x1x?xi1>, %lens: tensor<?xi64>, %out: tensor<?x2x?x16xf32>) -> tensor<?x2x?x16xf32> {
  %o = attn.attention ins(%q, %k, %v : tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>)
      mask(%m : tensor<?x1x1x?xi1>) kv_lens(%lens : tensor<?xi64>)
      outs(%out : tensor<?x2x?x16xf32>) -> tensor<?x2x?x16xf32>
  return %o : tensor<?x2x?x16xf32>
}
