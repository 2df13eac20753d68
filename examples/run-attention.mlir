// A tensor-form attention kernel and a main that runs it, for mlir-runner:
// the LLVM dialect the CPU pipeline emits, executed by MLIR's JIT.
//
//   build/bin/attn-opt examples/run-attention.mlir --attn-cpu-pipeline |
//     mlir-runner-22 -e main -entry-point-result=void \
//       -shared-libs=/usr/lib/llvm-22/lib/libmlir_runner_utils.so
//
// prints the 1x1x4x4 output of causal attention on q = k = 0 (equal weights
// over the visible keys) and v[j] = j: row i is the mean of 0..i.
func.func @attention(%q: tensor<1x1x4x4xf32>, %k: tensor<1x1x4x4xf32>,
                     %v: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> {
  %o = tensor.empty() : tensor<1x1x4x4xf32>
  %out = attn.attention {mask_kind = #attn.causal}
      ins(%q, %k, %v : tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>,
                       tensor<1x1x4x4xf32>)
      outs(%o : tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
  return %out : tensor<1x1x4x4xf32>
}

func.func private @printMemrefF32(tensor<*xf32>)

func.func @main() {
  %zero = arith.constant dense<0.0> : tensor<1x1x4x4xf32>
  %v = arith.constant dense<[[[[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0],
                                [2.0, 2.0, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0]]]]>
      : tensor<1x1x4x4xf32>
  %out = call @attention(%zero, %zero, %v)
      : (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>)
      -> tensor<1x1x4x4xf32>
  %u = tensor.cast %out : tensor<1x1x4x4xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  return
}
