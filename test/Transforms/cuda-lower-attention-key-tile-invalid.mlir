// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,1,32,12" --attn-cuda-lower-attention -verify-diagnostics

// Key tiles are whole mma k-steps (f16/bf16) or lane groups (f32).
func.func @key_tile_f16(%q: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>, %o: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: the key tile must be a multiple of 16 keys, got 12}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>)
         outs(%ot : tensor<1x2x64x64xf16>) -> tensor<1x2x64x64xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x64xf16>, memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

func.func @key_tile_f32(%q: memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>>, %o: memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf32>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf32>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: the f32 kernel needs a key tile that is a multiple of 8 keys, got 12}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x2x64x64xf32>, tensor<1x2x64x64xf32>, tensor<1x2x64x64xf32>)
         outs(%ot : tensor<1x2x64x64xf32>) -> tensor<1x2x64x64xf32>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x64xf32>, memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>>) -> ()
  return
}
