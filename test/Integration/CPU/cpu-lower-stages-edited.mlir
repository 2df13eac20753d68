// attn-cpu-plan-stages and attn-cpu-lower-stages take a stage for a
// microkernel only when its iterator types, indexing maps and whole body are
// those of the kernel's function; the tags are hints. A stage whose body was
// edited (here: an extra multiply in the score contraction, a sum where the
// row max was) is left to the loop lowering and computes what its body says;
// the unedited stages beside them take the microkernels and compute the same
// as the loops would. A stage whose structure matches but whose shapes a
// microkernel cannot take (12 query rows: no remainder code for 16 lanes)
// is left to loops too (an earlier lowering wrote zeros there). The fill of
// a contraction's output is folded into the microkernel because, on
// tensors, the contraction is its only reader; the row max here starts from
// its operand's values (no fill to fold). The remarks name the lowering each
// stage took.
// RUN: attn-opt %s --attn-cpu-plan-stages --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --attn-cpu-lower-stages=remarks=1 -o /dev/null 2>&1 | FileCheck %s --check-prefix=REMARK
// RUN: attn-opt %s --attn-cpu-plan-stages --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --attn-cpu-lower-stages --convert-linalg-to-loops --convert-vector-to-scf --convert-scf-to-cf --convert-vector-to-llvm --convert-to-llvm --reconcile-unrealized-casts | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils -shared-libs=%mlir_c_runner_utils | FileCheck %s

// REMARK: remark: stage 'scores': score contraction, queries on the lanes (FMA)
// REMARK: remark: stage 'scores': left to loops: body is not acc + a * b
// REMARK: remark: stage 'scores': left to loops: the query rows are not a whole number of vectors
// REMARK: remark: stage 'max': row max, keys on the lanes
// REMARK: remark: stage 'max': left to loops: body is not the running max s > m ? s : m

#kd = affine_map<(j, m, d) -> (j, d)>
#dm = affine_map<(j, m, d) -> (d, m)>
#jm = affine_map<(j, m, d) -> (j, m)>
#row = affine_map<(m, j) -> (m, j)>
#rowout = affine_map<(m, j) -> (m)>

