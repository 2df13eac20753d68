// RUN: attn-opt %s -split-input-file --attn-tile-attention="tile-sizes=1,1,64,64" --attn-cuda-lower-attention="chip=sm_80" -verify-diagnostics

// Tensor masks and biases have no CUDA kernel yet.
func.func @tensor_mask(%q: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>, %m: memref<1x1x64x64xi1, strided<[?, ?, ?, 1]>>,
                       %o: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  %mt = bufferization.to_tensor %m restrict : memref<1x1x64x64xi1, strided<[?, ?, ?, 1]>> to tensor<1x1x64x64xi1>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: tensor masks and biases are not supported by the CUDA kernels}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>)
         mask(%mt : tensor<1x1x64x64xi1>)
         outs(%ot : tensor<1x2x64x64xf16>) -> tensor<1x2x64x64xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x64xf16>, memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

// The kernel writes memrefs: a result returned as a tensor cannot be lowered.
func.func @returned(%q: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) -> tensor<1x2x64x64xf16> {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  %init = tensor.empty() : tensor<1x2x64x64xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: workgroup result #0 must be written to a memref by bufferization.materialize_in_destination}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>)
         outs(%init : tensor<1x2x64x64xf16>) -> tensor<1x2x64x64xf16>
  return %r : tensor<1x2x64x64xf16>
}

// -----

// A tiled attn.online_attention leaves the raw running state, not an output.
func.func @online(%q: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>, %acc: memref<1x2x64x64xf32>,
                  %m: memref<1x2x64xf32>, %l: memref<1x2x64xf32>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  %at = bufferization.to_tensor %acc restrict writable : memref<1x2x64x64xf32> to tensor<1x2x64x64xf32>
  %mt = bufferization.to_tensor %m restrict writable : memref<1x2x64xf32> to tensor<1x2x64xf32>
  %lt = bufferization.to_tensor %l restrict writable : memref<1x2x64xf32> to tensor<1x2x64xf32>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: workgroup result #0 is not the normalised output or log-sum-exp of a tiled attn.attention (standalone attn.online_attention ops are not lowered)}}
  %r:3 = attn.online_attention ins(%qt, %qt, %qt : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>)
         outs(%at, %mt, %lt : tensor<1x2x64x64xf32>, tensor<1x2x64xf32>, tensor<1x2x64xf32>)
         -> tensor<1x2x64x64xf32>, tensor<1x2x64xf32>, tensor<1x2x64xf32>
  bufferization.materialize_in_destination %r#0 in restrict writable %acc : (tensor<1x2x64x64xf32>, memref<1x2x64x64xf32>) -> ()
  bufferization.materialize_in_destination %r#1 in restrict writable %m : (tensor<1x2x64xf32>, memref<1x2x64xf32>) -> ()
  bufferization.materialize_in_destination %r#2 in restrict writable %l : (tensor<1x2x64xf32>, memref<1x2x64xf32>) -> ()
  return
}

// -----

// Operands must be read from memrefs (the kernel's parameters).
func.func @tensor_operand(%q: tensor<1x2x64x64xf16>, %o: memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) {
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: a tile operand is not a unit-stride slice (possibly high-padded) of a memref read with bufferization.to_tensor outside the workgroup}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>)
         outs(%ot : tensor<1x2x64x64xf16>) -> tensor<1x2x64x64xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x64xf16>, memref<1x2x64x64xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

// Tensor cores need head dimensions in steps of 16.
func.func @head_dim_40(%q: memref<1x2x64x40xf16, strided<[?, ?, ?, 1]>>, %o: memref<1x2x64x40xf16, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x40xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x40xf16>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x40xf16, strided<[?, ?, ?, 1]>> to tensor<1x2x64x40xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: head_dim and v_head_dim must be multiples of 16 for tensor cores, got 40 and 40}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x2x64x40xf16>, tensor<1x2x64x40xf16>, tensor<1x2x64x40xf16>)
         outs(%ot : tensor<1x2x64x40xf16>) -> tensor<1x2x64x40xf16>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x40xf16>, memref<1x2x64x40xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

// The f32 kernel stores output columns four at a time per lane group.
func.func @f32_v_head_dim_48(%q: memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>>, %v: memref<1x2x64x48xf32, strided<[?, ?, ?, 1]>>,
                             %o: memref<1x2x64x48xf32, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x2x64x64xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x64x64xf32>
  %vt = bufferization.to_tensor %v restrict : memref<1x2x64x48xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x64x48xf32>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x2x64x48xf32, strided<[?, ?, ?, 1]>> to tensor<1x2x64x48xf32>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: the f32 kernel needs head_dim % 4 == 0 and v_head_dim % 32 == 0, got 64 and 48}}
  %r = attn.attention ins(%qt, %qt, %vt : tensor<1x2x64x64xf32>, tensor<1x2x64x64xf32>, tensor<1x2x64x48xf32>)
         outs(%ot : tensor<1x2x64x48xf32>) -> tensor<1x2x64x48xf32>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x2x64x48xf32>, memref<1x2x64x48xf32, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

