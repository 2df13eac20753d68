// RUN: attn-opt %s -split-input-file --attn-cpu-distribute-workgroups -verify-diagnostics

// expected-error @+1 {{needs both attn.workgroup_begin and attn.workgroup_end arguments}}
func.func @half(%begin: index {attn.workgroup_begin}) {
  return
}

// -----

// expected-error @+1 {{a kernel with a workgroup range must hold exactly one workgroup forall}}
func.func @two(%out: tensor<4xf32>, %begin: index {attn.workgroup_begin}, %end: index {attn.workgroup_end}) -> tensor<4xf32> {
  %one = arith.constant 1.0 : f32
  %a = scf.forall (%i) in (4) shared_outs(%o = %out) -> (tensor<4xf32>) {
    %t = tensor.extract_slice %o[%i] [1] [1] : tensor<4xf32> to tensor<1xf32>
    %u = linalg.fill ins(%one : f32) outs(%t : tensor<1xf32>) -> tensor<1xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %u into %o[%i] [1] [1] : tensor<1xf32> into tensor<4xf32>
    }
  } {mapping = [#gpu.block<x>]}
  %b = scf.forall (%i) in (4) shared_outs(%o = %a) -> (tensor<4xf32>) {
    %t = tensor.extract_slice %o[%i] [1] [1] : tensor<4xf32> to tensor<1xf32>
    %u = linalg.fill ins(%one : f32) outs(%t : tensor<1xf32>) -> tensor<1xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %u into %o[%i] [1] [1] : tensor<1xf32> into tensor<4xf32>
    }
  } {mapping = [#gpu.block<x>]}
  return %b : tensor<4xf32>
}

// -----

func.func @strided(%out: tensor<8xf32>) -> tensor<8xf32> {
  %one = arith.constant 1.0 : f32
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %c8 = arith.constant 8 : index
  // expected-error @+1 {{workgroup forall must have zero lower bounds and unit steps}}
  %a = scf.forall (%i) = (%c0) to (%c8) step (%c2) shared_outs(%o = %out) -> (tensor<8xf32>) {
    %t = tensor.extract_slice %o[%i] [2] [1] : tensor<8xf32> to tensor<2xf32>
    %u = linalg.fill ins(%one : f32) outs(%t : tensor<2xf32>) -> tensor<2xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %u into %o[%i] [2] [1] : tensor<2xf32> into tensor<8xf32>
    }
  } {mapping = [#gpu.block<x>]}
  return %a : tensor<8xf32>
}
