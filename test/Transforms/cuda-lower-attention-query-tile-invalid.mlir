// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,1,24,64" --attn-cuda-lower-attention -verify-diagnostics

// Query tiles are whole warps of 16 rows.
func.func @query_tile_f16(%q: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>, %o: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: the query tile must be a multiple of 16 rows (one warp per 16), at most 512; got 24}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>)
         outs(%ot : tensor<1x2x64x64xf16>) -> tensor<1x2x64x64xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x64xf16>, memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

func.func @query_tile_f32(%q: memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>>, %o: memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf32>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf32>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: the f32 kernel needs a query tile that is a multiple of 16 rows, at most 512; got 24}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x2x64x64xf32>, tensor<1x2x64x64xf32>, tensor<1x2x64x64xf32>)
         outs(%ot : tensor<1x2x64x64xf32>) -> tensor<1x2x64x64xf32>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x64xf32>, memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>>) -> ()
  return
}
