// RUN: attn-opt %s -split-input-file --attn-cpu-lower-online-attention="amx=true" --canonicalize --cse | FileCheck %s
// RUN: attn-opt %s -split-input-file --attn-cpu-lower-online-attention="amx=true" | attn-opt --convert-vector-to-llvm="enable-amx" | FileCheck %s --check-prefix=LLVM

// A bf16 tile of whole 16-row / 32-key blocks: both contractions on AMX
// tiles. The query is stored in head_dim pairs, S^T = K QP tile by tile
// (key read in place, unscaled), the scale applied in the row-max pass,
// P transposed to [queries][keys] in bf16, the value interleaved in pairs,
// and acc (rescaled by alpha in vector code) += P VP on tiles.
// CHECK-LABEL: func.func @amx_tile
// CHECK-SAME:    %[[Q:[a-zA-Z0-9]+]]: memref<1x1x48x64xbf16>, %[[K:[a-zA-Z0-9]+]]: memref<1x1x64x64xbf16, {{.+}}>, %[[V:[a-zA-Z0-9]+]]: memref<1x1x64x32xbf16, {{.+}}>, %[[ACC:[a-zA-Z0-9]+]]: memref<1x1x48x32xf32>
// CHECK-DAG:     %[[ST:.+]] = memref.alloca() {alignment = 64 : i64} : memref<64x48xf32>
// CHECK-DAG:     %[[QP:.+]] = memref.alloca() {alignment = 64 : i64} : memref<1x1x32x96xbf16>
// CHECK-DAG:     %[[P:.+]] = memref.alloca() {alignment = 64 : i64} : memref<48x64xbf16>
// CHECK-DAG:     %[[VP:.+]] = memref.alloca() {alignment = 64 : i64} : memref<32x64xbf16>
// S^T: per 16 keys, three 16x16 score tiles, head_dim in two steps of 32.
// CHECK:         scf.for %[[J0:.+]] = %c0 to %c64 step %c16
// CHECK-DAG:       %[[Z:.+]] = amx.tile_zero : !amx.tile<16x16xf32>
// CHECK-DAG:       %[[A0:.+]] = amx.tile_load %[[K]][%c0, %c0, %[[J0]], %c0] : {{.+}} into !amx.tile<16x32xbf16>
// CHECK-DAG:       %[[B0:.+]] = amx.tile_load %[[QP]][%c0, %c0, %c0, %c0] : memref<1x1x32x96xbf16> into !amx.tile<16x32xbf16>
// CHECK:           amx.tile_mulf %[[A0]], %[[B0]], %[[Z]]
// CHECK-COUNT-5:   amx.tile_mulf
// CHECK:           amx.tile_store %[[ST]][%[[J0]], %c0]
// CHECK:           amx.tile_store %[[ST]][%[[J0]], %c16]
// CHECK:           amx.tile_store %[[ST]][%[[J0]], %c32]
// The scale (0.125) is applied with the row max.
// CHECK:         arith.mulf %{{.+}}, %cst{{.*}} : vector<16xf32>
// CHECK:         arith.maximumf
// CHECK:         math.exp
// P^T -> P: a 16x16 shuffle transposition, rounded to bf16.
// CHECK:         vector.shuffle
// CHECK:         arith.truncf %{{.+}} : vector<16xf32> to vector<16xbf16>
// CHECK:         vector.store %{{.+}}, %[[P]]
// Value rows interleaved in pairs (hidden rows zeroed).
// CHECK:         arith.select %{{.+}}, %{{.+}} : vector<16xbf16>
// CHECK:         vector.interleave %{{.+}}, %{{.+}} : vector<16xbf16> -> vector<32xbf16>
// CHECK:         vector.store %{{.+}}, %[[VP]]
// acc += P VP per 16 rows: two 16x16 output tiles, 64 keys in two steps.
// CHECK:         scf.for %[[M0:.+]] = %c0 to %c48 step %c16
// CHECK:           amx.tile_load %[[ACC]][%c0, %c0, %[[M0]], %c0] : memref<1x1x48x32xf32> into !amx.tile<16x16xf32>
// CHECK:           amx.tile_load %[[P]][%[[M0]], %c0] : memref<48x64xbf16> into !amx.tile<16x32xbf16>
// CHECK:           amx.tile_load %[[VP]][%c0, %c0] : memref<32x64xbf16> into !amx.tile<16x32xbf16>
// CHECK-COUNT-4:   amx.tile_mulf
// CHECK:           amx.tile_store %[[ACC]][%c0, %c0, %[[M0]], %c0]
// CHECK:           amx.tile_store %[[ACC]][%c0, %c0, %[[M0]], %c16]
// CHECK-NOT:     attn.online_attention
// LLVM-LABEL: func.func @amx_tile
// LLVM:         llvm.call_intrinsic "llvm.x86.tileloadd64.internal"
// LLVM:         llvm.call_intrinsic "llvm.x86.tdpbf16ps.internal"
// LLVM:         llvm.call_intrinsic "llvm.x86.tilestored64.internal"
func.func @amx_tile(%q: memref<1x1x48x64xbf16>, %k: memref<1x1x64x64xbf16, strided<[?, ?, 64, 1], offset: ?>>,
                    %v: memref<1x1x64x32xbf16, strided<[?, ?, 32, 1], offset: ?>>,
                    %acc: memref<1x1x48x32xf32>, %m: memref<1x1x48xf32>, %l: memref<1x1x48xf32>) {
  attn.online_attention {scale = 0.125 : f32}
      ins(%q, %k, %v : memref<1x1x48x64xbf16>, memref<1x1x64x64xbf16, strided<[?, ?, 64, 1], offset: ?>>, memref<1x1x64x32xbf16, strided<[?, ?, 32, 1], offset: ?>>)
      outs(%acc, %m, %l : memref<1x1x48x32xf32>, memref<1x1x48xf32>, memref<1x1x48xf32>)
  return
}

// -----

// Key blocks of 48 (not a multiple of 32), and f32 tiles: the vector code.
// CHECK-LABEL: func.func @no_amx
// CHECK-NOT:     amx.
// CHECK:         vector.fma
// CHECK-NOT:     amx.
// CHECK:         return
func.func @no_amx(%q: memref<1x1x32x64xbf16>, %k: memref<1x1x48x64xbf16>, %v: memref<1x1x48x32xbf16>,
                  %acc: memref<1x1x32x32xf32>, %m: memref<1x1x32xf32>, %l: memref<1x1x32xf32>,
                  %qf: memref<1x1x32x64xf32>, %kf: memref<1x1x64x64xf32>, %vf: memref<1x1x64x32xf32>) {
  attn.online_attention {scale = 0.125 : f32}
      ins(%q, %k, %v : memref<1x1x32x64xbf16>, memref<1x1x48x64xbf16>, memref<1x1x48x32xbf16>)
      outs(%acc, %m, %l : memref<1x1x32x32xf32>, memref<1x1x32xf32>, memref<1x1x32xf32>)
  attn.online_attention {scale = 0.125 : f32}
      ins(%qf, %kf, %vf : memref<1x1x32x64xf32>, memref<1x1x64x64xf32>, memref<1x1x64x32xf32>)
      outs(%acc, %m, %l : memref<1x1x32x32xf32>, memref<1x1x32xf32>, memref<1x1x32xf32>)
  return
}