// Two stages of 64 x 256 f32 keys and values do not fit an sm_80 block.
func.func @too_much_shared_memory(%q: memref<1x1x64x256xf32, strided<[?, ?, ?, 1]>>, %o: memref<1x1x64x256xf32, strided<[?, ?, ?, 1]>>) {
  %qt = bufferization.to_tensor %q restrict : memref<1x1x64x256xf32, strided<[?, ?, ?, 1]>> to tensor<1x1x64x256xf32>
  %ot = bufferization.to_tensor %o restrict writable : memref<1x1x64x256xf32, strided<[?, ?, ?, 1]>> to tensor<1x1x64x256xf32>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: it needs 350208 bytes of shared memory, more than the 166912 a block may use on sm_80}}
  %r = attn.attention ins(%qt, %qt, %qt : tensor<1x1x64x256xf32>, tensor<1x1x64x256xf32>, tensor<1x1x64x256xf32>)
         outs(%ot : tensor<1x1x64x256xf32>) -> tensor<1x1x64x256xf32>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<1x1x64x256xf32>, memref<1x1x64x256xf32, strided<[?, ?, ?, 1]>>) -> ()
  return
}

// -----

// A hand-written workgroup that is not attn-tile-attention's.
func.func @not_tiled(%o: memref<4x4xf32>) {
  %t = bufferization.to_tensor %o restrict writable : memref<4x4xf32> to tensor<4x4xf32>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: the workgroup is not in the form attn-tile-attention makes (one key loop of agreeing attn.online_attention tiles with a constant step, an optional conditional tail block)}}
  %r = scf.forall (%i, %j) in (4, 4) shared_outs(%s = %t) -> (tensor<4x4xf32>) {
    scf.forall.in_parallel {
    }
  } {mapping = [#gpu.block<y>, #gpu.block<x>]}
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<4x4xf32>, memref<4x4xf32>) -> ()
  return
}

// -----

// A hand-written workgroup whose query offset depends on a function
// argument: the kernel receives only the memrefs.
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @foreign_index(%arg0: memref<1x1x64x16xf16, strided<[?, ?, ?, 1]>>, %arg3: memref<1x1x64x16xf16, strided<[?, ?, ?, 1]>>, %step: index) {
  %cst = arith.constant 0xFF800000 : f32
  %cst_0 = arith.constant 0.000000e+00 : f32
  %c0 = arith.constant 0 : index
  %c32 = arith.constant 32 : index
  %0 = bufferization.to_tensor %arg0 restrict : memref<1x1x64x16xf16, strided<[?, ?, ?, 1]>> to tensor<1x1x64x16xf16>
  %3 = bufferization.to_tensor %arg3 restrict writable : memref<1x1x64x16xf16, strided<[?, ?, ?, 1]>> to tensor<1x1x64x16xf16>
  // expected-error @+1 {{cannot be lowered to a CUDA kernel: a tile position, size or bound is computed in a way the kernel cannot reproduce (only pure integer arithmetic on the workgroup ids, sizes and loaded kv_lens)}}
  %4 = scf.forall (%arg4, %arg5, %arg6) in (1, 1, 2) shared_outs(%arg7 = %3) -> (tensor<1x1x64x16xf16>) {
    %6 = arith.muli %arg6, %step : index
    %extracted_slice = tensor.extract_slice %0[0, 0, %6, 0] [1, 1, 32, 16] [1, 1, 1, 1] : tensor<1x1x64x16xf16> to tensor<1x1x32x16xf16>
    %extracted_slice_1 = tensor.extract_slice %arg7[0, 0, %6, 0] [1, 1, 32, 16] [1, 1, 1, 1] : tensor<1x1x64x16xf16> to tensor<1x1x32x16xf16>
    %7 = tensor.empty() : tensor<1x1x32x16xf32>
    %8 = linalg.fill ins(%cst_0 : f32) outs(%7 : tensor<1x1x32x16xf32>) -> tensor<1x1x32x16xf32>
    %9 = tensor.empty() : tensor<1x1x32xf32>
    %10 = linalg.fill ins(%cst : f32) outs(%9 : tensor<1x1x32xf32>) -> tensor<1x1x32xf32>
    %11 = linalg.fill ins(%cst_0 : f32) outs(%9 : tensor<1x1x32xf32>) -> tensor<1x1x32xf32>
    %15:3 = scf.for %arg8 = %c0 to %c32 step %c32 iter_args(%arg9 = %8, %arg10 = %10, %arg11 = %11) -> (tensor<1x1x32x16xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>) {
      %ks = tensor.extract_slice %0[0, 0, %arg8, 0] [1, 1, 32, 16] [1, 1, 1, 1] : tensor<1x1x64x16xf16> to tensor<1x1x32x16xf16>
      %17:3 = attn.online_attention {scale = 2.500000e-01 : f32} ins(%extracted_slice, %ks, %ks : tensor<1x1x32x16xf16>, tensor<1x1x32x16xf16>, tensor<1x1x32x16xf16>) outs(%arg9, %arg10, %arg11 : tensor<1x1x32x16xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>) -> tensor<1x1x32x16xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
      scf.yield %17#0, %17#1, %17#2 : tensor<1x1x32x16xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
    }
    %16 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%15#0, %15#2 : tensor<1x1x32x16xf32>, tensor<1x1x32xf32>) outs(%extracted_slice_1 : tensor<1x1x32x16xf16>) {
    ^bb0(%in: f32, %in_2: f32, %out: f16):
      %17 = arith.divf %in, %in_2 : f32
      %20 = arith.truncf %17 : f32 to f16
      linalg.yield %20 : f16
    } -> tensor<1x1x32x16xf16>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %16 into %arg7[0, 0, %6, 0] [1, 1, 32, 16] [1, 1, 1, 1] : tensor<1x1x32x16xf16> into tensor<1x1x64x16xf16>
    }
  } {mapping = [#gpu.block<z>, #gpu.block<y>, #gpu.block<x>]}
  bufferization.materialize_in_destination %4 in restrict writable %arg3 : (tensor<1x1x64x16xf16>, memref<1x1x64x16xf16, strided<[?, ?, ?, 1]>>) -> ()
  return
}