// S[j][m] = sum_d K[j][d] QT[d][m]: K rows 1 2 / 3 4 / 5 6 / 7 8 against
// QT columns (1, 0.5) give 2, 5, 8, 11.
func.func @scores(%k: tensor<4x2xf32>, %qt: tensor<2x16xf32>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %s = linalg.generic {indexing_maps = [#kd, #dm, #jm], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%k, %qt : tensor<4x2xf32>, tensor<2x16xf32>) outs(%f : tensor<4x16xf32>)
      attrs = {attn.cpu_stage = "scores", attn.cpu_scheme = "fma"} {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<4x16xf32>
  return %s : tensor<4x16xf32>
}

// The same stage with its product doubled: 4, 10, 16, 22.
func.func @scores_edited(%k: tensor<4x2xf32>, %qt: tensor<2x16xf32>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %s = linalg.generic {indexing_maps = [#kd, #dm, #jm], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%k, %qt : tensor<4x2xf32>, tensor<2x16xf32>) outs(%f : tensor<4x16xf32>)
      attrs = {attn.cpu_stage = "scores", attn.cpu_scheme = "fma"} {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %two = arith.constant 2.0 : f32
    %p = arith.mulf %a, %b : f32
    %p2 = arith.mulf %p, %two : f32
    %r = arith.addf %acc, %p2 : f32
    linalg.yield %r : f32
  } -> tensor<4x16xf32>
  return %s : tensor<4x16xf32>
}

// The unedited contraction over 12 query rows, not a whole number of
// 16-lane vectors: the microkernel has no remainder code, so it is left to
// loops (2, 5, 8, 11 again).
func.func @scores_12_rows(%k: tensor<4x2xf32>, %qt: tensor<2x12xf32>) -> tensor<4x12xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x12xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x12xf32>) -> tensor<4x12xf32>
  %s = linalg.generic {indexing_maps = [#kd, #dm, #jm], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%k, %qt : tensor<4x2xf32>, tensor<2x12xf32>) outs(%f : tensor<4x12xf32>)
      attrs = {attn.cpu_stage = "scores", attn.cpu_scheme = "fma"} {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<4x12xf32>
  return %s : tensor<4x12xf32>
}

// Row max of [1..16] and [-1..-16] from 0: 16 and 0.
func.func @row_max(%st: tensor<2x16xf32>, %mx: tensor<2xf32>) -> tensor<2xf32> {
  %r = linalg.generic {indexing_maps = [#row, #rowout], iterator_types = ["parallel", "reduction"]}
      ins(%st : tensor<2x16xf32>) outs(%mx : tensor<2xf32>)
      attrs = {attn.cpu_stage = "max", attn.cpu_layout = "key_lanes"} {
  ^bb0(%s: f32, %m: f32):
    %gt = arith.cmpf ogt, %s, %m : f32
    %y = arith.select %gt, %s, %m : f32
    linalg.yield %y : f32
  } -> tensor<2xf32>
  return %r : tensor<2xf32>
}

// The same stage reducing with a sum: 136 and -136.
func.func @row_max_edited(%st: tensor<2x16xf32>, %mx: tensor<2xf32>) -> tensor<2xf32> {
  %r = linalg.generic {indexing_maps = [#row, #rowout], iterator_types = ["parallel", "reduction"]}
      ins(%st : tensor<2x16xf32>) outs(%mx : tensor<2xf32>)
      attrs = {attn.cpu_stage = "max", attn.cpu_layout = "key_lanes"} {
  ^bb0(%s: f32, %m: f32):
    %y = arith.addf %s, %m : f32
    linalg.yield %y : f32
  } -> tensor<2xf32>
  return %r : tensor<2xf32>
}

/// Prints column 5 of rows 0..3.
func.func @print_column(%s: tensor<4x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c5 = arith.constant 5 : index
  scf.for %j = %c0 to %c4 step %c1 {
    %x = tensor.extract %s[%j, %c5] : tensor<4x16xf32>
    vector.print %x : f32
  }
  return
}

func.func @print_column_12(%s: tensor<4x12xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c5 = arith.constant 5 : index
  scf.for %j = %c0 to %c4 step %c1 {
    %x = tensor.extract %s[%j, %c5] : tensor<4x12xf32>
    vector.print %x : f32
  }
  return
}

func.func @print_rows(%mx: tensor<2xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %a = tensor.extract %mx[%c0] : tensor<2xf32>
  %b = tensor.extract %mx[%c1] : tensor<2xf32>
  vector.print %a : f32
  vector.print %b : f32
  return
}

func.func @main() {
  %k = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]> : tensor<4x2xf32>
  %qt = arith.constant dense<[
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]> : tensor<2x16xf32>
  %qt12 = arith.constant dense<[
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]> : tensor<2x12xf32>
  %st = arith.constant dense<[
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0],
    [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0, -10.0, -11.0, -12.0, -13.0, -14.0, -15.0, -16.0]]> : tensor<2x16xf32>
  %mx0 = arith.constant dense<0.0> : tensor<2xf32>

  // CHECK: 2
  // CHECK-NEXT: 5
  // CHECK-NEXT: 8
  // CHECK-NEXT: 11
  %s = call @scores(%k, %qt) : (tensor<4x2xf32>, tensor<2x16xf32>) -> tensor<4x16xf32>
  call @print_column(%s) : (tensor<4x16xf32>) -> ()
  // CHECK-NEXT: 4
  // CHECK-NEXT: 10
  // CHECK-NEXT: 16
  // CHECK-NEXT: 22
  %s2 = call @scores_edited(%k, %qt) : (tensor<4x2xf32>, tensor<2x16xf32>) -> tensor<4x16xf32>
  call @print_column(%s2) : (tensor<4x16xf32>) -> ()
  // CHECK-NEXT: 2
  // CHECK-NEXT: 5
  // CHECK-NEXT: 8
  // CHECK-NEXT: 11
  %s12 = call @scores_12_rows(%k, %qt12) : (tensor<4x2xf32>, tensor<2x12xf32>) -> tensor<4x12xf32>
  call @print_column_12(%s12) : (tensor<4x12xf32>) -> ()

  // CHECK-NEXT: 16
  // CHECK-NEXT: 0
  %mx = call @row_max(%st, %mx0) : (tensor<2x16xf32>, tensor<2xf32>) -> tensor<2xf32>
  call @print_rows(%mx) : (tensor<2xf32>) -> ()
  // CHECK-NEXT: 136
  // CHECK-NEXT: -136
  %mx2 = call @row_max_edited(%st, %mx0) : (tensor<2x16xf32>, tensor<2xf32>) -> tensor<2xf32>
  call @print_rows(%mx2) : (tensor<2xf32>) -> ()
  return
}
