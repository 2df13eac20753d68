//===- FuzzTest.cpp - differential fuzzing against the f64 reference ------===//
//
// Random attention problems, each compiled by the runtime and compared with
// the f64 reference (Reference.cpp, a separate implementation): batch,
// q_heads / kv_heads (MHA, GQA, MQA), q_len, kv_len (with the corners where
// bugs hid: padded query tiles, split-KV, one row, one key), head_dim and
// v_head_dim, f32 / f16 / bf16, every mask kind and combination (causal and
// sliding windows top-left / bottom-right, bool and additive tensor masks with
// every broadcast, key padding with i32 / i64 lengths), LSE, static and
// dynamic lengths, 1..8 threads, kv_splits 0..8, tile sizes among the
// compiler's choices, and the CPU target levels this CPU can run (each case
// on one of them: an AVX-512 host also tests the AVX2 code).
//
// The ctest subset is fixed: 8 shards of ATTN_FUZZ_CASES (default 30) cases
// from ATTN_FUZZ_SEED (default 20261202). A longer run, e.g.
//   ATTN_FUZZ_CASES=2000 ATTN_FUZZ_SEED=$RANDOM build/bin/AttnFuzzTests
// prints each failing case as a spec JSON, sizes and options to reproduce it.
//
// Tolerances: f32 kernels within 2e-5 * (1 + max|ref|) (docs/design.md
// section 7); f16 / bf16 within twice the error of the same-precision
// reference plus 1e-6, with no NaN where the reference has none.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "attn/Runtime/Runtime.h"

#include "gtest/gtest.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <sstream>

using namespace attn;
using namespace attn::test;

