// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention --canonicalize --cse --attn-cpu-plan-stages --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --canonicalize --cse --attn-cpu-lower-stages --canonicalize --cse | FileCheck %s
// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention=bf16-dot=1 --canonicalize --cse --attn-cpu-plan-stages --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --canonicalize --cse --attn-cpu-lower-stages --canonicalize --cse | FileCheck %s --check-prefix=BF16
// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention=amx=1 --canonicalize --cse --attn-cpu-plan-stages --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --canonicalize --cse --attn-cpu-lower-stages --canonicalize --cse | FileCheck %s --check-prefix=AMX
// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention --canonicalize --cse --attn-cpu-plan-stages --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --canonicalize --cse --attn-cpu-lower-stages=remarks=1 -o /dev/null 2>&1 | FileCheck %s --check-prefix=REMARK --implicit-check-not="left to loops: body" --implicit-check-not="left to loops: the guard" --implicit-check-not="left to loops: indexing"
// RUN: attn-opt %s -split-input-file --attn-cpu-decompose-online-attention --canonicalize --cse --attn-cpu-plan-stages | FileCheck %s --check-prefix=PLAN

// The plan, made on tensors: each stage records the function its structure
// computes; each producer of a stage's init that the stage alone reads (the
// fills of the score contraction and the row max, the row rescale of P V)
// is marked as folded into it.
// PLAN-LABEL: func.func @tile
// PLAN:         attn.cpu_kernel = "elementwise"{{.+}}attn.cpu_stage = "query"
// PLAN:         %[[SF:.+]] = linalg.fill {attn.cpu_folded_into = "scores_lanes"} ins(%{{.+}} : f32)
// PLAN:         linalg.generic {{.+}}outs(%[[SF]] : {{.+}}attn.cpu_kernel = "scores_lanes"{{.+}}attn.cpu_stage = "scores"
// PLAN:         %[[MF:.+]] = linalg.fill {attn.cpu_folded_into = "max_lanes"}
// PLAN:         linalg.generic {{.+}}outs(%[[MF]] : {{.+}}attn.cpu_kernel = "max_lanes"{{.+}}attn.cpu_stage = "max"
// PLAN:         attn.cpu_kernel = "exp_sum_lanes"
// PLAN:         %[[R:.+]] = linalg.generic {{.+}}attn.cpu_folded_into = "pv", attn.cpu_kernel = "rescale"
// PLAN:         linalg.generic {{.+}}outs(%[[R]] : {{.+}}attn.cpu_kernel = "pv"

// The stages of a tile become register-blocked vector code: S^T = K Q^T
// with each key element broadcast against 16 queries (the zero fill folded
// in), the running max in pairs of keys, exp and sums lane-wise, and P V
// with the rescaling folded into the accumulator loads. Only the query
// stage stays a linalg.generic (loops, once per query block).
// Each stage took the lowering its structure (maps, iterators, body) says,
// as the remarks of remarks=1 name; no stage of the decomposition is left
// to loops for a body that does not match.
// REMARK: remark: stage 'query': left to loops: the query stage runs once per query block
// REMARK: remark: stage 'scores': score contraction, queries on the lanes (FMA)
// REMARK: remark: stage 'max': row max, queries on the lanes
// REMARK: remark: stage 'alpha': elementwise, region vectorizer
// REMARK: remark: stage 'exp_sum': exp and row sum, queries on the lanes
// REMARK: remark: stage 'rescale': row rescale, folded into the P V stage after it
// REMARK: remark: stage 'pv': P V (FMA), with the row rescale before it
// CHECK-LABEL: func.func @tile
// CHECK:         linalg.generic {{.+}}attn.cpu_stage = "query"
// CHECK:         scf.for %{{.+}} = %c0 to %c128 step %c32
// CHECK-NOT:       linalg.fill
// CHECK:           scf.for %{{.+}} = %c0 to %c16 step %c1 iter_args(%[[A0:[a-z0-9_]+]] = %{{.+}}) -> (vector<16xf32>
// CHECK:             %[[KB:.+]] = vector.broadcast %{{.+}} : f32 to vector<16xf32>
// CHECK:             vector.fma %[[KB]], %{{.+}}, %[[A0]] : vector<16xf32>
// CHECK:           scf.for %{{.+}} step %c2 iter_args(%[[RM:.+]] = %{{.+}}, %{{.+}} = %{{.+}}) -> (vector<16xf32>, vector<16xf32>)
// CHECK:             arith.cmpf ogt, %{{.+}}, %[[RM]] : vector<16xf32>
// CHECK:           arith.maximumf {{.+}} : vector<16xf32>
// CHECK:           math.exp {{.+}} : vector<16xf32>
// CHECK:           math.exp {{.+}} : vector<16xf32>
// CHECK:           arith.mulf {{.+}} : vector<8xf32>
// CHECK:           vector.fma {{.+}} : vector<8xf32>
// CHECK-NOT:       attn.cpu_stage
// CHECK:         return
func.func @tile(%q: tensor<1x1x32x16xf32>, %k: tensor<1x1x128x16xf32>, %v: tensor<1x1x128x8xf32>,
                %acc: tensor<1x1x32x8xf32>, %m: tensor<1x1x32xf32>, %l: tensor<1x1x32xf32>)
    -> (tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>) {
  %c0 = arith.constant 0 : index
  %c32 = arith.constant 32 : index
  %c128 = arith.constant 128 : index
  %r:3 = scf.for %k0 = %c0 to %c128 step %c32 iter_args(%a = %acc, %mx = %m, %s = %l)
      -> (tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>) {
    %kt = tensor.extract_slice %k[0, 0, %k0, 0] [1, 1, 32, 16] [1, 1, 1, 1] : tensor<1x1x128x16xf32> to tensor<1x1x32x16xf32>
    %vt = tensor.extract_slice %v[0, 0, %k0, 0] [1, 1, 32, 8] [1, 1, 1, 1] : tensor<1x1x128x8xf32> to tensor<1x1x32x8xf32>
    %o:3 = attn.online_attention {scale = 0.25 : f32}
        ins(%q, %kt, %vt : tensor<1x1x32x16xf32>, tensor<1x1x32x16xf32>, tensor<1x1x32x8xf32>)
        outs(%a, %mx, %s : tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>)
        -> tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
    scf.yield %o#0, %o#1, %o#2 : tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
  }
  return %r#0, %r#1, %r#2 : tensor<1x1x32x8xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
}

