// RUN: attn-opt %s -split-input-file --attn-memref-kernel-interface -verify-diagnostics

// expected-error @+1 {{'func.func' op is called within the module: the kernel interface would change the signature its callers use}}
func.func @callee(%a: tensor<4xf32>) -> tensor<4xf32> {
  %s = arith.addf %a, %a : tensor<4xf32>
  return %s : tensor<4xf32>
}
func.func private @caller(%a: tensor<4xf32>) -> tensor<4xf32> {
  %r = func.call @callee(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

// expected-error @+1 {{'func.func' op argument #0: the kernel interface needs a ranked tensor, got 'tensor<*xf32>'}}
func.func @unranked(%a: tensor<*xf32>) {
  return
}

// -----

// expected-error @+1 {{'func.func' op result #0: the kernel interface needs a ranked tensor, got 'tensor<*xf32>'}}
func.func @unranked_result(%a: tensor<4xf32>) -> tensor<*xf32> {
  %c = tensor.cast %a : tensor<4xf32> to tensor<*xf32>
  return %c : tensor<*xf32>
}

// -----

func.func @returns_input(%a: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'func.return' op returns function argument #0: the kernel output would alias an input}}
  return %a : tensor<4xf32>
}
