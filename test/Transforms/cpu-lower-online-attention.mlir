// RUN: attn-opt %s -split-input-file --attn-cpu-lower-online-attention --canonicalize --cse | FileCheck %s

// A bufferized tile inside a key loop: the query transposition is hoisted
// out of the loop; the tile becomes S^T = K Q^T, lane-wise softmax
// statistics over the queries, and P V.
// CHECK-LABEL: func.func @tile
// CHECK-SAME:    %[[Q:[a-zA-Z0-9]+]]: memref<1x1x32x16xf32>, %[[K:[a-zA-Z0-9]+]]: memref<1x1x128x16xf32>, %[[V:[a-zA-Z0-9]+]]: memref<1x1x128x8xf32>
// CHECK-DAG:     %[[ST:.+]] = memref.alloca() {alignment = 64 : i64} : memref<32x32xf32>
// CHECK-DAG:     %[[ALPHA:.+]] = memref.alloca() {alignment = 64 : i64} : memref<32xf32>
// CHECK-DAG:     %[[QT:.+]] = memref.alloca() {alignment = 64 : i64} : memref<1x1x16x32xf32>
// QT[d][m] = 0.25 * Q[m][d], before the key loop.
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             memref.load %[[Q]]
// CHECK:             arith.mulf %{{.+}}, %cst
// CHECK:             memref.store %{{.+}}, %[[QT]]
// CHECK:         scf.for %[[K0:.+]] = %c0 to %c128 step %c32
// CHECK:           %[[KT:.+]] = memref.subview %[[K]][0, 0, %[[K0]], 0] [1, 1, 32, 16]
// CHECK:           scf.for %{{.+}} = %c0 to %c16 step %c1 iter_args({{.+}}) -> (vector<16xf32>,
// CHECK:             vector.load %[[QT]]
// CHECK:             memref.load %[[KT]]
// CHECK:             vector.broadcast
// CHECK:             vector.fma
// CHECK:           vector.store %{{.+}}, %[[ST]]
// Row max, alpha, exp and row sum over the 16-query chunks.
// CHECK:           scf.for %[[C:.+]] = %c0 to %c32 step %c16
// CHECK:             vector.transfer_read %{{.+}}[%c0, %c0, %[[C]]]
// The running max over the keys is one compare-and-select (vmaxps) per
// step, with two maxima over pairs of keys.
// CHECK:             scf.for {{.+}} step %c2 iter_args(%[[RM:.+]] = %{{.+}}, %[[RM1:.+]] = %{{.+}}) -> (vector<16xf32>, vector<16xf32>)
// CHECK:               %[[GT:.+]] = arith.cmpf ogt, %[[S:.+]], %[[RM]] : vector<16xf32>
// CHECK:               arith.select %[[GT]], %[[S]], %[[RM]]
// CHECK:               arith.cmpf ogt, %{{.+}}, %[[RM1]] : vector<16xf32>
// CHECK:             arith.maximumf {{.+}} : vector<16xf32>
// CHECK:             math.exp {{.+}} : vector<16xf32>
// CHECK:             math.exp {{.+}} : vector<16xf32>
// CHECK:             vector.transfer_write
// CHECK:             vector.store %{{.+}}, %[[ALPHA]][%[[C]]]
// P V with the value dimension (8) on the lanes, each probability broadcast.
// CHECK:           memref.load %[[ALPHA]]
// CHECK:           vector.load %{{.+}} : memref<1x1x32x8xf32>, vector<8xf32>
// CHECK:           scf.for
// CHECK:             vector.load %{{.+}} : memref<1x1x32x8xf32, strided<{{.+}}>>, vector<8xf32>
// CHECK:             memref.load %[[ST]]
// CHECK:             vector.fma {{.+}} : vector<8xf32>
// CHECK:           vector.store
// CHECK-NOT:     attn.online_attention
func.func @tile(%q: memref<1x1x32x16xf32>, %k: memref<1x1x128x16xf32>, %v: memref<1x1x128x8xf32>,
                %acc: memref<1x1x32x8xf32>, %m: memref<1x1x32xf32>, %l: memref<1x1x32xf32>) {
  %c0 = arith.constant 0 : index
  %c32 = arith.constant 32 : index
  %c128 = arith.constant 128 : index
  scf.for %k0 = %c0 to %c128 step %c32 {
    %kt = memref.subview %k[0, 0, %k0, 0] [1, 1, 32, 16] [1, 1, 1, 1] : memref<1x1x128x16xf32> to memref<1x1x32x16xf32, strided<[2048, 2048, 16, 1], offset: ?>>
    %vt = memref.subview %v[0, 0, %k0, 0] [1, 1, 32, 8] [1, 1, 1, 1] : memref<1x1x128x8xf32> to memref<1x1x32x8xf32, strided<[1024, 1024, 8, 1], offset: ?>>
    attn.online_attention {scale = 0.25 : f32}
        ins(%q, %kt, %vt : memref<1x1x32x16xf32>, memref<1x1x32x16xf32, strided<[2048, 2048, 16, 1], offset: ?>>, memref<1x1x32x8xf32, strided<[1024, 1024, 8, 1], offset: ?>>)
        outs(%acc, %m, %l : memref<1x1x32x8xf32>, memref<1x1x32xf32>, memref<1x1x32xf32>)
  }
  return
}

