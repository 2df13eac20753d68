// RUN: attn-opt %s -split-input-file --attn-fuse-attention --canonicalize | FileCheck %s
// Masked attention as torch-mlir exports it
// (test/data/torch-mlir/export_attention.py MODE, MODE named above each
// case): the mask is evaluated for the static shape and becomes the mask
// kind it equals; masks that are no band stay unfused.

// MODE causal: torch.tril of ones compared through arange / sub / cmpi generics, then
// masked_fill(~mask, -inf) after the scale: #attn.causal.
// CHECK-LABEL: func.func @index_causal
// CHECK:         attn.attention {mask_kind = #attn.causal, scale = 2.500000e-01 : f32}
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0) -> (d0)>
#map2 = affine_map<(d0, d1) -> (0, d1)>
#map3 = affine_map<(d0, d1) -> (d0, 0)>
#map4 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map6 = affine_map<(d0, d1, d2, d3) -> ()>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map8 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @index_causal(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %true = arith.constant true
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant dense<true> : tensor<8x8xi1>
    %cst_3 = arith.constant 2.500000e-01 : f32
    %0 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_4 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %1 = tensor.empty() : tensor<2x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%2 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %4 = tensor.empty() : tensor<1x2x8x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = arith.mulf %in, %cst_3 : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %6 = tensor.empty() : tensor<8xi64>
    %7 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%6 : tensor<8xi64>) {
    ^bb0(%out: i64):
      %29 = linalg.index 0 : index
      %30 = arith.index_cast %29 : index to i64
      linalg.yield %30 : i64
    } -> tensor<8xi64>
    %expanded_5 = tensor.expand_shape %7 [[0, 1]] output_shape [1, 8] : tensor<8xi64> into tensor<1x8xi64>
    %expanded_6 = tensor.expand_shape %7 [[0, 1]] output_shape [8, 1] : tensor<8xi64> into tensor<8x1xi64>
    %8 = tensor.empty() : tensor<8x8xi64>
    %9 = linalg.generic {indexing_maps = [#map2, #map3, #map4], iterator_types = ["parallel", "parallel"]} ins(%expanded_5, %expanded_6 : tensor<1x8xi64>, tensor<8x1xi64>) outs(%8 : tensor<8x8xi64>) {
    ^bb0(%in: i64, %in_11: i64, %out: i64):
      %29 = arith.subi %in, %in_11 : i64
      linalg.yield %29 : i64
    } -> tensor<8x8xi64>
    %10 = tensor.empty() : tensor<8x8xi1>
    %11 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%9 : tensor<8x8xi64>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i64, %out: i1):
      %29 = arith.cmpi sle, %in, %c0_i64 : i64
      linalg.yield %29 : i1
    } -> tensor<8x8xi1>
    %12 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%11, %cst_2 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %29 = arith.andi %in, %in_11 : i1
      linalg.yield %29 : i1
    } -> tensor<8x8xi1>
    %13 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%12 : tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %29 = arith.xori %in, %true : i1
      linalg.yield %29 : i1
    } -> tensor<8x8xi1>
    %14 = linalg.generic {indexing_maps = [#map5, #map6, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13, %cst_1, %5 : tensor<8x8xi1>, tensor<f32>, tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %29 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %15 = tensor.empty() : tensor<1x2x8xi64>
    %16 = linalg.fill ins(%c0_i64 : i64) outs(%15 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %17 = tensor.empty() : tensor<1x2x8xf32>
    %18 = linalg.fill ins(%cst_0 : f32) outs(%17 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %19:2 = linalg.generic {indexing_maps = [#map, #map7, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%14 : tensor<1x2x8x8xf32>) outs(%18, %16 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_11: i64):
      %29 = linalg.index 3 : index
      %30 = arith.index_cast %29 : index to i64
      %31 = arith.maximumf %in, %out : f32
      %32 = arith.cmpf ogt, %in, %out : f32
      %33 = arith.select %32, %30, %out_11 : i64
      linalg.yield %31, %33 : f32, i64
    } -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_7 = tensor.expand_shape %19#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%14, %expanded_7 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %29 = arith.subf %in, %in_11 : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %21 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%20 : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = math.exp %in : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %22 = tensor.empty() : tensor<1x2x8x1xf32>
    %23 = linalg.fill ins(%cst : f32) outs(%22 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %24 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%21 : tensor<1x2x8x8xf32>) outs(%23 : tensor<1x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = arith.addf %in, %out : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x1xf32>
    %25 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%21, %24 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %29 = arith.divf %in, %in_11 : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %collapsed_8 = tensor.collapse_shape %25 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_9 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %26 = tensor.empty() : tensor<2x8x16xf32>
    %27 = linalg.fill ins(%cst : f32) outs(%26 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %28 = linalg.batch_matmul ins(%collapsed_8, %collapsed_9 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%27 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_10 = tensor.expand_shape %28 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_10 : tensor<1x2x8x16xf32>
  }
}

// -----

// MODE causal_br: 4 queries against 8 keys with tril(diagonal=4): bottom-right causal.
// CHECK-LABEL: func.func @bottom_right_causal
// CHECK:         attn.attention {mask_kind = #attn.causal<bottom_right>, scale = 2.500000e-01 : f32} ins({{.+}} : tensor<1x2x4x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0) -> (d0)>
#map2 = affine_map<(d0, d1) -> (0, d1)>
#map3 = affine_map<(d0, d1) -> (d0, 0)>
#map4 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map6 = affine_map<(d0, d1, d2, d3) -> ()>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map8 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @bottom_right_causal(%arg0: tensor<1x2x4x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x2x4x16xf32> {
    %c4_i64 = arith.constant 4 : i64
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %true = arith.constant true
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant dense<true> : tensor<4x8xi1>
    %cst_3 = arith.constant 2.500000e-01 : f32
    %0 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x2x4x16xf32> into tensor<2x4x16xf32>
    %collapsed_4 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %1 = tensor.empty() : tensor<2x4x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<2x4x16xf32>, tensor<2x16x8xf32>) outs(%2 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [1, 2, 4, 8] : tensor<2x4x8xf32> into tensor<1x2x4x8xf32>
    %4 = tensor.empty() : tensor<1x2x4x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<1x2x4x8xf32>) outs(%4 : tensor<1x2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.mulf %in, %cst_3 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x4x8xf32>
    %6 = tensor.empty() : tensor<8xi64>
    %7 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%6 : tensor<8xi64>) {
    ^bb0(%out: i64):
      %31 = linalg.index 0 : index
      %32 = arith.index_cast %31 : index to i64
      linalg.yield %32 : i64
    } -> tensor<8xi64>
    %expanded_5 = tensor.expand_shape %7 [[0, 1]] output_shape [1, 8] : tensor<8xi64> into tensor<1x8xi64>
    %8 = tensor.empty() : tensor<4xi64>
    %9 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%8 : tensor<4xi64>) {
    ^bb0(%out: i64):
      %31 = linalg.index 0 : index
      %32 = arith.index_cast %31 : index to i64
      linalg.yield %32 : i64
    } -> tensor<4xi64>
    %expanded_6 = tensor.expand_shape %9 [[0, 1]] output_shape [4, 1] : tensor<4xi64> into tensor<4x1xi64>
    %10 = tensor.empty() : tensor<4x8xi64>
    %11 = linalg.generic {indexing_maps = [#map2, #map3, #map4], iterator_types = ["parallel", "parallel"]} ins(%expanded_5, %expanded_6 : tensor<1x8xi64>, tensor<4x1xi64>) outs(%10 : tensor<4x8xi64>) {
    ^bb0(%in: i64, %in_11: i64, %out: i64):
      %31 = arith.subi %in, %in_11 : i64
      linalg.yield %31 : i64
    } -> tensor<4x8xi64>
    %12 = tensor.empty() : tensor<4x8xi1>
    %13 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%11 : tensor<4x8xi64>) outs(%12 : tensor<4x8xi1>) {
    ^bb0(%in: i64, %out: i1):
      %31 = arith.cmpi sle, %in, %c4_i64 : i64
      linalg.yield %31 : i1
    } -> tensor<4x8xi1>
    %14 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%13, %cst_2 : tensor<4x8xi1>, tensor<4x8xi1>) outs(%12 : tensor<4x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %31 = arith.andi %in, %in_11 : i1
      linalg.yield %31 : i1
    } -> tensor<4x8xi1>
    %15 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%14 : tensor<4x8xi1>) outs(%12 : tensor<4x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %31 = arith.xori %in, %true : i1
      linalg.yield %31 : i1
    } -> tensor<4x8xi1>
    %16 = linalg.generic {indexing_maps = [#map5, #map6, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%15, %cst_1, %5 : tensor<4x8xi1>, tensor<f32>, tensor<1x2x4x8xf32>) outs(%4 : tensor<1x2x4x8xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %31 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x4x8xf32>
    %17 = tensor.empty() : tensor<1x2x4xi64>
    %18 = linalg.fill ins(%c0_i64 : i64) outs(%17 : tensor<1x2x4xi64>) -> tensor<1x2x4xi64>
    %19 = tensor.empty() : tensor<1x2x4xf32>
    %20 = linalg.fill ins(%cst_0 : f32) outs(%19 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %21:2 = linalg.generic {indexing_maps = [#map, #map7, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%16 : tensor<1x2x4x8xf32>) outs(%20, %18 : tensor<1x2x4xf32>, tensor<1x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_11: i64):
      %31 = linalg.index 3 : index
      %32 = arith.index_cast %31 : index to i64
      %33 = arith.maximumf %in, %out : f32
      %34 = arith.cmpf ogt, %in, %out : f32
      %35 = arith.select %34, %32, %out_11 : i64
      linalg.yield %33, %35 : f32, i64
    } -> (tensor<1x2x4xf32>, tensor<1x2x4xi64>)
    %expanded_7 = tensor.expand_shape %21#0 [[0], [1], [2, 3]] output_shape [1, 2, 4, 1] : tensor<1x2x4xf32> into tensor<1x2x4x1xf32>
    %22 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16, %expanded_7 : tensor<1x2x4x8xf32>, tensor<1x2x4x1xf32>) outs(%4 : tensor<1x2x4x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.subf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x4x8xf32>
    %23 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%22 : tensor<1x2x4x8xf32>) outs(%4 : tensor<1x2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = math.exp %in : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x4x8xf32>
    %24 = tensor.empty() : tensor<1x2x4x1xf32>
    %25 = linalg.fill ins(%cst : f32) outs(%24 : tensor<1x2x4x1xf32>) -> tensor<1x2x4x1xf32>
    %26 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%23 : tensor<1x2x4x8xf32>) outs(%25 : tensor<1x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.addf %in, %out : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x4x1xf32>
    %27 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%23, %26 : tensor<1x2x4x8xf32>, tensor<1x2x4x1xf32>) outs(%4 : tensor<1x2x4x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.divf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x4x8xf32>
    %collapsed_8 = tensor.collapse_shape %27 [[0, 1], [2], [3]] : tensor<1x2x4x8xf32> into tensor<2x4x8xf32>
    %collapsed_9 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %28 = tensor.empty() : tensor<2x4x16xf32>
    %29 = linalg.fill ins(%cst : f32) outs(%28 : tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
    %30 = linalg.batch_matmul ins(%collapsed_8, %collapsed_9 : tensor<2x4x8xf32>, tensor<2x8x16xf32>) outs(%29 : tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
    %expanded_10 = tensor.expand_shape %30 [[0, 1], [2], [3]] output_shape [1, 2, 4, 16] : tensor<2x4x16xf32> into tensor<1x2x4x16xf32>
    return %expanded_10 : tensor<1x2x4x16xf32>
  }
}

// -----

// MODE window: tril & triu(diagonal=-2): a sliding window of 2 keys to the left.
// CHECK-LABEL: func.func @sliding_window
// CHECK:         attn.attention {mask_kind = #attn.sliding_window<left = 2, right = 0>, scale = 2.500000e-01 : f32}
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0) -> (d0)>
#map2 = affine_map<(d0, d1) -> (0, d1)>
#map3 = affine_map<(d0, d1) -> (d0, 0)>
#map4 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map6 = affine_map<(d0, d1, d2, d3) -> ()>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map8 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @sliding_window(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
    %c-2_i64 = arith.constant -2 : i64
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %true = arith.constant true
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant dense<true> : tensor<8x8xi1>
    %cst_3 = arith.constant 2.500000e-01 : f32
    %0 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_4 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %1 = tensor.empty() : tensor<2x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%2 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %4 = tensor.empty() : tensor<1x2x8x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %32 = arith.mulf %in, %cst_3 : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %6 = tensor.empty() : tensor<8xi64>
    %7 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%6 : tensor<8xi64>) {
    ^bb0(%out: i64):
      %32 = linalg.index 0 : index
      %33 = arith.index_cast %32 : index to i64
      linalg.yield %33 : i64
    } -> tensor<8xi64>
    %expanded_5 = tensor.expand_shape %7 [[0, 1]] output_shape [1, 8] : tensor<8xi64> into tensor<1x8xi64>
    %expanded_6 = tensor.expand_shape %7 [[0, 1]] output_shape [8, 1] : tensor<8xi64> into tensor<8x1xi64>
    %8 = tensor.empty() : tensor<8x8xi64>
    %9 = linalg.generic {indexing_maps = [#map2, #map3, #map4], iterator_types = ["parallel", "parallel"]} ins(%expanded_5, %expanded_6 : tensor<1x8xi64>, tensor<8x1xi64>) outs(%8 : tensor<8x8xi64>) {
    ^bb0(%in: i64, %in_11: i64, %out: i64):
      %32 = arith.subi %in, %in_11 : i64
      linalg.yield %32 : i64
    } -> tensor<8x8xi64>
    %10 = tensor.empty() : tensor<8x8xi1>
    %11 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%9 : tensor<8x8xi64>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i64, %out: i1):
      %32 = arith.cmpi sle, %in, %c0_i64 : i64
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %12 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%11, %cst_2 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %32 = arith.andi %in, %in_11 : i1
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %13 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%9 : tensor<8x8xi64>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i64, %out: i1):
      %32 = arith.cmpi sge, %in, %c-2_i64 : i64
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %14 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%13, %cst_2 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %32 = arith.andi %in, %in_11 : i1
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %15 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%12, %14 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %32 = arith.andi %in, %in_11 : i1
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %16 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%15 : tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %32 = arith.xori %in, %true : i1
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %17 = linalg.generic {indexing_maps = [#map5, #map6, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16, %cst_1, %5 : tensor<8x8xi1>, tensor<f32>, tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %32 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %18 = tensor.empty() : tensor<1x2x8xi64>
    %19 = linalg.fill ins(%c0_i64 : i64) outs(%18 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %20 = tensor.empty() : tensor<1x2x8xf32>
    %21 = linalg.fill ins(%cst_0 : f32) outs(%20 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %22:2 = linalg.generic {indexing_maps = [#map, #map7, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%17 : tensor<1x2x8x8xf32>) outs(%21, %19 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_11: i64):
      %32 = linalg.index 3 : index
      %33 = arith.index_cast %32 : index to i64
      %34 = arith.maximumf %in, %out : f32
      %35 = arith.cmpf ogt, %in, %out : f32
      %36 = arith.select %35, %33, %out_11 : i64
      linalg.yield %34, %36 : f32, i64
    } -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_7 = tensor.expand_shape %22#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %23 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17, %expanded_7 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %32 = arith.subf %in, %in_11 : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %24 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%23 : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %32 = math.exp %in : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %25 = tensor.empty() : tensor<1x2x8x1xf32>
    %26 = linalg.fill ins(%cst : f32) outs(%25 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %27 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%24 : tensor<1x2x8x8xf32>) outs(%26 : tensor<1x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %32 = arith.addf %in, %out : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x1xf32>
    %28 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%24, %27 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %32 = arith.divf %in, %in_11 : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %collapsed_8 = tensor.collapse_shape %28 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_9 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %29 = tensor.empty() : tensor<2x8x16xf32>
    %30 = linalg.fill ins(%cst : f32) outs(%29 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %31 = linalg.batch_matmul ins(%collapsed_8, %collapsed_9 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%30 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_10 = tensor.expand_shape %31 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_10 : tensor<1x2x8x16xf32>
  }
}

// -----

// MODE random with the blob replaced by tril: a constant (dense_resource) lower-triangular mask: #attn.causal.
// CHECK-LABEL: func.func @constant_triangular
// CHECK:         attn.attention {mask_kind = #attn.causal, scale = 2.500000e-01 : f32}
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map3 = affine_map<(d0, d1, d2, d3) -> ()>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map5 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @constant_triangular(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i8 = arith.constant 0 : i8
    %true = arith.constant true
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant 2.500000e-01 : f32
    %cst_3 = arith.constant dense_resource<torch_tensor_constant_triangular> : tensor<8x8xi8>
    %0 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_4 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %1 = tensor.empty() : tensor<2x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%2 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %4 = tensor.empty() : tensor<1x2x8x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %24 = arith.mulf %in, %cst_2 : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %6 = tensor.empty() : tensor<8x8xi1>
    %7 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel"]} ins(%cst_3 : tensor<8x8xi8>) outs(%6 : tensor<8x8xi1>) {
    ^bb0(%in: i8, %out: i1):
      %24 = arith.cmpi ne, %in, %c0_i8 : i8
      linalg.yield %24 : i1
    } -> tensor<8x8xi1>
    %8 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel"]} ins(%7 : tensor<8x8xi1>) outs(%6 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %24 = arith.xori %in, %true : i1
      linalg.yield %24 : i1
    } -> tensor<8x8xi1>
    %9 = linalg.generic {indexing_maps = [#map2, #map3, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%8, %cst_1, %5 : tensor<8x8xi1>, tensor<f32>, tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: i1, %in_9: f32, %in_10: f32, %out: f32):
      %24 = arith.select %in, %in_9, %in_10 : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %10 = tensor.empty() : tensor<1x2x8xi64>
    %11 = linalg.fill ins(%c0_i64 : i64) outs(%10 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %12 = tensor.empty() : tensor<1x2x8xf32>
    %13 = linalg.fill ins(%cst_0 : f32) outs(%12 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %14:2 = linalg.generic {indexing_maps = [#map, #map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%9 : tensor<1x2x8x8xf32>) outs(%13, %11 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_9: i64):
      %24 = linalg.index 3 : index
      %25 = arith.index_cast %24 : index to i64
      %26 = arith.maximumf %in, %out : f32
      %27 = arith.cmpf ogt, %in, %out : f32
      %28 = arith.select %27, %25, %out_9 : i64
      linalg.yield %26, %28 : f32, i64
    } -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_5 = tensor.expand_shape %14#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map5, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%9, %expanded_5 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %24 = arith.subf %in, %in_9 : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%15 : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %24 = math.exp %in : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %17 = tensor.empty() : tensor<1x2x8x1xf32>
    %18 = linalg.fill ins(%cst : f32) outs(%17 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %19 = linalg.generic {indexing_maps = [#map, #map5], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%16 : tensor<1x2x8x8xf32>) outs(%18 : tensor<1x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %24 = arith.addf %in, %out : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map5, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16, %19 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %24 = arith.divf %in, %in_9 : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %collapsed_6 = tensor.collapse_shape %20 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_7 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %21 = tensor.empty() : tensor<2x8x16xf32>
    %22 = linalg.fill ins(%cst : f32) outs(%21 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %23 = linalg.batch_matmul ins(%collapsed_6, %collapsed_7 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%22 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_8 = tensor.expand_shape %23 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_8 : tensor<1x2x8x16xf32>
  }
}

{-#
  dialect_resources: {
    builtin: {
      torch_tensor_constant_triangular: "0x0100000001000000000000000101000000000000010101000000000001010101000000000101010101000000010101010101000001010101010101000101010101010101"
    }
  }
#-}

// -----

// MODE triu: the keys at or after the query are a window of 0 keys to the
// left and 7 to the right (clipped at Sk).
// CHECK-LABEL: func.func @keys_after_the_query
// CHECK:         attn.attention {mask_kind = #attn.sliding_window<left = 0, right = 7>, scale = 2.500000e-01 : f32}
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0) -> (d0)>
#map2 = affine_map<(d0, d1) -> (0, d1)>
#map3 = affine_map<(d0, d1) -> (d0, 0)>
#map4 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map6 = affine_map<(d0, d1, d2, d3) -> ()>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map8 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @keys_after_the_query(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %true = arith.constant true
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant dense<true> : tensor<8x8xi1>
    %cst_3 = arith.constant 2.500000e-01 : f32
    %0 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_4 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %1 = tensor.empty() : tensor<2x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%2 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %4 = tensor.empty() : tensor<1x2x8x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = arith.mulf %in, %cst_3 : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %6 = tensor.empty() : tensor<8xi64>
    %7 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%6 : tensor<8xi64>) {
    ^bb0(%out: i64):
      %29 = linalg.index 0 : index
      %30 = arith.index_cast %29 : index to i64
      linalg.yield %30 : i64
    } -> tensor<8xi64>
    %expanded_5 = tensor.expand_shape %7 [[0, 1]] output_shape [1, 8] : tensor<8xi64> into tensor<1x8xi64>
    %expanded_6 = tensor.expand_shape %7 [[0, 1]] output_shape [8, 1] : tensor<8xi64> into tensor<8x1xi64>
    %8 = tensor.empty() : tensor<8x8xi64>
    %9 = linalg.generic {indexing_maps = [#map2, #map3, #map4], iterator_types = ["parallel", "parallel"]} ins(%expanded_5, %expanded_6 : tensor<1x8xi64>, tensor<8x1xi64>) outs(%8 : tensor<8x8xi64>) {
    ^bb0(%in: i64, %in_11: i64, %out: i64):
      %29 = arith.subi %in, %in_11 : i64
      linalg.yield %29 : i64
    } -> tensor<8x8xi64>
    %10 = tensor.empty() : tensor<8x8xi1>
    %11 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%9 : tensor<8x8xi64>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i64, %out: i1):
      %29 = arith.cmpi sge, %in, %c0_i64 : i64
      linalg.yield %29 : i1
    } -> tensor<8x8xi1>
    %12 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%11, %cst_2 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %29 = arith.andi %in, %in_11 : i1
      linalg.yield %29 : i1
    } -> tensor<8x8xi1>
    %13 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%12 : tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %29 = arith.xori %in, %true : i1
      linalg.yield %29 : i1
    } -> tensor<8x8xi1>
    %14 = linalg.generic {indexing_maps = [#map5, #map6, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13, %cst_1, %5 : tensor<8x8xi1>, tensor<f32>, tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %29 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %15 = tensor.empty() : tensor<1x2x8xi64>
    %16 = linalg.fill ins(%c0_i64 : i64) outs(%15 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %17 = tensor.empty() : tensor<1x2x8xf32>
    %18 = linalg.fill ins(%cst_0 : f32) outs(%17 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %19:2 = linalg.generic {indexing_maps = [#map, #map7, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%14 : tensor<1x2x8x8xf32>) outs(%18, %16 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_11: i64):
      %29 = linalg.index 3 : index
      %30 = arith.index_cast %29 : index to i64
      %31 = arith.maximumf %in, %out : f32
      %32 = arith.cmpf ogt, %in, %out : f32
      %33 = arith.select %32, %30, %out_11 : i64
      linalg.yield %31, %33 : f32, i64
    } -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_7 = tensor.expand_shape %19#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%14, %expanded_7 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %29 = arith.subf %in, %in_11 : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %21 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%20 : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = math.exp %in : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %22 = tensor.empty() : tensor<1x2x8x1xf32>
    %23 = linalg.fill ins(%cst : f32) outs(%22 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %24 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%21 : tensor<1x2x8x8xf32>) outs(%23 : tensor<1x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = arith.addf %in, %out : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x1xf32>
    %25 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%21, %24 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %29 = arith.divf %in, %in_11 : f32
      linalg.yield %29 : f32
    } -> tensor<1x2x8x8xf32>
    %collapsed_8 = tensor.collapse_shape %25 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_9 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %26 = tensor.empty() : tensor<2x8x16xf32>
    %27 = linalg.fill ins(%cst : f32) outs(%26 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %28 = linalg.batch_matmul ins(%collapsed_8, %collapsed_9 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%27 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_10 = tensor.expand_shape %28 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_10 : tensor<1x2x8x16xf32>
  }
}

// -----

// MODE random: a constant random mask is no band: the mask operand.
// CHECK-LABEL: func.func @random_constant_mask
// CHECK:         attn.attention {scale = 2.500000e-01 : f32} ins({{.+}}) mask(%{{.+}} : tensor<1x1x8x8xi1>)
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map3 = affine_map<(d0, d1, d2, d3) -> ()>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map5 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @random_constant_mask(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i8 = arith.constant 0 : i8
    %true = arith.constant true
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant 2.500000e-01 : f32
    %cst_3 = arith.constant dense_resource<torch_tensor_random_constant_mask> : tensor<8x8xi8>
    %0 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_4 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %1 = tensor.empty() : tensor<2x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%2 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %4 = tensor.empty() : tensor<1x2x8x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %24 = arith.mulf %in, %cst_2 : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %6 = tensor.empty() : tensor<8x8xi1>
    %7 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel"]} ins(%cst_3 : tensor<8x8xi8>) outs(%6 : tensor<8x8xi1>) {
    ^bb0(%in: i8, %out: i1):
      %24 = arith.cmpi ne, %in, %c0_i8 : i8
      linalg.yield %24 : i1
    } -> tensor<8x8xi1>
    %8 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel"]} ins(%7 : tensor<8x8xi1>) outs(%6 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %24 = arith.xori %in, %true : i1
      linalg.yield %24 : i1
    } -> tensor<8x8xi1>
    %9 = linalg.generic {indexing_maps = [#map2, #map3, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%8, %cst_1, %5 : tensor<8x8xi1>, tensor<f32>, tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: i1, %in_9: f32, %in_10: f32, %out: f32):
      %24 = arith.select %in, %in_9, %in_10 : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %10 = tensor.empty() : tensor<1x2x8xi64>
    %11 = linalg.fill ins(%c0_i64 : i64) outs(%10 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %12 = tensor.empty() : tensor<1x2x8xf32>
    %13 = linalg.fill ins(%cst_0 : f32) outs(%12 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %14:2 = linalg.generic {indexing_maps = [#map, #map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%9 : tensor<1x2x8x8xf32>) outs(%13, %11 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_9: i64):
      %24 = linalg.index 3 : index
      %25 = arith.index_cast %24 : index to i64
      %26 = arith.maximumf %in, %out : f32
      %27 = arith.cmpf ogt, %in, %out : f32
      %28 = arith.select %27, %25, %out_9 : i64
      linalg.yield %26, %28 : f32, i64
    } -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_5 = tensor.expand_shape %14#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map5, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%9, %expanded_5 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %24 = arith.subf %in, %in_9 : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%15 : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %24 = math.exp %in : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %17 = tensor.empty() : tensor<1x2x8x1xf32>
    %18 = linalg.fill ins(%cst : f32) outs(%17 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %19 = linalg.generic {indexing_maps = [#map, #map5], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%16 : tensor<1x2x8x8xf32>) outs(%18 : tensor<1x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %24 = arith.addf %in, %out : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map5, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16, %19 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %24 = arith.divf %in, %in_9 : f32
      linalg.yield %24 : f32
    } -> tensor<1x2x8x8xf32>
    %collapsed_6 = tensor.collapse_shape %20 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_7 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %21 = tensor.empty() : tensor<2x8x16xf32>
    %22 = linalg.fill ins(%cst : f32) outs(%21 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %23 = linalg.batch_matmul ins(%collapsed_6, %collapsed_7 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%22 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_8 = tensor.expand_shape %23 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_8 : tensor<1x2x8x16xf32>
  }
}

{-#
  dialect_resources: {
    builtin: {
      torch_tensor_random_constant_mask: "0x0100000001010000010101010101010100000001010100000101010101010100000101010100000000010101010001000000010101010101010101000100000001010001"
    }
  }
#-}

// -----

// MODE bias: an additive [B, 1, 1, Sk] bias after the scale: the bias operand.
// CHECK-LABEL: func.func @additive_bias
// CHECK-SAME:    %[[B:[a-z0-9]+]]: tensor<2x1x1x8xf32>
// CHECK:         attn.attention {scale = 2.500000e-01 : f32} ins({{.+}}) bias(%[[B]] : tensor<2x1x1x8xf32>)
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, 0, 0, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @additive_bias(%arg0: tensor<2x2x8x16xf32>, %arg1: tensor<2x2x8x16xf32>, %arg2: tensor<2x2x8x16xf32>, %arg3: tensor<2x1x1x8xf32>) -> tensor<2x2x8x16xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 4.000000e+00 : f32
    %0 = tensor.empty() : tensor<2x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x8x16xf32>) outs(%0 : tensor<2x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x8x16xf32> into tensor<4x8x16xf32>
    %collapsed_2 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x16x8xf32> into tensor<4x16x8xf32>
    %1 = tensor.empty() : tensor<4x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_2 : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%2 : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [2, 2, 8, 8] : tensor<4x8x8xf32> into tensor<2x2x8x8xf32>
    %4 = tensor.empty() : tensor<2x2x8x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x8x8xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = arith.divf %in, %cst_1 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x8x8xf32>
    %6 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%5, %arg3 : tensor<2x2x8x8xf32>, tensor<2x1x1x8xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %21 = arith.addf %in, %in_7 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x8x8xf32>
    %7 = tensor.empty() : tensor<2x2x8xi64>
    %8 = linalg.fill ins(%c0_i64 : i64) outs(%7 : tensor<2x2x8xi64>) -> tensor<2x2x8xi64>
    %9 = tensor.empty() : tensor<2x2x8xf32>
    %10 = linalg.fill ins(%cst_0 : f32) outs(%9 : tensor<2x2x8xf32>) -> tensor<2x2x8xf32>
    %11:2 = linalg.generic {indexing_maps = [#map, #map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%6 : tensor<2x2x8x8xf32>) outs(%10, %8 : tensor<2x2x8xf32>, tensor<2x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_7: i64):
      %21 = linalg.index 3 : index
      %22 = arith.index_cast %21 : index to i64
      %23 = arith.maximumf %in, %out : f32
      %24 = arith.cmpf ogt, %in, %out : f32
      %25 = arith.select %24, %22, %out_7 : i64
      linalg.yield %23, %25 : f32, i64
    } -> (tensor<2x2x8xf32>, tensor<2x2x8xi64>)
    %expanded_3 = tensor.expand_shape %11#0 [[0], [1], [2, 3]] output_shape [2, 2, 8, 1] : tensor<2x2x8xf32> into tensor<2x2x8x1xf32>
    %12 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%6, %expanded_3 : tensor<2x2x8x8xf32>, tensor<2x2x8x1xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %21 = arith.subf %in, %in_7 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x8x8xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%12 : tensor<2x2x8x8xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = math.exp %in : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x8x8xf32>
    %14 = tensor.empty() : tensor<2x2x8x1xf32>
    %15 = linalg.fill ins(%cst : f32) outs(%14 : tensor<2x2x8x1xf32>) -> tensor<2x2x8x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%13 : tensor<2x2x8x8xf32>) outs(%15 : tensor<2x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = arith.addf %in, %out : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x8x1xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13, %16 : tensor<2x2x8x8xf32>, tensor<2x2x8x1xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %21 = arith.divf %in, %in_7 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x8x8xf32>
    %collapsed_4 = tensor.collapse_shape %17 [[0, 1], [2], [3]] : tensor<2x2x8x8xf32> into tensor<4x8x8xf32>
    %collapsed_5 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x8x16xf32> into tensor<4x8x16xf32>
    %18 = tensor.empty() : tensor<4x8x16xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
    %20 = linalg.batch_matmul ins(%collapsed_4, %collapsed_5 : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%19 : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
    %expanded_6 = tensor.expand_shape %20 [[0, 1], [2], [3]] output_shape [2, 2, 8, 16] : tensor<4x8x16xf32> into tensor<2x2x8x16xf32>
    return %expanded_6 : tensor<2x2x8x16xf32>
  }
}

// -----

// MODE padding: masked_fill(~keep, -inf) with a [B, 1, 1, Sk] keep argument:
// keep itself is the mask operand (no inversion left).
// CHECK-LABEL: func.func @padding_mask
// CHECK-SAME:    %[[KEEP:[a-z0-9]+]]: tensor<2x1x1x8xi1>
// CHECK:         attn.attention {scale = 2.500000e-01 : f32} ins({{.+}}) mask(%[[KEEP]] : tensor<2x1x1x8xi1>)
// CHECK-NOT:     linalg.generic
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, 0, 0, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> ()>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @padding_mask(%arg0: tensor<2x2x8x16xf32>, %arg1: tensor<2x2x8x16xf32>, %arg2: tensor<2x2x8x16xf32>, %arg3: tensor<2x1x1x8xi1>) -> tensor<2x2x8x16xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %true = arith.constant true
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant 4.000000e+00 : f32
    %0 = tensor.empty() : tensor<2x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x8x16xf32>) outs(%0 : tensor<2x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x8x16xf32> into tensor<4x8x16xf32>
    %collapsed_3 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x16x8xf32> into tensor<4x16x8xf32>
    %1 = tensor.empty() : tensor<4x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_3 : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%2 : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [2, 2, 8, 8] : tensor<4x8x8xf32> into tensor<2x2x8x8xf32>
    %4 = tensor.empty() : tensor<2x2x8x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x8x8xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = arith.divf %in, %cst_2 : f32
      linalg.yield %23 : f32
    } -> tensor<2x2x8x8xf32>
    %6 = tensor.empty() : tensor<2x1x1x8xi1>
    %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg3 : tensor<2x1x1x8xi1>) outs(%6 : tensor<2x1x1x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %23 = arith.xori %in, %true : i1
      linalg.yield %23 : i1
    } -> tensor<2x1x1x8xi1>
    %8 = linalg.generic {indexing_maps = [#map1, #map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%7, %cst_1, %5 : tensor<2x1x1x8xi1>, tensor<f32>, tensor<2x2x8x8xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: i1, %in_8: f32, %in_9: f32, %out: f32):
      %23 = arith.select %in, %in_8, %in_9 : f32
      linalg.yield %23 : f32
    } -> tensor<2x2x8x8xf32>
    %9 = tensor.empty() : tensor<2x2x8xi64>
    %10 = linalg.fill ins(%c0_i64 : i64) outs(%9 : tensor<2x2x8xi64>) -> tensor<2x2x8xi64>
    %11 = tensor.empty() : tensor<2x2x8xf32>
    %12 = linalg.fill ins(%cst_0 : f32) outs(%11 : tensor<2x2x8xf32>) -> tensor<2x2x8xf32>
    %13:2 = linalg.generic {indexing_maps = [#map, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%8 : tensor<2x2x8x8xf32>) outs(%12, %10 : tensor<2x2x8xf32>, tensor<2x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_8: i64):
      %23 = linalg.index 3 : index
      %24 = arith.index_cast %23 : index to i64
      %25 = arith.maximumf %in, %out : f32
      %26 = arith.cmpf ogt, %in, %out : f32
      %27 = arith.select %26, %24, %out_8 : i64
      linalg.yield %25, %27 : f32, i64
    } -> (tensor<2x2x8xf32>, tensor<2x2x8xi64>)
    %expanded_4 = tensor.expand_shape %13#0 [[0], [1], [2, 3]] output_shape [2, 2, 8, 1] : tensor<2x2x8xf32> into tensor<2x2x8x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%8, %expanded_4 : tensor<2x2x8x8xf32>, tensor<2x2x8x1xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %23 = arith.subf %in, %in_8 : f32
      linalg.yield %23 : f32
    } -> tensor<2x2x8x8xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%14 : tensor<2x2x8x8xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = math.exp %in : f32
      linalg.yield %23 : f32
    } -> tensor<2x2x8x8xf32>
    %16 = tensor.empty() : tensor<2x2x8x1xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<2x2x8x1xf32>) -> tensor<2x2x8x1xf32>
    %18 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%15 : tensor<2x2x8x8xf32>) outs(%17 : tensor<2x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = arith.addf %in, %out : f32
      linalg.yield %23 : f32
    } -> tensor<2x2x8x1xf32>
    %19 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%15, %18 : tensor<2x2x8x8xf32>, tensor<2x2x8x1xf32>) outs(%4 : tensor<2x2x8x8xf32>) {
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %23 = arith.divf %in, %in_8 : f32
      linalg.yield %23 : f32
    } -> tensor<2x2x8x8xf32>
    %collapsed_5 = tensor.collapse_shape %19 [[0, 1], [2], [3]] : tensor<2x2x8x8xf32> into tensor<4x8x8xf32>
    %collapsed_6 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x8x16xf32> into tensor<4x8x16xf32>
    %20 = tensor.empty() : tensor<4x8x16xf32>
    %21 = linalg.fill ins(%cst : f32) outs(%20 : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
    %22 = linalg.batch_matmul ins(%collapsed_5, %collapsed_6 : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%21 : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
    %expanded_7 = tensor.expand_shape %22 [[0, 1], [2], [3]] output_shape [2, 2, 8, 16] : tensor<4x8x16xf32> into tensor<2x2x8x16xf32>
    return %expanded_7 : tensor<2x2x8x16xf32>
  }
}

// -----

// MODE gqa: K and V repeated to the query heads (repeat_kv's expand +
// reshape) are read unrepeated: attn's GQA, no repeat materialised.
// CHECK-LABEL: func.func @gqa_repeat_kv
// CHECK-SAME:    (%[[Q:.+]]: tensor<1x4x8x16xf32>, %[[K:.+]]: tensor<1x2x8x16xf32>, %[[V:.+]]: tensor<1x2x8x16xf32>)
// CHECK:         attn.attention {scale = 2.500000e-01 : f32} ins(%[[Q]], %[[K]], %[[V]] : tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
// CHECK-NOT:     linalg.generic
#map = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d4)>
#map1 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map3 = affine_map<(d0, d1) -> (d0, d1)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map5 = affine_map<(d0, d1, d2, d3) -> ()>
#map6 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @gqa_repeat_kv(%arg0: tensor<1x4x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x4x8x16xf32> {
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i8 = arith.constant 0 : i8
    %true = arith.constant true
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant 2.500000e-01 : f32
    %cst_3 = arith.constant dense_resource<torch_tensor_8_8_torch.uint8> : tensor<8x8xi8>
    %0 = tensor.empty() : tensor<1x2x2x8x16xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x2x8x16xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<1x2x2x8x16xf32>
    %collapsed = tensor.collapse_shape %1 [[0], [1, 2], [3], [4]] : tensor<1x2x2x8x16xf32> into tensor<1x4x8x16xf32>
    %2 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%arg2 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x2x8x16xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<1x2x2x8x16xf32>
    %3 = tensor.empty() : tensor<1x4x16x8xf32>
    %transposed = linalg.transpose ins(%collapsed : tensor<1x4x8x16xf32>) outs(%3 : tensor<1x4x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed_4 = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x4x8x16xf32> into tensor<4x8x16xf32>
    %collapsed_5 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x4x16x8xf32> into tensor<4x16x8xf32>
    %4 = tensor.empty() : tensor<4x8x8xf32>
    %5 = linalg.fill ins(%cst : f32) outs(%4 : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
    %6 = linalg.batch_matmul ins(%collapsed_4, %collapsed_5 : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%5 : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
    %expanded = tensor.expand_shape %6 [[0, 1], [2], [3]] output_shape [1, 4, 8, 8] : tensor<4x8x8xf32> into tensor<1x4x8x8xf32>
    %7 = tensor.empty() : tensor<1x4x8x8xf32>
    %8 = linalg.generic {indexing_maps = [#map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<1x4x8x8xf32>) outs(%7 : tensor<1x4x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %27 = arith.mulf %in, %cst_2 : f32
      linalg.yield %27 : f32
    } -> tensor<1x4x8x8xf32>
    %9 = tensor.empty() : tensor<8x8xi1>
    %10 = linalg.generic {indexing_maps = [#map3, #map3], iterator_types = ["parallel", "parallel"]} ins(%cst_3 : tensor<8x8xi8>) outs(%9 : tensor<8x8xi1>) {
    ^bb0(%in: i8, %out: i1):
      %27 = arith.cmpi ne, %in, %c0_i8 : i8
      linalg.yield %27 : i1
    } -> tensor<8x8xi1>
    %11 = linalg.generic {indexing_maps = [#map3, #map3], iterator_types = ["parallel", "parallel"]} ins(%10 : tensor<8x8xi1>) outs(%9 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %27 = arith.xori %in, %true : i1
      linalg.yield %27 : i1
    } -> tensor<8x8xi1>
    %12 = linalg.generic {indexing_maps = [#map4, #map5, #map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%11, %cst_1, %8 : tensor<8x8xi1>, tensor<f32>, tensor<1x4x8x8xf32>) outs(%7 : tensor<1x4x8x8xf32>) {
    ^bb0(%in: i1, %in_10: f32, %in_11: f32, %out: f32):
      %27 = arith.select %in, %in_10, %in_11 : f32
      linalg.yield %27 : f32
    } -> tensor<1x4x8x8xf32>
    %13 = tensor.empty() : tensor<1x4x8xi64>
    %14 = linalg.fill ins(%c0_i64 : i64) outs(%13 : tensor<1x4x8xi64>) -> tensor<1x4x8xi64>
    %15 = tensor.empty() : tensor<1x4x8xf32>
    %16 = linalg.fill ins(%cst_0 : f32) outs(%15 : tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %17:2 = linalg.generic {indexing_maps = [#map2, #map6, #map6], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%12 : tensor<1x4x8x8xf32>) outs(%16, %14 : tensor<1x4x8xf32>, tensor<1x4x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_10: i64):
      %27 = linalg.index 3 : index
      %28 = arith.index_cast %27 : index to i64
      %29 = arith.maximumf %in, %out : f32
      %30 = arith.cmpf ogt, %in, %out : f32
      %31 = arith.select %30, %28, %out_10 : i64
      linalg.yield %29, %31 : f32, i64
    } -> (tensor<1x4x8xf32>, tensor<1x4x8xi64>)
    %expanded_6 = tensor.expand_shape %17#0 [[0], [1], [2, 3]] output_shape [1, 4, 8, 1] : tensor<1x4x8xf32> into tensor<1x4x8x1xf32>
    %18 = linalg.generic {indexing_maps = [#map2, #map7, #map2], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%12, %expanded_6 : tensor<1x4x8x8xf32>, tensor<1x4x8x1xf32>) outs(%7 : tensor<1x4x8x8xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %27 = arith.subf %in, %in_10 : f32
      linalg.yield %27 : f32
    } -> tensor<1x4x8x8xf32>
    %19 = linalg.generic {indexing_maps = [#map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%18 : tensor<1x4x8x8xf32>) outs(%7 : tensor<1x4x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %27 = math.exp %in : f32
      linalg.yield %27 : f32
    } -> tensor<1x4x8x8xf32>
    %20 = tensor.empty() : tensor<1x4x8x1xf32>
    %21 = linalg.fill ins(%cst : f32) outs(%20 : tensor<1x4x8x1xf32>) -> tensor<1x4x8x1xf32>
    %22 = linalg.generic {indexing_maps = [#map2, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%19 : tensor<1x4x8x8xf32>) outs(%21 : tensor<1x4x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %27 = arith.addf %in, %out : f32
      linalg.yield %27 : f32
    } -> tensor<1x4x8x1xf32>
    %23 = linalg.generic {indexing_maps = [#map2, #map7, #map2], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%19, %22 : tensor<1x4x8x8xf32>, tensor<1x4x8x1xf32>) outs(%7 : tensor<1x4x8x8xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %27 = arith.divf %in, %in_10 : f32
      linalg.yield %27 : f32
    } -> tensor<1x4x8x8xf32>
    %collapsed_7 = tensor.collapse_shape %23 [[0, 1], [2], [3]] : tensor<1x4x8x8xf32> into tensor<4x8x8xf32>
    %collapsed_8 = tensor.collapse_shape %2 [[0, 1, 2], [3], [4]] : tensor<1x2x2x8x16xf32> into tensor<4x8x16xf32>
    %24 = tensor.empty() : tensor<4x8x16xf32>
    %25 = linalg.fill ins(%cst : f32) outs(%24 : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
    %26 = linalg.batch_matmul ins(%collapsed_7, %collapsed_8 : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%25 : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
    %expanded_9 = tensor.expand_shape %26 [[0, 1], [2], [3]] output_shape [1, 4, 8, 16] : tensor<4x8x16xf32> into tensor<1x4x8x16xf32>
    return %expanded_9 : tensor<1x4x8x16xf32>
  }
}

{-#
  dialect_resources: {
    builtin: {
      torch_tensor_8_8_torch.uint8: "0x0100000001010000010101010101010100000001010100000101010101010100000101010100000000010101010001000000010101010101010101000100000001010001"
    }
  }
#-}

// -----

// MODE sdpa_causal: F.scaled_dot_product_attention(is_causal=True) as
// torch-mlir decomposes it: sqrt(scale) on Q and on K^T, causal as an
// additive select(keep, 0, -inf) tensor, rows with no visible key zeroed.
// CHECK-LABEL: func.func @sdpa_is_causal
// CHECK-SAME:    (%[[Q:.+]]: tensor<1x2x8x16xf32>, %[[K:.+]]: tensor<1x2x8x16xf32>, %[[V:.+]]: tensor<1x2x8x16xf32>)
// CHECK:         attn.attention {mask_kind = #attn.causal, scale = 2.500000e-01 : f32} ins(%[[Q]], %[[K]], %[[V]] : {{.+}})
// CHECK-NOT:     linalg.
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0) -> (d0)>
#map2 = affine_map<(d0, d1) -> (0, d1)>
#map3 = affine_map<(d0, d1) -> (d0, 0)>
#map4 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1) -> ()>
#map6 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map8 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @sdpa_is_causal(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %cst_1 = arith.constant dense<0.000000e+00> : tensor<1x2x8x8xf32>
    %cst_2 = arith.constant dense<0.000000e+00> : tensor<f32>
    %cst_3 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_4 = arith.constant dense<true> : tensor<8x8xi1>
    %cst_5 = arith.constant 0xFFF0000000000000 : f64
    %cst_6 = arith.constant 5.000000e-01 : f32
    %0 = tensor.empty() : tensor<1x2x8x16xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x8x16xf32>) {
    ^bb0(%in: f32, %out: f32):
      %38 = arith.mulf %in, %cst_6 : f32
      linalg.yield %38 : f32
    } -> tensor<1x2x8x16xf32>
    %2 = tensor.empty() : tensor<8xi64>
    %3 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%2 : tensor<8xi64>) {
    ^bb0(%out: i64):
      %38 = linalg.index 0 : index
      %39 = arith.index_cast %38 : index to i64
      linalg.yield %39 : i64
    } -> tensor<8xi64>
    %expanded = tensor.expand_shape %3 [[0, 1]] output_shape [1, 8] : tensor<8xi64> into tensor<1x8xi64>
    %expanded_7 = tensor.expand_shape %3 [[0, 1]] output_shape [8, 1] : tensor<8xi64> into tensor<8x1xi64>
    %4 = tensor.empty() : tensor<8x8xi64>
    %5 = linalg.generic {indexing_maps = [#map2, #map3, #map4], iterator_types = ["parallel", "parallel"]} ins(%expanded, %expanded_7 : tensor<1x8xi64>, tensor<8x1xi64>) outs(%4 : tensor<8x8xi64>) {
    ^bb0(%in: i64, %in_14: i64, %out: i64):
      %38 = arith.subi %in, %in_14 : i64
      linalg.yield %38 : i64
    } -> tensor<8x8xi64>
    %6 = tensor.empty() : tensor<8x8xi1>
    %7 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%5 : tensor<8x8xi64>) outs(%6 : tensor<8x8xi1>) {
    ^bb0(%in: i64, %out: i1):
      %38 = arith.cmpi sle, %in, %c0_i64 : i64
      linalg.yield %38 : i1
    } -> tensor<8x8xi1>
    %8 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%7, %cst_4 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%6 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_14: i1, %out: i1):
      %38 = arith.andi %in, %in_14 : i1
      linalg.yield %38 : i1
    } -> tensor<8x8xi1>
    %9 = tensor.empty() : tensor<8x8xf32>
    %10 = linalg.generic {indexing_maps = [#map4, #map5, #map5, #map4], iterator_types = ["parallel", "parallel"]} ins(%8, %cst_2, %cst_3 : tensor<8x8xi1>, tensor<f32>, tensor<f32>) outs(%9 : tensor<8x8xf32>) {
    ^bb0(%in: i1, %in_14: f32, %in_15: f32, %out: f32):
      %38 = arith.select %in, %in_14, %in_15 : f32
      linalg.yield %38 : f32
    } -> tensor<8x8xf32>
    %11 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%11 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %12 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%transposed : tensor<1x2x16x8xf32>) outs(%11 : tensor<1x2x16x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %38 = arith.mulf %in, %cst_6 : f32
      linalg.yield %38 : f32
    } -> tensor<1x2x16x8xf32>
    %collapsed = tensor.collapse_shape %1 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_8 = tensor.collapse_shape %12 [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %13 = tensor.empty() : tensor<2x8x8xf32>
    %14 = linalg.fill ins(%cst : f32) outs(%13 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %15 = linalg.batch_matmul ins(%collapsed, %collapsed_8 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%14 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded_9 = tensor.expand_shape %15 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %16 = tensor.empty() : tensor<1x2x8x8xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map6, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded_9, %10 : tensor<1x2x8x8xf32>, tensor<8x8xf32>) outs(%16 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_14: f32, %out: f32):
      %38 = arith.addf %in, %in_14 : f32
      linalg.yield %38 : f32
    } -> tensor<1x2x8x8xf32>
    %18 = tensor.empty() : tensor<1x2x8xi64>
    %19 = linalg.fill ins(%c0_i64 : i64) outs(%18 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %20 = tensor.empty() : tensor<1x2x8xf32>
    %21 = linalg.fill ins(%cst_0 : f32) outs(%20 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %22:2 = linalg.generic {indexing_maps = [#map, #map7, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%17 : tensor<1x2x8x8xf32>) outs(%21, %19 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_14: i64):
      %38 = linalg.index 3 : index
      %39 = arith.index_cast %38 : index to i64
      %40 = arith.maximumf %in, %out : f32
      %41 = arith.cmpf ogt, %in, %out : f32
      %42 = arith.select %41, %39, %out_14 : i64
      linalg.yield %40, %42 : f32, i64
    } -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_10 = tensor.expand_shape %22#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %23 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17, %expanded_10 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%16 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_14: f32, %out: f32):
      %38 = arith.subf %in, %in_14 : f32
      linalg.yield %38 : f32
    } -> tensor<1x2x8x8xf32>
    %24 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%23 : tensor<1x2x8x8xf32>) outs(%16 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %38 = math.exp %in : f32
      linalg.yield %38 : f32
    } -> tensor<1x2x8x8xf32>
    %25 = tensor.empty() : tensor<1x2x8x1xf32>
    %26 = linalg.fill ins(%cst : f32) outs(%25 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %27 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%24 : tensor<1x2x8x8xf32>) outs(%26 : tensor<1x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %38 = arith.addf %in, %out : f32
      linalg.yield %38 : f32
    } -> tensor<1x2x8x1xf32>
    %28 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%24, %27 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%16 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_14: f32, %out: f32):
      %38 = arith.divf %in, %in_14 : f32
      linalg.yield %38 : f32
    } -> tensor<1x2x8x8xf32>
    %29 = tensor.empty() : tensor<1x2x8x8xi1>
    %30 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17 : tensor<1x2x8x8xf32>) outs(%29 : tensor<1x2x8x8xi1>) {
    ^bb0(%in: f32, %out: i1):
      %38 = arith.extf %in : f32 to f64
      %39 = arith.cmpf oeq, %38, %cst_5 : f64
      linalg.yield %39 : i1
    } -> tensor<1x2x8x8xi1>
    %31 = tensor.empty() : tensor<1x2x8x1xi1>
    %32 = linalg.fill ins(%true : i1) outs(%31 : tensor<1x2x8x1xi1>) -> tensor<1x2x8x1xi1>
    %33 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%30 : tensor<1x2x8x8xi1>) outs(%32 : tensor<1x2x8x1xi1>) {
    ^bb0(%in: i1, %out: i1):
      %38 = arith.andi %in, %out : i1
      linalg.yield %38 : i1
    } -> tensor<1x2x8x1xi1>
    %34 = linalg.generic {indexing_maps = [#map8, #map, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%33, %cst_1, %28 : tensor<1x2x8x1xi1>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) outs(%16 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: i1, %in_14: f32, %in_15: f32, %out: f32):
      %38 = arith.select %in, %in_14, %in_15 : f32
      linalg.yield %38 : f32
    } -> tensor<1x2x8x8xf32>
    %collapsed_11 = tensor.collapse_shape %34 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_12 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %35 = tensor.empty() : tensor<2x8x16xf32>
    %36 = linalg.fill ins(%cst : f32) outs(%35 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %37 = linalg.batch_matmul ins(%collapsed_11, %collapsed_12 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%36 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_13 = tensor.expand_shape %37 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_13 : tensor<1x2x8x16xf32>
  }
}

// -----

// MODE sdpa_mask: a boolean attn_mask argument, which the decomposition
// turns into an additive 0 / -inf tensor: the bias operand.
// CHECK-LABEL: func.func @sdpa_attn_mask
// CHECK:         attn.attention {scale = 2.500000e-01 : f32} ins({{.+}}) bias(%{{.+}} : tensor<1x1x8x8xf32>)
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> ()>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, 0, d2, d3)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @sdpa_attn_mask(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>, %arg3: tensor<1x1x8x8xi1>) -> tensor<1x2x8x16xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %cst_1 = arith.constant dense<0.000000e+00> : tensor<1x2x8x8xf32>
    %cst_2 = arith.constant 0xFFF0000000000000 : f64
    %cst_3 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_4 = arith.constant dense<0.000000e+00> : tensor<f32>
    %cst_5 = arith.constant 5.000000e-01 : f32
    %0 = tensor.empty() : tensor<1x1x8x8xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map1, #map1, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg3, %cst_4, %cst_3 : tensor<1x1x8x8xi1>, tensor<f32>, tensor<f32>) outs(%0 : tensor<1x1x8x8xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %31 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %31 : f32
    } -> tensor<1x1x8x8xf32>
    %2 = tensor.empty() : tensor<1x2x8x16xf32>
    %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<1x2x8x16xf32>) outs(%2 : tensor<1x2x8x16xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.mulf %in, %cst_5 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x8x16xf32>
    %4 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%4 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%transposed : tensor<1x2x16x8xf32>) outs(%4 : tensor<1x2x16x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.mulf %in, %cst_5 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x16x8xf32>
    %collapsed = tensor.collapse_shape %3 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_6 = tensor.collapse_shape %5 [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %6 = tensor.empty() : tensor<2x8x8xf32>
    %7 = linalg.fill ins(%cst : f32) outs(%6 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %8 = linalg.batch_matmul ins(%collapsed, %collapsed_6 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%7 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded = tensor.expand_shape %8 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %9 = tensor.empty() : tensor<1x2x8x8xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded, %1 : tensor<1x2x8x8xf32>, tensor<1x1x8x8xf32>) outs(%9 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.addf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x8x8xf32>
    %11 = tensor.empty() : tensor<1x2x8xi64>
    %12 = linalg.fill ins(%c0_i64 : i64) outs(%11 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %13 = tensor.empty() : tensor<1x2x8xf32>
    %14 = linalg.fill ins(%cst_0 : f32) outs(%13 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %15:2 = linalg.generic {indexing_maps = [#map, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%10 : tensor<1x2x8x8xf32>) outs(%14, %12 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_11: i64):
      %31 = linalg.index 3 : index
      %32 = arith.index_cast %31 : index to i64
      %33 = arith.maximumf %in, %out : f32
      %34 = arith.cmpf ogt, %in, %out : f32
      %35 = arith.select %34, %32, %out_11 : i64
      linalg.yield %33, %35 : f32, i64
    } -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_7 = tensor.expand_shape %15#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10, %expanded_7 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%9 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.subf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x8x8xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16 : tensor<1x2x8x8xf32>) outs(%9 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = math.exp %in : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x8x8xf32>
    %18 = tensor.empty() : tensor<1x2x8x1xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%17 : tensor<1x2x8x8xf32>) outs(%19 : tensor<1x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.addf %in, %out : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x8x1xf32>
    %21 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17, %20 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%9 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.divf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x8x8xf32>
    %22 = tensor.empty() : tensor<1x2x8x8xi1>
    %23 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10 : tensor<1x2x8x8xf32>) outs(%22 : tensor<1x2x8x8xi1>) {
    ^bb0(%in: f32, %out: i1):
      %31 = arith.extf %in : f32 to f64
      %32 = arith.cmpf oeq, %31, %cst_2 : f64
      linalg.yield %32 : i1
    } -> tensor<1x2x8x8xi1>
    %24 = tensor.empty() : tensor<1x2x8x1xi1>
    %25 = linalg.fill ins(%true : i1) outs(%24 : tensor<1x2x8x1xi1>) -> tensor<1x2x8x1xi1>
    %26 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%23 : tensor<1x2x8x8xi1>) outs(%25 : tensor<1x2x8x1xi1>) {
    ^bb0(%in: i1, %out: i1):
      %31 = arith.andi %in, %out : i1
      linalg.yield %31 : i1
    } -> tensor<1x2x8x1xi1>
    %27 = linalg.generic {indexing_maps = [#map4, #map, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%26, %cst_1, %21 : tensor<1x2x8x1xi1>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) outs(%9 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %31 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %31 : f32
    } -> tensor<1x2x8x8xf32>
    %collapsed_8 = tensor.collapse_shape %27 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_9 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %28 = tensor.empty() : tensor<2x8x16xf32>
    %29 = linalg.fill ins(%cst : f32) outs(%28 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %30 = linalg.batch_matmul ins(%collapsed_8, %collapsed_9 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%29 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_10 = tensor.expand_shape %30 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_10 : tensor<1x2x8x16xf32>
  }
}

// -----

// MODE window_lr: tril(diagonal=1) & triu(diagonal=-2): a window of 2 keys
// to the left and 1 to the right.
// CHECK-LABEL: func.func @window_left_and_right
// CHECK:         attn.attention {mask_kind = #attn.sliding_window<left = 2, right = 1>, scale = 2.500000e-01 : f32}
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0) -> (d0)>
#map2 = affine_map<(d0, d1) -> (0, d1)>
#map3 = affine_map<(d0, d1) -> (d0, 0)>
#map4 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map6 = affine_map<(d0, d1, d2, d3) -> ()>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map8 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @window_left_and_right(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
    %c-2_i64 = arith.constant -2 : i64
    %c0_i64 = arith.constant 0 : i64
    %c1_i64 = arith.constant 1 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %true = arith.constant true
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant dense<true> : tensor<8x8xi1>
    %cst_3 = arith.constant 2.500000e-01 : f32
    %0 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_4 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %1 = tensor.empty() : tensor<2x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%2 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %4 = tensor.empty() : tensor<1x2x8x8xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %32 = arith.mulf %in, %cst_3 : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %6 = tensor.empty() : tensor<8xi64>
    %7 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%6 : tensor<8xi64>) {
    ^bb0(%out: i64):
      %32 = linalg.index 0 : index
      %33 = arith.index_cast %32 : index to i64
      linalg.yield %33 : i64
    } -> tensor<8xi64>
    %expanded_5 = tensor.expand_shape %7 [[0, 1]] output_shape [1, 8] : tensor<8xi64> into tensor<1x8xi64>
    %expanded_6 = tensor.expand_shape %7 [[0, 1]] output_shape [8, 1] : tensor<8xi64> into tensor<8x1xi64>
    %8 = tensor.empty() : tensor<8x8xi64>
    %9 = linalg.generic {indexing_maps = [#map2, #map3, #map4], iterator_types = ["parallel", "parallel"]} ins(%expanded_5, %expanded_6 : tensor<1x8xi64>, tensor<8x1xi64>) outs(%8 : tensor<8x8xi64>) {
    ^bb0(%in: i64, %in_11: i64, %out: i64):
      %32 = arith.subi %in, %in_11 : i64
      linalg.yield %32 : i64
    } -> tensor<8x8xi64>
    %10 = tensor.empty() : tensor<8x8xi1>
    %11 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%9 : tensor<8x8xi64>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i64, %out: i1):
      %32 = arith.cmpi sle, %in, %c1_i64 : i64
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %12 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%11, %cst_2 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %32 = arith.andi %in, %in_11 : i1
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %13 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%9 : tensor<8x8xi64>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i64, %out: i1):
      %32 = arith.cmpi sge, %in, %c-2_i64 : i64
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %14 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%13, %cst_2 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %32 = arith.andi %in, %in_11 : i1
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %15 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%12, %14 : tensor<8x8xi1>, tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %in_11: i1, %out: i1):
      %32 = arith.andi %in, %in_11 : i1
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %16 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%15 : tensor<8x8xi1>) outs(%10 : tensor<8x8xi1>) {
    ^bb0(%in: i1, %out: i1):
      %32 = arith.xori %in, %true : i1
      linalg.yield %32 : i1
    } -> tensor<8x8xi1>
    %17 = linalg.generic {indexing_maps = [#map5, #map6, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16, %cst_1, %5 : tensor<8x8xi1>, tensor<f32>, tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %32 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %18 = tensor.empty() : tensor<1x2x8xi64>
    %19 = linalg.fill ins(%c0_i64 : i64) outs(%18 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %20 = tensor.empty() : tensor<1x2x8xf32>
    %21 = linalg.fill ins(%cst_0 : f32) outs(%20 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %22:2 = linalg.generic {indexing_maps = [#map, #map7, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%17 : tensor<1x2x8x8xf32>) outs(%21, %19 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {
    ^bb0(%in: f32, %out: f32, %out_11: i64):
      %32 = linalg.index 3 : index
      %33 = arith.index_cast %32 : index to i64
      %34 = arith.maximumf %in, %out : f32
      %35 = arith.cmpf ogt, %in, %out : f32
      %36 = arith.select %35, %33, %out_11 : i64
      linalg.yield %34, %36 : f32, i64
    } -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_7 = tensor.expand_shape %22#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %23 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17, %expanded_7 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %32 = arith.subf %in, %in_11 : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %24 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%23 : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %32 = math.exp %in : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %25 = tensor.empty() : tensor<1x2x8x1xf32>
    %26 = linalg.fill ins(%cst : f32) outs(%25 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %27 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%24 : tensor<1x2x8x8xf32>) outs(%26 : tensor<1x2x8x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %32 = arith.addf %in, %out : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x1xf32>
    %28 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%24, %27 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %32 = arith.divf %in, %in_11 : f32
      linalg.yield %32 : f32
    } -> tensor<1x2x8x8xf32>
    %collapsed_8 = tensor.collapse_shape %28 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_9 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %29 = tensor.empty() : tensor<2x8x16xf32>
    %30 = linalg.fill ins(%cst : f32) outs(%29 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %31 = linalg.batch_matmul ins(%collapsed_8, %collapsed_9 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%30 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_10 = tensor.expand_shape %31 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_10 : tensor<1x2x8x16xf32>
  }
}