// -----

// The score stage's region, vectorized: the band test in i32 lanes, only
// in the branch of a tile that straddles the band.
// REMARK: remark: stage 'score': elementwise, region vectorizer
// REMARK: remark: stage 'pv': P V (FMA), with the row rescale before it
// CHECK-LABEL: func.func @causal
// CHECK:         scf.if %{{.+}} {
// CHECK-NEXT:    } else {
// CHECK:           arith.cmpi sle, %{{.+}} : vector<16xi32>
// CHECK:           arith.select %{{.+}} : vector<16xi1>, vector<16xf32>
// CHECK:         }
func.func @causal(%q: tensor<1x1x16x16xf32>, %k: tensor<1x1x16x16xf32>, %v: tensor<1x1x16x16xf32>,
                  %lens: tensor<1xi32>, %acc: tensor<1x1x16x16xf32>, %m: tensor<1x1x16xf32>,
                  %l: tensor<1x1x16xf32>, %q0: index, %k0: index, %qb: index)
    -> (tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>) {
  %o:3 = attn.online_attention {mask_kind = #attn.causal, scale = 0.25 : f32}
      ins(%q, %k, %v : tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>)
      kv_lens(%lens : tensor<1xi32>) offsets(%q0, %k0) q_bound(%qb)
      outs(%acc, %m, %l : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
  return %o#0, %o#1, %o#2 : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
}

// -----

// AVX512-BF16 computes vdpbf16ps on the query pairs, AMX tile products for
// both contractions.
// BF16-LABEL: func.func @bf16
// BF16:         x86vector.avx512.dot %{{.+}} : vector<32xbf16> -> vector<16xf32>
// AMX-LABEL: func.func @bf16
// AMX:         amx.tile_zero
// AMX:         amx.tile_mulf
// AMX:         vector.shuffle
// AMX:         amx.tile_mulf
func.func @bf16(%q: tensor<1x1x16x32xbf16>, %k: tensor<1x1x32x32xbf16>, %v: tensor<1x1x32x16xbf16>,
                %acc: tensor<1x1x16x16xf32>, %m: tensor<1x1x16xf32>, %l: tensor<1x1x16xf32>)
    -> (tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>) {
  %o:3 = attn.online_attention {scale = 0.125 : f32}
      ins(%q, %k, %v : tensor<1x1x16x32xbf16>, tensor<1x1x32x32xbf16>, tensor<1x1x32x16xbf16>)
      outs(%acc, %m, %l : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
  return %o#0, %o#1, %o#2 : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
}

// -----

// A row-broadcast mask: one scalar load per key, broadcast; P V guarded by
// p != 0.
// CHECK-LABEL: func.func @tensor_mask
// CHECK:         memref.load %{{.+}} : memref<1x1x1x16xi1>
// CHECK:         vector.broadcast %{{.+}} : i1 to vector<16xi1>
// CHECK:         arith.cmpf une
func.func @tensor_mask(%q: tensor<1x1x16x16xf32>, %k: tensor<1x1x16x16xf32>, %v: tensor<1x1x16x16xf32>,
                       %mask: tensor<1x1x1x16xi1>, %acc: tensor<1x1x16x16xf32>, %m: tensor<1x1x16xf32>,
                       %l: tensor<1x1x16xf32>)
    -> (tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>) {
  %o:3 = attn.online_attention
      ins(%q, %k, %v : tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>)
      mask(%mask : tensor<1x1x1x16xi1>)
      outs(%acc, %m, %l : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>)
      -> tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
  return %o#0, %o#1, %o#2 : tensor<1x1x16x16xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>
}

// -----

// Keys on the lanes: 16 dot products reduced together by a shuffle tree,
// horizontal row statistics.
// REMARK: remark: stage 'scores': score contraction, keys on the lanes
// REMARK: remark: stage 'max': row max, keys on the lanes
// REMARK: remark: stage 'exp_sum': exp and row sum, keys on the lanes
// REMARK: remark: stage 'pv': P V (FMA)
// CHECK-LABEL: func.func @decode
// CHECK:         scf.for %{{.+}} = %c0 to %c4
// CHECK:           vector.fma
// CHECK:           vector.shuffle
// CHECK:           vector.reduction <maximumf>
// CHECK:           vector.reduction <add>
func.func @decode(%q: tensor<1x4x1x32xf32>, %k: tensor<1x1x64x32xf32>, %v: tensor<1x1x64x32xf32>,
                  %acc: tensor<1x4x1x32xf32>, %m: tensor<1x4x1xf32>, %l: tensor<1x4x1xf32>)
    -> (tensor<1x4x1x32xf32>, tensor<1x4x1xf32>, tensor<1x4x1xf32>) {
  %o:3 = attn.online_attention
      ins(%q, %k, %v : tensor<1x4x1x32xf32>, tensor<1x1x64x32xf32>, tensor<1x1x64x32xf32>)
      outs(%acc, %m, %l : tensor<1x4x1x32xf32>, tensor<1x4x1xf32>, tensor<1x4x1xf32>)
      -> tensor<1x4x1x32xf32>, tensor<1x4x1xf32>, tensor<1x4x1xf32>
  return %o#0, %o#1, %o#2 : tensor<1x4x1x32xf32>, tensor<1x4x1xf32>, tensor<1x4x1xf32>
}

// -----

// A score stage whose region holds an op the vectorizer does not take
// stays a linalg.generic for the loop lowering.
// REMARK: remark: stage 'score': left to loops: the region vectorizer does not take it
// CHECK-LABEL: func.func @left_for_loops
// CHECK:         linalg.generic {{.+}}attn.cpu_stage = "score"
func.func @left_for_loops(%s: tensor<16x16xf32>) -> tensor<16x16xf32> {
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      outs(%s : tensor<16x16xf32>) attrs = {attn.cpu_stage = "score"} {
  ^bb0(%x: f32):
    %c = arith.cmpf ogt, %x, %x : f32
    %y = scf.if %c -> f32 {
      scf.yield %x : f32
    } else {
      %z = arith.negf %x : f32
      scf.yield %z : f32
    }
    linalg.yield %y : f32
  } -> tensor<16x16xf32>
  return %r : tensor<16x16xf32>
}

// -----

// A zero fill that another op also reads is not folded into the score
// contraction (the microkernel would leave that reader without the zeros):
// the plan marks nothing, and the contraction is left to loops.
// PLAN-LABEL: func.func @fill_read_twice
// PLAN:         %[[F:.+]] = linalg.fill ins(
// PLAN:         linalg.generic {{.+}}outs(%[[F]] : {{.+}}attn.cpu_kernel = "scores_lanes"
// REMARK: remark: stage 'scores': left to loops: no zero fill of its output was folded into it on tensors
// CHECK-LABEL: func.func @fill_read_twice
// CHECK:         linalg.fill
// CHECK:         linalg.generic {{.+}}attn.cpu_stage = "scores"
func.func @fill_read_twice(%k: tensor<32x16xf32>, %qt: tensor<16x16xf32>)
    -> (tensor<32x16xf32>, tensor<32x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<32x16xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<32x16xf32>) -> tensor<32x16xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(j, m, d) -> (j, d)>, affine_map<(j, m, d) -> (d, m)>, affine_map<(j, m, d) -> (j, m)>],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%k, %qt : tensor<32x16xf32>, tensor<16x16xf32>) outs(%f : tensor<32x16xf32>)
      attrs = {attn.cpu_stage = "scores", attn.cpu_scheme = "fma"} {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<32x16xf32>
  return %s, %f : tensor<32x16xf32>, tensor<32x16xf32>
}
