// Causal attention (8 heads, 1024 queries and keys, head_dim 64) through the
// C++ runtime: parse a spec, get the kernel (JIT-compiled on a miss, cached
// by spec), run it on caller-owned buffers. Prints the kernel's compile time
// and one output value; exits 1 on any error. The README's C++ snippet is an
// excerpt of this file.
#include "attn/Runtime/Runtime.h"

#include "llvm/Support/Error.h"

#include <cstdio>
#include <vector>

int main() {
  const char *json = R"({"batch": 1, "q_heads": 8, "q_len": 1024,
                         "kv_len": 1024, "head_dim": 64,
                         "mask": {"kind": "causal"}})";
  std::vector<float> q(8 * 1024 * 64, 0.5f), k(q), v(q), out(q.size());
  attn::Runtime runtime;                                    // threads: all cores
  auto spec = attn::AttentionSpec::fromJSON(json);          // or fill the struct
  if (!spec) {
    std::fprintf(stderr, "%s\n", llvm::toString(spec.takeError()).c_str());
    return 1;
  }
  auto kernel = runtime.getKernel(*spec);                   // JIT on a miss, cached by spec
  if (!kernel) {
    std::fprintf(stderr, "%s\n", llvm::toString(kernel.takeError()).c_str());
    return 1;
  }
  attn::AttentionArgs args;
  args.query  = attn::TensorRef::contiguous(q.data(), attn::DType::F32, {1, 8, 1024, 64});
  args.key    = attn::TensorRef::contiguous(k.data(), attn::DType::F32, {1, 8, 1024, 64});
  args.value  = attn::TensorRef::contiguous(v.data(), attn::DType::F32, {1, 8, 1024, 64});
  args.output = attn::TensorRef::contiguous(out.data(), attn::DType::F32, {1, 8, 1024, 64});
  if (llvm::Error err = (*kernel)->run(args)) {             // validated before anything runs
    std::fprintf(stderr, "%s\n", llvm::toString(std::move(err)).c_str());
    return 1;
  }
  std::printf("compiled in %.0f ms; out[0] = %g\n", (*kernel)->info().compileMs,
              out[0]);
  return out[0] == 0.5f ? 0 : 1;
}
