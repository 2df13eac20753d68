// RUN: attn-opt %s -split-input-file --attn-cpu-distribute-workgroups --cse | FileCheck %s

// A kernel entry: the workgroup forall becomes a loop over [begin, end),
// each id delinearised into (batch, head, query-block), x fastest.
// CHECK-LABEL: func.func @entry
// CHECK-SAME:    %[[OUT:[a-zA-Z0-9]+]]: tensor<2x3x64xf32>, %[[BEGIN:[a-zA-Z0-9]+]]: index {attn.workgroup_begin}, %[[END:[a-zA-Z0-9]+]]: index {attn.workgroup_end}
// CHECK:         %[[R:.+]] = scf.for %[[WG:.+]] = %[[BEGIN]] to %[[END]] step %c1 iter_args(%[[ACC:.+]] = %[[OUT]])
// CHECK:           %[[IDS:.+]]:3 = affine.delinearize_index %[[WG]] into (2, 3, 4)
// CHECK:           %[[ROW:.+]] = arith.muli %[[IDS]]#2, %c16
// CHECK:           %[[T:.+]] = tensor.extract_slice %[[ACC]][%[[IDS]]#0, %[[IDS]]#1, %[[ROW]]] [1, 1, 16]
// CHECK:           %[[U:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%[[T]] : tensor<1x1x16xf32>)
// CHECK:           %[[INS:.+]] = tensor.insert_slice %[[U]] into %[[ACC]][%[[IDS]]#0, %[[IDS]]#1, %[[ROW]]] [1, 1, 16]
// CHECK:           scf.yield %[[INS]]
// CHECK:         return %[[R]]
func.func @entry(%out: tensor<2x3x64xf32>, %begin: index {attn.workgroup_begin},
                 %end: index {attn.workgroup_end}) -> tensor<2x3x64xf32> {
  %c16 = arith.constant 16 : index
  %one = arith.constant 1.0 : f32
  %r = scf.forall (%b, %h, %q) in (2, 3, 4) shared_outs(%o = %out) -> (tensor<2x3x64xf32>) {
    %row = arith.muli %q, %c16 : index
    %t = tensor.extract_slice %o[%b, %h, %row] [1, 1, 16] [1, 1, 1] : tensor<2x3x64xf32> to tensor<1x1x16xf32>
    %u = linalg.fill ins(%one : f32) outs(%t : tensor<1x1x16xf32>) -> tensor<1x1x16xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %u into %o[%b, %h, %row] [1, 1, 16] [1, 1, 1] : tensor<1x1x16xf32> into tensor<2x3x64xf32>
    }
  } {mapping = [#gpu.block<z>, #gpu.block<y>, #gpu.block<x>]}
  return %r : tensor<2x3x64xf32>
}

// -----

// Without a workgroup range: one loop over all 2 * 3 * 4 workgroups.
// CHECK-LABEL: func.func @whole
// CHECK:         scf.for %{{.+}} = %c0 to %c24 step %c1
// CHECK-NOT:     scf.forall
func.func @whole(%out: tensor<2x3x64xf32>) -> tensor<2x3x64xf32> {
  %c16 = arith.constant 16 : index
  %one = arith.constant 1.0 : f32
  %r = scf.forall (%b, %h, %q) in (2, 3, 4) shared_outs(%o = %out) -> (tensor<2x3x64xf32>) {
    %row = arith.muli %q, %c16 : index
    %t = tensor.extract_slice %o[%b, %h, %row] [1, 1, 16] [1, 1, 1] : tensor<2x3x64xf32> to tensor<1x1x16xf32>
    %u = linalg.fill ins(%one : f32) outs(%t : tensor<1x1x16xf32>) -> tensor<1x1x16xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %u into %o[%b, %h, %row] [1, 1, 16] [1, 1, 1] : tensor<1x1x16xf32> into tensor<2x3x64xf32>
    }
  } {mapping = [#gpu.block<z>, #gpu.block<y>, #gpu.block<x>]}
  return %r : tensor<2x3x64xf32>
}

// -----

// Foralls without workgroup mapping are left alone.
// CHECK-LABEL: func.func @unmapped
// CHECK:         scf.forall
func.func @unmapped(%out: tensor<4xf32>) -> tensor<4xf32> {
  %one = arith.constant 1.0 : f32
  %r = scf.forall (%i) in (4) shared_outs(%o = %out) -> (tensor<4xf32>) {
    %t = tensor.extract_slice %o[%i] [1] [1] : tensor<4xf32> to tensor<1xf32>
    %u = linalg.fill ins(%one : f32) outs(%t : tensor<1xf32>) -> tensor<1xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %u into %o[%i] [1] [1] : tensor<1xf32> into tensor<4xf32>
    }
  }
  return %r : tensor<4xf32>
}
