//===- call_overhead.cpp - per-call cost of a cached kernel, C++ and C ----===//
//
// Times one run of a cache-hit kernel on a tiny problem (B=1, H=1, S=16,
// D=16 by default: the kernel itself takes well under a microsecond of
// arithmetic), called directly through attn::Kernel::run and through the C
// API's attn_kernel_run, and also the cost of a getKernel / compile call
// that hits the in-memory cache. call_overhead.py adds the Python and
// PyTorch paths and prints the comparison.
//
//   attn-call-overhead [S] [D] [ITERATIONS]
//
// Prints one JSON line; times in microseconds (median of 7 batches).
//
//===----------------------------------------------------------------------===//

#include "attn-c/attn.h"

#include "attn/Runtime/Runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

template <typename F> double microsPerCall(int iterations, F &&body) {
  for (int i = 0; i < iterations / 10 + 1; ++i) // warm up
    body();
  std::vector<double> batches;
  for (int b = 0; b < 7; ++b) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i)
      body();
    batches.push_back(std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - start)
                          .count() /
                      iterations);
  }
  std::sort(batches.begin(), batches.end());
  return batches[batches.size() / 2];
}

[[noreturn]] void die(const std::string &m) {
  std::fprintf(stderr, "attn-call-overhead: %s\n", m.c_str());
  std::exit(1);
}

} // namespace

int main(int argc, char **argv) {
  int64_t s = argc > 1 ? std::atoll(argv[1]) : 16;
  int64_t d = argc > 2 ? std::atoll(argv[2]) : 16;
  int iterations = argc > 3 ? std::atoi(argv[3]) : 20000;
  std::string json =
      "{\"batch\": 1, \"q_heads\": 1, \"q_len\": " + std::to_string(s) +
      ", \"kv_len\": " + std::to_string(s) +
      ", \"head_dim\": " + std::to_string(d) + "}";
  std::vector<float> q(s * d, 0.5f), k(s * d, 0.25f), v(s * d, 1.0f),
      out(s * d);

  // C++.
  attn::RuntimeOptions options;
  options.diskCache = false;
  attn::Runtime runtime(options);
  auto spec = attn::AttentionSpec::fromJSON(json);
  if (!spec)
    die(llvm::toString(spec.takeError()));
  auto kernel = runtime.getKernel(*spec);
  if (!kernel)
    die(llvm::toString(kernel.takeError()));
  attn::AttentionArgs args;
  args.query =
      attn::TensorRef::contiguous(q.data(), attn::DType::F32, {1, 1, s, d});
  args.key =
      attn::TensorRef::contiguous(k.data(), attn::DType::F32, {1, 1, s, d});
  args.value =
      attn::TensorRef::contiguous(v.data(), attn::DType::F32, {1, 1, s, d});
  args.output =
      attn::TensorRef::contiguous(out.data(), attn::DType::F32, {1, 1, s, d});
  double cppRun = microsPerCall(iterations, [&] {
    if (llvm::Error err = (*kernel)->run(args))
      die(llvm::toString(std::move(err)));
  });
  double cppGetKernel = microsPerCall(iterations, [&] {
    auto again = runtime.getKernel(*spec);
    if (!again)
      die(llvm::toString(again.takeError()));
  });

  // C API.
  attn_context_options o;
  attn_context_options_init(&o);
  o.cache_dir = "";
  attn_context *ctx = nullptr;
  if (attn_context_create(&o, &ctx) != ATTN_OK)
    die(attn_last_error());
  attn_kernel *ck = nullptr;
  if (attn_kernel_compile_json(ctx, json.c_str(), nullptr, &ck) != ATTN_OK)
    die(attn_last_error());
  attn_args cargs;
  attn_args_init(&cargs);
  int64_t shape[4] = {1, 1, s, d};
  attn_tensor_contiguous(&cargs.query, q.data(), ATTN_DTYPE_F32, 4, shape);
  attn_tensor_contiguous(&cargs.key, k.data(), ATTN_DTYPE_F32, 4, shape);
  attn_tensor_contiguous(&cargs.value, v.data(), ATTN_DTYPE_F32, 4, shape);
  attn_tensor_contiguous(&cargs.output, out.data(), ATTN_DTYPE_F32, 4, shape);
  double cRun = microsPerCall(iterations, [&] {
    if (attn_kernel_run(ck, &cargs) != ATTN_OK)
      die(attn_last_error());
  });
  double cCompileHit = microsPerCall(iterations, [&] {
    attn_kernel *again = nullptr;
    if (attn_kernel_compile_json(ctx, json.c_str(), nullptr, &again) != ATTN_OK)
      die(attn_last_error());
    attn_kernel_destroy(again);
  });
  attn_kernel_destroy(ck);
  attn_context_destroy(ctx);

  std::printf(
      "{\"shape\": [1, 1, %lld, %lld], \"threads\": %u, "
      "\"cpp_run_us\": %.3f, \"c_api_run_us\": %.3f, "
      "\"cpp_get_kernel_hit_us\": %.3f, \"c_api_compile_hit_us\": %.3f}\n",
      (long long)s, (long long)d, runtime.numThreads(), cppRun, cRun,
      cppGetKernel, cCompileHit);
  return 0;
}
