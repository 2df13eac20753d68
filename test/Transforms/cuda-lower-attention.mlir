// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,1,64,64" --canonicalize --cse --attn-cuda-lower-attention="chip=sm_80" --canonicalize --cse | FileCheck %s
// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,1,64,32" --canonicalize --cse --attn-cuda-lower-attention="chip=sm_90" --canonicalize --cse | FileCheck %s --check-prefix=SIMT
// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,1,32,48" --canonicalize --cse --attn-cuda-lower-attention="chip=sm_90" --canonicalize --cse | FileCheck %s --check-prefix=X2

// Causal f16, as the runtime's kernel module reads and writes memrefs: one
// thread block of 4 warps per (head, batch, query block), launched as grid
// (heads, batch, query blocks); K/V tiles double-buffered in dynamic shared
// memory (2 stages x 64 keys x (64 + 8 padding) f16, keys then values).
// CHECK-LABEL: func.func @causal_f16
// CHECK-SAME:    %[[Q:[a-zA-Z0-9]+]]: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>
// CHECK-SAME:    %[[K:[a-zA-Z0-9]+]]: memref<1x4x256x64xf16
// CHECK-SAME:    %[[V:[a-zA-Z0-9]+]]: memref<1x4x256x64xf16
// CHECK-SAME:    %[[O:[a-zA-Z0-9]+]]: memref<1x4x256x64xf16
// CHECK-NOT:     scf.forall
// CHECK:         gpu.launch blocks(%[[H:.+]], %{{.+}}, %[[QB:.+]]) in (%{{.+}} = %c4, %{{.+}} = %c1, %{{.+}} = %c4) threads(%[[TID:.+]], %{{.+}}, %{{.+}}) in (%{{.+}} = %c128, %{{.+}} = %c1, %{{.+}} = %c1) dynamic_shared_memory_size %c36864_i32
// CHECK:           %[[WARP:.+]] = arith.divui %[[TID]], %c32
// CHECK:           %[[LANE:.+]] = arith.remui %[[TID]], %c32
// CHECK:           %[[SMEM:.+]] = gpu.dynamic_shared_memory
// CHECK:           %[[KS:.+]] = memref.view %[[SMEM]][%c0][] {{.+}} to memref<2x64x72xf16, #gpu.address_space<workgroup>>
// CHECK:           %[[VS:.+]] = memref.view %[[SMEM]][%c18432][] {{.+}} to memref<2x64x72xf16, #gpu.address_space<workgroup>>
// The longest query block first (the tiled IR's causal reversal), and the
// key loop ends after the diagonal block (its bound is the tiled IR's).
// CHECK:           %[[REV:.+]] = arith.subi %c3, %[[QB]]
// CHECK:           %[[Q0:.+]] = arith.muli %[[REV]], %c64
// CHECK:           %[[END:.+]] = arith.addi %[[Q0]], %c64
// CHECK:           arith.minsi %[[END]], %c256
// CHECK:           %[[NBLOCKS:.+]] = arith.ceildivsi
// The warp's query rows as mma A fragments, loaded once.
// CHECK:           vector.load %[[Q]][%c0, %[[H]], %{{.+}}, %{{.+}}] {alignment = 4 : i64} : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>, vector<2xf16>
// CHECK:           vector.from_elements {{.+}} : vector<4x2xf16>
// Block 0 into stage 0.
// CHECK:           scf.if
// CHECK:             nvgpu.device_async_copy %[[K]][{{.+}}], %[[KS]][%c0, {{.+}}], 8, %{{.+}} {bypassL1}
// CHECK:             nvgpu.device_async_copy %[[V]][{{.+}}], %[[VS]][%c0, {{.+}}], 8, %{{.+}} {bypassL1}
// CHECK:             nvgpu.device_async_create_group
// The key loop carries the accumulators, row maxima and row sums in registers.
// CHECK:           %[[LOOP:.+]]:12 = scf.for %[[I:.+]] = %c0 to %[[NBLOCKS]] step %c1 iter_args({{.+}}) -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, f32, f32, f32, f32)
// CHECK:             %[[STAGE:.+]] = arith.remui %[[I]], %c2
// Prefetch of block i + 1 into the other stage, then wait for block i.
// CHECK:             %[[NEXT:.+]] = arith.subi %c1, %[[STAGE]]
// CHECK:             nvgpu.device_async_copy %[[K]][{{.+}}], %[[KS]][%[[NEXT]], {{.+}}], 8, %{{.+}} {bypassL1}
// CHECK:             %[[GROUP:.+]] = nvgpu.device_async_create_group
// CHECK:             nvgpu.device_async_wait %[[GROUP]] {numGroups = 1 : i32}
// CHECK:             gpu.barrier
// A warp skips blocks the causal mask hides from all its rows.
// CHECK:             scf.if %{{.+}} -> (vector<2x2xf32>, {{.+}}) {
// S = Q K^T on tensor cores.
// CHECK:               nvgpu.ldmatrix %[[KS]][%[[STAGE]], {{.+}}] {numTiles = 4 : i32, transpose = false} : memref<2x64x72xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK:               nvgpu.mma.sync({{.+}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// Element masks only where the block straddles the diagonal.
// CHECK:               scf.if %{{.+}} -> (vector<2x2xf32>
// CHECK:               } else {
// CHECK:                 arith.cmpi sle, %{{.+}}, %c0_i32 : i32
// CHECK:                 arith.select %{{.+}}, %{{.+}}, %cst{{.*}} : f32
// Row max over the four lanes of a row, exp2 with the PTX approximation.
// CHECK:               gpu.shuffle  xor %{{.+}}, %c1_i32, %c32_i32 : f32
// CHECK:               gpu.shuffle  xor %{{.+}}, %c2_i32, %c32_i32 : f32
// CHECK:               llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"
// P re-packed from the S accumulators as A fragments, then O += P V.
// CHECK:               arith.truncf %{{.+}} : f32 to f16
// CHECK:               vector.from_elements {{.+}} : vector<4x2xf16>
// CHECK:               nvgpu.ldmatrix %[[VS]][%[[STAGE]], {{.+}}] {numTiles = 4 : i32, transpose = true}
// CHECK:               nvgpu.mma.sync
// CHECK:             gpu.barrier
// CHECK:             scf.yield
// Epilogue: no copy in flight, rows normalised by the quad-reduced sum and
// stored in pairs.
// CHECK:           nvvm.cp.async.wait.group 0
// CHECK:           gpu.shuffle  xor
// CHECK:           arith.divf %cst{{.*}}, %{{.+}} : f32
// CHECK:           vector.store %{{.+}}, %[[O]][{{.+}}] {alignment = 4 : i64} : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>, vector<2xf16>
// CHECK:           gpu.terminator
// CHECK-NOT:     bufferization.materialize_in_destination
// CHECK:         return