namespace {

int64_t envOr(const char *name, int64_t fallback) {
  const char *v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

/// One runtime per thread count, never destroyed (see sharedRuntime).
Runtime &runtimeWithThreads(unsigned threads) {
  static std::mutex mutex;
  static std::map<unsigned, Runtime *> runtimes;
  std::lock_guard<std::mutex> lock(mutex);
  Runtime *&rt = runtimes[threads];
  if (!rt) {
    RuntimeOptions options;
    options.numThreads = threads;
    options.diskCache = false;
    rt = new Runtime(options);
  }
  return *rt;
}

/// A random case: the spec, the run's sizes and the compile options.
struct Case {
  AttentionSpec spec;
  int64_t batch = 1, qLen = 1, kvLen = 1;
  unsigned threads = 1;
  CompileOptions options;
  uint32_t dataSeed = 0;

  std::string describe() const {
    std::ostringstream os;
    os << "spec " << spec.toJSON() << " B=" << batch << " Sq=" << qLen
       << " Sk=" << kvLen << " threads=" << threads
       << " cpu_target=" << options.cpuTarget
       << " kv_splits=" << options.kvSplits << " tile_sizes=";
    if (options.tileSizes)
      os << options.tileSizes->batch << "," << options.tileSizes->heads << ","
         << options.tileSizes->query << "," << options.tileSizes->key;
    else
      os << "compiler";
    os << " data_seed=" << dataSeed;
    return os.str();
  }
};

Case randomCase(std::mt19937_64 &rng) {
  auto pick = [&](auto... values) {
    int64_t all[] = {static_cast<int64_t>(values)...};
    return all[rng() % sizeof...(values)];
  };
  auto chance = [&](double p) {
    return std::uniform_real_distribution<double>(0, 1)(rng) < p;
  };
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  Case c;
  AttentionSpec &s = c.spec;
  for (;;) {
    c.batch = pick(1, 1, 2, 3);
    s.kvHeads = pick(1, 1, 2, 3);
    s.qHeads = s.kvHeads * pick(1, 1, 2, 3, 4);
    c.qLen = chance(0.6) ? pick(1, 2, 3, 4, 5, 7, 9, 15, 16, 17, 31, 63, 64,
                                65, 113, 127, 128, 129, 257)
                         : uniform(1, 300);
    c.kvLen = chance(0.6) ? pick(1, 3, 16, 17, 64, 100, 127, 128, 257, 513,
                                 1000, 1024, 1100, 1500)
                          : uniform(1, 1600);
    s.headDim = pick(16, 32, 64, 80, 128);
    s.vHeadDim = chance(0.7) ? s.headDim : pick(16, 32, 64, 80, 128);
    double work = double(c.batch) * s.qHeads * c.qLen * c.kvLen *
                  (s.headDim + s.vHeadDim);
    if (work <= 6e7) // keeps the f64 reference well under a second
      break;
  }
  s.dtype = chance(0.7) ? DType::F32 : (chance(0.5) ? DType::BF16 : DType::F16);
  s.returnLse = chance(0.5);
  if (chance(0.2))
    s.scale = std::uniform_real_distribution<double>(0.01, 1.0)(rng);
  switch (rng() % 4) {
  case 0:
    break;
  case 1:
    s.masks.push_back(causalMask(chance(0.5)));
    break;
  case 2:
    s.masks.push_back(windowMask(uniform(0, 300), chance(0.5) ? 0 : uniform(0, 60),
                                 chance(0.5)));
    break;
  case 3:
    if (chance(0.5))
      s.masks.push_back(causalMask(chance(0.5)));
    break;
  }
  if (chance(0.25))
    s.masks.push_back(tensorMask(chance(0.5) ? DType::Bool : DType::F32,
                                 chance(0.5), chance(0.5), chance(0.3)));
  if (chance(0.3))
    s.masks.push_back(keyPaddingMask(chance(0.5) ? DType::I32 : DType::I64));
  s.batch = chance(0.4) ? std::nullopt : std::optional<int64_t>(c.batch);
  s.qLen = chance(0.4) ? std::nullopt : std::optional<int64_t>(c.qLen);
  s.kvLen = chance(0.4) ? std::nullopt : std::optional<int64_t>(c.kvLen);
  c.threads = static_cast<unsigned>(uniform(1, 8));
  c.options.kvSplits = chance(0.6) ? 0 : uniform(1, 8);
  if (chance(0.3)) {
    int64_t group = s.qHeads / s.kvHeads;
    c.options.tileSizes = mlir::attn::AttentionTileSizes{1, chance(0.5) ? group : 1,
                                                  pick(16, 32, 64),
                                                  pick(16, 32, 64)};
  }
  c.dataSeed = static_cast<uint32_t>(rng());
  // The cases are shared out over the CPU target levels this CPU runs (an
  // AVX-512 host also tests the AVX2 level's code).
  static const std::vector<mlir::attn::CPUTargetInfo> levels =
      runnableCPUTargets();
  c.options.cpuTarget =
      levels[static_cast<size_t>(uniform(0, levels.size() - 1))].name.str();
  return c;
}

/// Runs one case; a failure message, or "" when it matches the reference.
std::string runCase(const Case &c) {
  auto kernel = runtimeWithThreads(c.threads)
                    .getKernel(c.spec, Target::CPU, c.options);
  if (!kernel)
    return "compile failed: " + llvm::toString(kernel.takeError());
  Problem p(c.spec, c.batch, c.qLen, c.kvLen);
  p.randomize(c.dataSeed, static_cast<int>(c.dataSeed % 7));
  if (llvm::Error err = (*kernel)->run(p.args()))
    return "run failed: " + llvm::toString(std::move(err));
  reference::Outputs ref = p.reference();
  if (c.spec.dtype == DType::F32) {
    ::testing::AssertionResult res = matchesReference(p, ref);
    return res ? "" : res.message();
  }
  std::vector<double> out = p.output();
  for (size_t i = 0; i < out.size(); ++i)
    if (std::isnan(out[i]) != std::isnan(ref.output[i]))
      return "NaN mismatch at output element " + std::to_string(i);
  std::vector<double> same = reference::samePrecisionAttention(c.spec, p.in);
  double kernelErr = maxAbsError(out, ref.output);
  double sameErr = maxAbsError(same, ref.output);
  if (!(kernelErr <= 2.0 * sameErr + 1e-6))
    return "half-precision error " + std::to_string(kernelErr) +
           " over twice the same-precision error " + std::to_string(sameErr);
  return "";
}

class DifferentialFuzz : public ::testing::TestWithParam<int> {};

TEST_P(DifferentialFuzz, MatchesF64Reference) {
  int64_t seed = envOr("ATTN_FUZZ_SEED", 20261202);
  int64_t cases = envOr("ATTN_FUZZ_CASES", 30);
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 1000003u +
                      static_cast<uint64_t>(GetParam()));
  auto start = std::chrono::steady_clock::now();
  int failures = 0;
  for (int64_t i = 0; i < cases; ++i) {
    Case c = randomCase(rng);
    std::string error = runCase(c);
    if (!error.empty()) {
      ADD_FAILURE() << "case " << i << " of shard " << GetParam() << " (seed "
                    << seed << "): " << c.describe() << "\n"
                    << error;
      if (++failures >= 5)
        FAIL() << "stopping after 5 failing cases";
    }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                           start)
                 .count();
  std::printf("shard %d: %lld cases in %.1f s\n", GetParam(),
              static_cast<long long>(cases), s);
}

INSTANTIATE_TEST_SUITE_P(Shards, DifferentialFuzz, ::testing::Range(0, 8));

} // namespace
