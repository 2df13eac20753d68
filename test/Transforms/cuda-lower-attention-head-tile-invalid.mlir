// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,2,64,64" --attn-cuda-lower-attention -verify-diagnostics

// The kernels run one (batch, head) per thread block.
func.func @head_tile_2(%q: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>, %o: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: needs static tiles with batch and head tile sizes 1, got a query tile of type 'tensor<1x2x64x64xf16>'}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>)
         outs(%ot : tensor<1x2x64x64xf16>) -> tensor<1x2x64x64xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x64xf16>, memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}