// Key tiles of 48 keys: the last 16 keys of P V with ldmatrix.x2.trans; two
// warps for 32 query rows.
// X2-LABEL: func.func @causal_f16
// X2:         gpu.launch {{.+}} threads({{.+}}) in (%{{.+}} = %c64, %{{.+}}, %{{.+}})
// X2:           nvgpu.ldmatrix {{.+}} {numTiles = 4 : i32, transpose = true}
// X2:           nvgpu.ldmatrix {{.+}} {numTiles = 2 : i32, transpose = true}
func.func @causal_f16(%q: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>,
                      %k: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>,
                      %v: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>,
                      %o: memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x4x256x64xf16>
  %kt = bufferization.to_tensor %k restrict : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x4x256x64xf16>
  %vt = bufferization.to_tensor %v restrict : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x4x256x64xf16>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x4x256x64xf16>
  %r = attn.attention {mask_kind = #attn.causal, scale = 0.125 : f32}
         ins(%qt, %kt, %vt : tensor<1x4x256x64xf16>, tensor<1x4x256x64xf16>, tensor<1x4x256x64xf16>)
         outs(%ot : tensor<1x4x256x64xf16>) -> tensor<1x4x256x64xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x4x256x64xf16>, memref<1x4x256x64xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

// head_dim 80: the last 16 values of d of S = Q K^T with ldmatrix.x2.
// CHECK-LABEL: func.func @d80_f16
// CHECK:         gpu.launch
// CHECK:           nvgpu.ldmatrix {{.+}} {numTiles = 4 : i32, transpose = false}
// CHECK:           nvgpu.ldmatrix {{.+}} {numTiles = 2 : i32, transpose = false}
func.func @d80_f16(%q: memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>>,
                   %k: memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>>,
                   %v: memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>>,
                   %o: memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>> to tensor<1x1x64x80xf16>
  %kt = bufferization.to_tensor %k restrict : memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>> to tensor<1x1x64x80xf16>
  %vt = bufferization.to_tensor %v restrict : memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>> to tensor<1x1x64x80xf16>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>> to tensor<1x1x64x80xf16>
  %r = attn.attention ins(%qt, %kt, %vt : tensor<1x1x64x80xf16>, tensor<1x1x64x80xf16>, tensor<1x1x64x80xf16>)
         outs(%ot : tensor<1x1x64x80xf16>) -> tensor<1x1x64x80xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x1x64x80xf16>, memref<1x1x64x80xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

// bf16 with GQA, a dynamic kv_len (the padded tail block joins the key loop;
// rows past the keys' end are zero-filled), key padding and the
// log-sum-exp. MLIR 22's nvgpu.mma.sync cannot type bf16: nvvm.mma.sync on
// the 32-bit registers.
// CHECK-LABEL: func.func @gqa_bf16_lse
// CHECK-SAME:    %[[K:[a-zA-Z0-9]+]]: memref<2x2x?x128xbf16
// CHECK-SAME:    %[[LENS:[a-zA-Z0-9]+]]: memref<2xi32, strided<[1]>>
// CHECK-SAME:    %[[LSE:[a-zA-Z0-9]+]]: memref<2x8x100xf32, strided<[?, ?, 1]>>
// CHECK:         gpu.launch blocks(%[[H:.+]], %[[B:.+]], %{{.+}}) in (%{{.+}} = %c8, %{{.+}} = %c2, %{{.+}} = %c2) threads({{.+}}) in (%{{.+}} = %c128, %{{.+}}, %{{.+}}) dynamic_shared_memory_size %c69632_i32
// The last query block has 36 rows of 64.
// CHECK:           %[[ROWS:.+]] = affine.min
// CHECK:           %[[SK:.+]] = memref.dim %[[K]], %c2
// CHECK:           %[[LEN:.+]] = memref.load %[[LENS]][%[[B]]]
// CHECK:           %[[LENI:.+]] = arith.index_cast %[[LEN]] : i32 to index
// CHECK:           arith.minsi %[[SK]], %[[LENI]]
// Full blocks, plus the tail block when it is visible.
// CHECK:           %[[FULL:.+]] = arith.ceildivsi
// CHECK:           %[[TAIL:.+]] = arith.select %{{.+}}, %c1, %c0 : index
// CHECK:           %[[NBLOCKS:.+]] = arith.addi %[[FULL]], %[[TAIL]]
// Query head h reads key/value head h / 4 (the tiled IR's index, selected
// between the loop's and the tail block's).
// CHECK:           scf.if
// CHECK:             %[[KVH:.+]] = affine.apply #{{.+}}()[%[[H]]]
// CHECK:             arith.select %{{.+}}, %[[KVH]], %[[KVH]] : index
// CHECK:             arith.select %{{.+}}, %c8, %c0 : index
// CHECK:             nvgpu.device_async_copy %[[K]][%[[B]], %{{.+}}], {{.+}}, 8, %{{.+}} {bypassL1}
// CHECK:           scf.for %{{.+}} = %c0 to %[[NBLOCKS]] step %c1 iter_args({{.+}}) -> (vector<2x2xf32>, {{.+}}, f32, f32, f32, f32)
// CHECK:             memref.load %[[LENS]][%[[B]]]
// CHECK:             nvvm.mma.sync A[{{.+}}] B[{{.+}}] C[{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// The key limit (kv_bound of the tail, kv_lens) masks elements.
// CHECK:             arith.cmpi slt, %{{.+}}, %{{.+}} : i32
// Log-sum-exp by one lane per row: (m c + log2 l) ln 2.
// CHECK:           llvm.call_intrinsic "llvm.nvvm.lg2.approx.ftz.f"
// CHECK:           memref.store %{{.+}}, %[[LSE]][%[[B]], %[[H]], %{{.+}}] : memref<2x8x100xf32, strided<[?, ?, 1]>>
func.func @gqa_bf16_lse(%q: memref<2x8x100x128xbf16, strided<[?, ?, ?, 1]>>,
                        %k: memref<2x2x?x128xbf16, strided<[?, ?, ?, 1]>>,
                        %v: memref<2x2x?x128xbf16, strided<[?, ?, ?, 1]>>,
                        %lens: memref<2xi32, strided<[1]>>,
                        %o: memref<2x8x100x128xbf16, strided<[?, ?, ?, 1]>>,
                        %lse: memref<2x8x100xf32, strided<[?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<2x8x100x128xbf16, strided<[?, ?, ?, 1]>> to tensor<2x8x100x128xbf16>
  %kt = bufferization.to_tensor %k restrict : memref<2x2x?x128xbf16, strided<[?, ?, ?, 1]>> to tensor<2x2x?x128xbf16>
  %vt = bufferization.to_tensor %v restrict : memref<2x2x?x128xbf16, strided<[?, ?, ?, 1]>> to tensor<2x2x?x128xbf16>
  %lt = bufferization.to_tensor %lens restrict : memref<2xi32, strided<[1]>> to tensor<2xi32>
  %ot = bufferization.to_tensor %o restrict writable : memref<2x8x100x128xbf16, strided<[?, ?, ?, 1]>> to tensor<2x8x100x128xbf16>
  %st = bufferization.to_tensor %lse restrict writable : memref<2x8x100xf32, strided<[?, ?, 1]>> to tensor<2x8x100xf32>
  %r:2 = attn.attention {scale = 0.08838834764 : f32}
         ins(%qt, %kt, %vt : tensor<2x8x100x128xbf16>, tensor<2x2x?x128xbf16>, tensor<2x2x?x128xbf16>)
         kv_lens(%lt : tensor<2xi32>)
         outs(%ot, %st : tensor<2x8x100x128xbf16>, tensor<2x8x100xf32>) -> tensor<2x8x100x128xbf16>, tensor<2x8x100xf32>
  bufferization.materialize_in_destination %r#0 in restrict writable %o : (tensor<2x8x100x128xbf16>, memref<2x8x100x128xbf16, strided<[?, ?, ?, 1]>>) -> ()
  bufferization.materialize_in_destination %r#1 in restrict writable %lse : (tensor<2x8x100xf32>, memref<2x8x100xf32, strided<[?, ?, 1]>>) -> ()
  return
}

// -----

// f32 (no tensor cores): 128 threads of 4 rows x 4 keys; the query tile and
// P in shared memory after the K/V stages; FMA; the sliding window's lower
// bound also skips blocks and masks elements.
// SIMT-LABEL: func.func @window_f32
// SIMT:         gpu.launch {{.+}} threads({{.+}}) in (%{{.+}} = %c128, %{{.+}}, %{{.+}}) dynamic_shared_memory_size %c61440_i32
// SIMT:           memref.view {{.+}} to memref<2x32x68xf32, #gpu.address_space<workgroup>>
// SIMT:           memref.view {{.+}} to memref<2x32x68xf32, #gpu.address_space<workgroup>>
// SIMT:           %[[QS:.+]] = memref.view {{.+}} to memref<64x68xf32, #gpu.address_space<workgroup>>
// SIMT:           %[[PS:.+]] = memref.view {{.+}} to memref<64x36xf32, #gpu.address_space<workgroup>>
// SIMT:           nvgpu.device_async_copy %{{.+}}, %[[QS]][{{.+}}], 4, %{{.+}} {bypassL1}
// SIMT:           nvgpu.device_async_create_group
// SIMT:           scf.for
// SIMT:             nvgpu.device_async_wait %{{.+}} {numGroups = 1 : i32}
// SIMT:             arith.cmpi sge, %{{.+}}, %c-100 : index
// SIMT:             scf.for {{.+}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
// SIMT:               vector.load %[[QS]][{{.+}}] {alignment = 16 : i64} : memref<64x68xf32, #gpu.address_space<workgroup>>, vector<4xf32>
// SIMT:               llvm.intr.fma
// SIMT:             arith.cmpi sge, %{{.+}}, %c-100_i32 : i32
// SIMT:             gpu.shuffle  xor %{{.+}}, %c4_i32, %c32_i32 : f32
// SIMT:             memref.store %{{.+}}, %[[PS]]
// SIMT:             nvvm.bar.warp.sync
// SIMT:             scf.for
// SIMT:               vector.load %[[PS]]
// SIMT:               vector.fma {{.+}} : vector<4xf32>
// SIMT:           vector.store {{.+}} {alignment = 16 : i64} : memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>>, vector<4xf32>
func.func @window_f32(%q: memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>>,
                      %k: memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>>,
                      %v: memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>>,
                      %o: memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x256x64xf32>
  %kt = bufferization.to_tensor %k restrict : memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x256x64xf32>
  %vt = bufferization.to_tensor %v restrict : memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x256x64xf32>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x256x64xf32>
  %r = attn.attention {mask_kind = #attn.sliding_window<left = 100, right = 0>}
         ins(%qt, %kt, %vt : tensor<1x2x256x64xf32>, tensor<1x2x256x64xf32>, tensor<1x2x256x64xf32>)
         outs(%ot : tensor<1x2x256x64xf32>) -> tensor<1x2x256x64xf32>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x256x64xf32>, memref<1x2x256x64xf32, strided<[?, ?, ?, 1]>>) -> ()
  return
}
