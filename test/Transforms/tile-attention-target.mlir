// RUN: attn-opt %s -split-input-file --attn-tile-attention="target=cpu" --canonicalize --cse | FileCheck %s --check-prefix=CPU
// RUN: attn-opt %s -split-input-file --attn-tile-attention="target=cpu cpu-amx=true" --canonicalize --cse | FileCheck %s --check-prefix=AMX
// RUN: attn-opt %s -split-input-file --attn-tile-attention="target=cuda" --canonicalize --cse | FileCheck %s --check-prefix=CUDA
// RUN: attn-opt %s -split-input-file --attn-tile-attention="target=cpu tile-sizes=1,1,32,32" --canonicalize --cse | FileCheck %s --check-prefix=GIVEN
// RUN: not attn-opt %s --attn-tile-attention="target=tpu" 2>&1 | FileCheck %s --check-prefix=BAD

// The compiler chooses the tile sizes of each op for the target when none
// are given (TileSelection.h, the function the runtime asks too); given
// tile-sizes win.
// BAD: attn-tile-attention: target must be 'cpu' or 'cuda', got 'tpu'

// GQA 8/2, 1000 rows, f32: on the CPU 64-row tiles (16 blocks), one
// workgroup per whole group of 4 query heads; for CUDA 64 x 32 FMA tiles,
// one head each.
// CPU-LABEL: func.func @gqa_f32
// CPU:         scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 2, 16)
// CPU:           attn.online_attention {{.+}} : tensor<1x4x64x64xf32>, tensor<1x1x64x64xf32>, tensor<1x1x64x64xf32>)
// AMX-LABEL: func.func @gqa_f32
// AMX:         scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 2, 16)
// CUDA-LABEL: func.func @gqa_f32
// CUDA:        scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 8, 16)
// CUDA:          attn.online_attention {{.+}} : tensor<1x1x64x64xf32>, tensor<1x1x32x64xf32>, tensor<1x1x32x64xf32>)
// GIVEN-LABEL: func.func @gqa_f32
// GIVEN:       scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 8, 32)
func.func @gqa_f32(%q: tensor<1x8x1000x64xf32>, %k: tensor<1x2x1000x64xf32>,
                   %v: tensor<1x2x1000x64xf32>) -> tensor<1x8x1000x64xf32> {
  %init = tensor.empty() : tensor<1x8x1000x64xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x8x1000x64xf32>, tensor<1x2x1000x64xf32>, tensor<1x2x1000x64xf32>)
         outs(%init : tensor<1x8x1000x64xf32>) -> tensor<1x8x1000x64xf32>
  return %o : tensor<1x8x1000x64xf32>
}

// -----

// bf16, 256 rows and keys, head_dim 128: 64 x 64 on the CPU, 128 x 128 with
// AMX, tensor-core tiles of 128 rows x 64 keys for CUDA (kv_len % 64 == 0).
// CPU-LABEL: func.func @bf16_d128
// CPU:         scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 4, 4)
// AMX-LABEL: func.func @bf16_d128
// AMX:         scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 4, 2)
// AMX:           attn.online_attention {{.+}} : tensor<1x1x128x128xbf16>, tensor<1x1x128x128xbf16>, tensor<1x1x128x128xbf16>)
// CUDA-LABEL: func.func @bf16_d128
// CUDA:        scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 4, 2)
// CUDA:          attn.online_attention {{.+}} : tensor<1x1x128x128xbf16>, tensor<1x1x64x128xbf16>, tensor<1x1x64x128xbf16>)
func.func @bf16_d128(%q: tensor<1x4x256x128xbf16>, %k: tensor<1x4x256x128xbf16>,
                     %v: tensor<1x4x256x128xbf16>) -> tensor<1x4x256x128xbf16> {
  %init = tensor.empty() : tensor<1x4x256x128xbf16>
  %o = attn.attention ins(%q, %k, %v : tensor<1x4x256x128xbf16>, tensor<1x4x256x128xbf16>, tensor<1x4x256x128xbf16>)
         outs(%init : tensor<1x4x256x128xbf16>) -> tensor<1x4x256x128xbf16>
  return %o : tensor<1x4x256x128xbf16>
}

// -----

// Decoding (one query row over 100 keys): the exact row count on CPU (keys
// on the lanes), 64-key tiles, and the whole MQA group of 8 heads.
// CPU-LABEL: func.func @decode
// CPU:         scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 1, 1)
// CPU:           attn.online_attention {{.+}} : tensor<1x8x1x64xf32>, tensor<1x1x64x64xf32>, tensor<1x1x64x64xf32>)
func.func @decode(%q: tensor<1x8x1x64xf32>, %k: tensor<1x1x100x64xf32>,
                  %v: tensor<1x1x100x64xf32>) -> tensor<1x8x1x64xf32> {
  %init = tensor.empty() : tensor<1x8x1x64xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x8x1x64xf32>, tensor<1x1x100x64xf32>, tensor<1x1x100x64xf32>)
         outs(%init : tensor<1x8x1x64xf32>) -> tensor<1x8x1x64xf32>
  return %o : tensor<1x8x1x64xf32>
}
