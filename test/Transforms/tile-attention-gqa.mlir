// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,2,32,64" --canonicalize --cse | FileCheck %s

// A head tile of 2 inside a GQA group of 4 query heads: the tile reads the
// one key/value head (2 * h) / 4.
// CHECK-LABEL: func.func @group4
// CHECK:         scf.forall (%{{.+}}, %[[H:.+]], %{{.+}}) in (1, 4, 2)
// CHECK:           %[[H0:.+]] = arith.muli %[[H]], %c2 : index
// CHECK:           %[[KVH:.+]] = affine.apply #{{.+}}()[%[[H0]]]
// CHECK:           tensor.extract_slice %{{.+}}[0, %[[H0]], %{{.+}}, 0] [1, 2, 32, 16]
// CHECK:           tensor.extract_slice %{{.+}}[0, %[[KVH]], 0, 0] [1, 1, 64, 16]
// CHECK:           attn.online_attention {{.+}} : tensor<1x2x32x16xf32>, tensor<1x1x64x16xf32>, tensor<1x1x64x16xf32>)
func.func @group4(%q: tensor<1x8x64x16xf32>, %k: tensor<1x2x64x16xf32>,
                  %v: tensor<1x2x64x16xf32>) -> tensor<1x8x64x16xf32> {
  %init = tensor.empty() : tensor<1x8x64x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x8x64x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
         outs(%init : tensor<1x8x64x16xf32>) -> tensor<1x8x64x16xf32>
  return %o : tensor<1x8x64x16xf32>
}

// -----

// A head tile of 2 spanning two MQA-style groups of 1: two key/value heads.
// CHECK-LABEL: func.func @group1
// CHECK:           attn.online_attention {{.+}} : tensor<1x2x32x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
func.func @group1(%q: tensor<1x4x64x16xf32>, %k: tensor<1x4x64x16xf32>,
                  %v: tensor<1x4x64x16xf32>) -> tensor<1x4x64x16xf32> {
  %init = tensor.empty() : tensor<1x4x64x16xf32>
  %o = attn.attention ins(%q, %k, %v : tensor<1x4x64x16xf32>, tensor<1x4x64x16xf32>, tensor<1x4x64x16xf32>)
         outs(%init : tensor<1x4x64x16xf32>) -> tensor<1x4x64x16xf32>
  return %o : tensor<1x4x64x16xf32>
}
