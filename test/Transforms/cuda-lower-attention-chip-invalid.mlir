// RUN: attn-opt %s --attn-cuda-lower-attention="chip=sm_75" -verify-diagnostics

// expected-error @+1 {{attn-cuda-lower-attention: unsupported chip 'sm_75' (expected sm_80 or sm_90)}}
func.func @f() {
  return
}