// -----

// Causal with kv_lens and a padded query tile (q_bound): the reduced key
// range is clipped by the band, kv_lens and the last real row; a tile inside
// the band skips the per-element test, one straddling it masks per element;
// P V splits each row block's keys into the common range and the per-row
// guarded edges.
// CHECK-LABEL: func.func @causal
// CHECK:         memref.load %{{.+}}[%c0] : memref<1xi32>
// CHECK:         arith.index_cast
// CHECK:         arith.minsi
// CHECK:         %[[INSIDE:.+]] = arith.cmpi sle, %{{.+}}, %c0 : index
// CHECK:         scf.if %[[INSIDE]] -> (vector<16xf32>)
// CHECK-NOT:       vector<16xi32>
// CHECK:         } else {
// CHECK:           arith.cmpi sle, %{{.+}}, %{{.+}} : vector<16xi32>
// CHECK:           arith.select {{.+}} : vector<16xi1>, vector<16xf32>
// CHECK:         }
// CHECK:         arith.cmpi sle, %{{.+}}, %c0 : index
// CHECK:         arith.select %{{.+}}, %{{.+}}, %{{.+}} : vector<16xf32>
func.func @causal(%q: memref<1x1x16x16xf32>, %k: memref<1x1x16x16xf32>, %v: memref<1x1x16x16xf32>,
                  %lens: memref<1xi32>, %acc: memref<1x1x16x16xf32>, %m: memref<1x1x16xf32>,
                  %l: memref<1x1x16xf32>, %q0: index, %k0: index, %qb: index) {
  attn.online_attention {mask_kind = #attn.causal, scale = 0.25 : f32}
      ins(%q, %k, %v : memref<1x1x16x16xf32>, memref<1x1x16x16xf32>, memref<1x1x16x16xf32>)
      kv_lens(%lens : memref<1xi32>) offsets(%q0, %k0) q_bound(%qb)
      outs(%acc, %m, %l : memref<1x1x16x16xf32>, memref<1x1x16xf32>, memref<1x1x16xf32>)
  return
}

// -----

// Causal, 32 queries x 64 keys: each 16-query chunk reduces (max, exp, sum)
// only the keys its last row can see, qOff + c + 16 - kOff, clipped to the
// tile's range; keys right of that are hidden from every row of the chunk.
// CHECK-LABEL: func.func @causal_chunks
// CHECK-SAME:    %{{[a-zA-Z0-9]+}}: memref<1x1x32xf32>, %[[Q0:[a-zA-Z0-9]+]]: index, %[[K0:[a-zA-Z0-9]+]]: index
// CHECK:         scf.for %[[C:.+]] = %c0 to %c32 step %c16 {
// CHECK:           %[[END:.+]] = arith.addi %[[C]], %c16 : index
// CHECK:           %[[ROW:.+]] = arith.addi %[[Q0]], %[[END]] : index
// CHECK:           %[[KEY:.+]] = arith.subi %[[ROW]], %[[K0]] : index
// CHECK:           %[[HI:.+]] = arith.minsi %{{.+}}, %[[KEY]] : index
// CHECK:           %[[CHI:.+]] = arith.maxsi %[[HI]], %c0 : index
// CHECK:           arith.andi %[[CHI]], %c-2 : index
// CHECK:           scf.for %{{.+}} = %c0 to %{{.+}} step %c2 iter_args
// CHECK:           scf.for %{{.+}} = %{{.+}} to %[[CHI]] step %c1 iter_args
// CHECK:           math.exp
// CHECK:           scf.for %{{.+}} = %c0 to %[[CHI]] step %c1 iter_args
func.func @causal_chunks(%q: memref<1x1x32x16xf32>, %k: memref<1x1x64x16xf32>, %v: memref<1x1x64x16xf32>,
                         %acc: memref<1x1x32x16xf32>, %m: memref<1x1x32xf32>, %l: memref<1x1x32xf32>,
                         %q0: index, %k0: index) {
  attn.online_attention {mask_kind = #attn.causal, scale = 0.25 : f32}
      ins(%q, %k, %v : memref<1x1x32x16xf32>, memref<1x1x64x16xf32>, memref<1x1x64x16xf32>)
      offsets(%q0, %k0)
      outs(%acc, %m, %l : memref<1x1x32x16xf32>, memref<1x1x32xf32>, memref<1x1x32xf32>)
  return
}

// -----

// A boolean tensor mask broadcast over rows: one scalar per key, broadcast;
// P V guarded by p != 0 so that a value hidden by the mask never reaches a
// row.
// CHECK-LABEL: func.func @tensor_mask
// CHECK:         memref.load %{{.+}} : memref<1x1x1x16xi1>
// CHECK:         vector.broadcast %{{.+}} : i1 to vector<16xi1>
// CHECK:         arith.cmpf une
func.func @tensor_mask(%q: memref<1x1x16x16xf32>, %k: memref<1x1x16x16xf32>, %v: memref<1x1x16x16xf32>,
                       %mask: memref<1x1x1x16xi1>, %acc: memref<1x1x16x16xf32>, %m: memref<1x1x16xf32>,
                       %l: memref<1x1x16xf32>) {
  attn.online_attention
      ins(%q, %k, %v : memref<1x1x16x16xf32>, memref<1x1x16x16xf32>, memref<1x1x16x16xf32>)
      mask(%mask : memref<1x1x1x16xi1>)
      outs(%acc, %m, %l : memref<1x1x16x16xf32>, memref<1x1x16xf32>, memref<1x1x16xf32>)
  return
}

// -----

// A decoding tile (one query row per head, a GQA group of 4 heads over one
// key/value head): keys on the lanes. Each block of 16 keys is 16 dot
// products reduced together by a shuffle tree; the row statistics are
// horizontal reductions; no transposed query is built.
// CHECK-LABEL: func.func @decode
// CHECK-NOT:     memref<1x4x16x16xf32>
// CHECK:         memref.alloca() {alignment = 64 : i64} : memref<1x64xf32>
// CHECK:         scf.for %[[H:.+]] = %c0 to %c4
// CHECK:           arith.divui %[[H]], %c4
// CHECK:           vector.fma
// CHECK:           vector.shuffle
// CHECK:           vector.shuffle
// CHECK:           vector.reduction <maximumf>
// CHECK:           vector.reduction <add>
func.func @decode(%q: memref<1x4x1x32xf32>, %k: memref<1x1x64x32xf32>, %v: memref<1x1x64x32xf32>,
                  %acc: memref<1x4x1x32xf32>, %m: memref<1x4x1xf32>, %l: memref<1x4x1xf32>) {
  attn.online_attention
      ins(%q, %k, %v : memref<1x4x1x32xf32>, memref<1x1x64x32xf32>, memref<1x1x64x32xf32>)
      outs(%acc, %m, %l : memref<1x4x1x32xf32>, memref<1x4x1xf32>, memref<1x4x1xf32>)
  return
}
