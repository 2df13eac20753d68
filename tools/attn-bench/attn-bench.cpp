//===- attn-bench.cpp - speed of compiled attention kernels ---------------===//
//
// Measures, on this machine and in one run: the FP32 FMA peak and memory
// bandwidth, then for each benchmark shape the JIT compile time, the median
// run time of the flash kernel (GFLOP/s, fraction of peak), of the
// length-generic (dynamic) kernel, and of the unfused reference lowering
// where its score matrix fits in memory, and the cost of a cache hit.
// Peers outside the compiler (numpy, PyTorch) are in benchmarks/compare.py.
//
//   attn-bench [--threads N] [--repeat N] [--only NAME] [--json FILE]
//
//===----------------------------------------------------------------------===//

#include "attn/Runtime/Bench.h"
#include "attn/Runtime/Float16.h"
#include "attn/Runtime/Npy.h"
#include "attn/Runtime/Runtime.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sys/resource.h>

using namespace attn;
using Clock = std::chrono::steady_clock;

namespace {
struct Shape {
  std::string name;
  AttentionSpec spec;
  bool decode = false; // report GB/s
};

AttentionSpec makeSpec(int64_t b, int64_t hq, int64_t hkv, int64_t sq,
                       int64_t sk, int64_t d, DType dtype, bool causal) {
  AttentionSpec s;
  s.batch = b;
  s.qHeads = hq;
  s.kvHeads = hkv;
  s.qLen = sq;
  s.kvLen = sk;
  s.headDim = s.vHeadDim = d;
  s.dtype = dtype;
  if (causal) {
    MaskSpec m;
    m.kind = MaskSpec::Kind::Causal;
    m.bottomRight = true; // decode / prefill with Sq == Sk: same as top-left
    s.masks.push_back(m);
  }
  return s;
}

std::vector<Shape> shapes() {
  return {
      {"prefill_h8_s1k_d64", makeSpec(1, 8, 8, 1024, 1024, 64, DType::F32, false)},
      {"prefill_h8_s1k_d64_causal", makeSpec(1, 8, 8, 1024, 1024, 64, DType::F32, true)},
      {"prefill_h8_s1k_d128", makeSpec(1, 8, 8, 1024, 1024, 128, DType::F32, false)},
      {"prefill_h16_s4k_d128_causal", makeSpec(1, 16, 16, 4096, 4096, 128, DType::F32, true)},
      {"gqa_h32kv8_s2k_d128_causal", makeSpec(1, 32, 8, 2048, 2048, 128, DType::F32, true)},
      {"decode_h32kv8_sk8k_d128", makeSpec(1, 32, 8, 1, 8192, 128, DType::F32, false), true},
      {"prefill_h8_s2k_d128_f32", makeSpec(1, 8, 8, 2048, 2048, 128, DType::F32, false)},
      {"prefill_h8_s2k_d128_bf16", makeSpec(1, 8, 8, 2048, 2048, 128, DType::BF16, false)},
      {"long_h8_s32k_d64_causal", makeSpec(1, 8, 8, 32768, 32768, 64, DType::F32, true)},
  };
}

/// Inputs and outputs of one shape, filled with N(0, 1) values.
struct Buffers {
  std::vector<uint32_t> q, k, v, out; // 4-byte slots; bf16 uses the low half
  AttentionArgs args;

  Buffers(const AttentionSpec &s) {
    int64_t b = *s.batch, sq = *s.qLen, sk = *s.kvLen;
    auto fill = [&](std::vector<uint32_t> &buf, int64_t n, unsigned seed) {
      buf.resize(n);
      std::mt19937 rng(seed);
      std::normal_distribution<float> dist;
      for (auto &x : buf) {
        float f = dist(rng);
        x = s.dtype == DType::F32 ? floatBits(f) : floatToBF16(f);
      }
      if (s.dtype != DType::F32) { // pack 2-byte elements densely
        auto *h = reinterpret_cast<uint16_t *>(buf.data());
        for (int64_t i = 0; i < n; ++i)
          h[i] = static_cast<uint16_t>(buf[i]);
      }
    };
    fill(q, b * s.qHeads * sq * s.headDim, 1);
    fill(k, b * s.kvHeads * sk * s.headDim, 2);
    fill(v, b * s.kvHeads * sk * s.vHeadDim, 3);
    out.resize(b * s.qHeads * sq * s.vHeadDim);
    args.query = TensorRef::contiguous(q.data(), s.dtype, {b, s.qHeads, sq, s.headDim});
    args.key = TensorRef::contiguous(k.data(), s.dtype, {b, s.kvHeads, sk, s.headDim});
    args.value = TensorRef::contiguous(v.data(), s.dtype, {b, s.kvHeads, sk, s.vHeadDim});
    args.output = TensorRef::contiguous(out.data(), s.dtype, {b, s.qHeads, sq, s.vHeadDim});
  }
};

double medianMs(const Kernel &kernel, const AttentionArgs &args, int repeat) {
  std::vector<double> times;
  if (auto err = kernel.run(args)) { // warm-up
    std::fprintf(stderr, "run failed: %s\n", llvm::toString(std::move(err)).c_str());
    std::exit(1);
  }
  for (int i = 0; i < repeat; ++i) {
    auto start = Clock::now();
    llvm::cantFail(kernel.run(args));
    times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

long peakRssMiB() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}
} // namespace

int main(int argc, char **argv) {
  CLI::App app{"Speed of attn-mlir kernels on this machine"};
  unsigned threads = 0;
  int repeat = 10;
  std::string only, jsonPath;
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("--repeat", repeat, "timed runs per kernel (median)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--only", only, "run only shapes whose name contains this");
  app.add_option("--json", jsonPath, "also write the results as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    std::fprintf(stderr, "attn-bench: error: %s\n", e.what());
    return 2;
  }
  if (!only.empty() &&
      llvm::none_of(shapes(), [&](const Shape &shape) {
        return shape.name.find(only) != std::string::npos;
      })) {
    std::fprintf(stderr, "attn-bench: error: --only '%s' matches no shape\n",
                 only.c_str());
    return 2;
  }
  // The JSON output is checked before the benchmarks run.
  std::optional<OutputFile> jsonFile;
  if (!jsonPath.empty()) {
    auto file = OutputFile::open(jsonPath);
    if (!file) {
      std::fprintf(stderr, "attn-bench: error: %s\n",
                   llvm::toString(file.takeError()).c_str());
      return 2;
    }
    jsonFile.emplace(std::move(*file));
  }

  RuntimeOptions options;
  options.numThreads = threads;
  // compile_ms times the compiler: never a kernel from the disk cache.
  options.diskCache = false;
  auto created = Runtime::create(options);
  if (!created) {
    std::fprintf(stderr, "attn-bench: error: %s\n",
                 llvm::toString(created.takeError()).c_str());
    return 2;
  }
  Runtime &runtime = **created;
  unsigned n = runtime.numThreads();
  double peak = measureFmaPeakGflops(n), peak1 = measureFmaPeakGflops(1);
  double bandwidth = measureMemoryBandwidthGBs(n);
  std::printf("machine: %u threads, FP32 FMA peak %.1f GFLOP/s (%.1f on one "
              "thread), memory read bandwidth %.1f GB/s\n\n",
              n, peak, peak1, bandwidth);
  std::printf("%-30s %10s %10s %9s %8s %10s %10s %10s\n", "shape", "compile_ms",
              "flash_ms", "GFLOP/s", "%peak", "dynamic_ms", "unfused_ms",
              "flash/unf");
  nlohmann::json results = nlohmann::json::array();
  for (const Shape &shape : shapes()) {
    if (!only.empty() && shape.name.find(only) == std::string::npos)
      continue;
    const AttentionSpec &spec = shape.spec;
    Buffers buffers(spec);
    auto start = Clock::now();
    auto kernel = runtime.getKernel(spec);
    if (!kernel) {
      std::fprintf(stderr, "%s: %s\n", shape.name.c_str(),
                   llvm::toString(kernel.takeError()).c_str());
      return 1;
    }
    double compileMs = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    bool huge = *spec.qLen * *spec.kvLen >= (1 << 26);
    int reps = huge ? 3 : repeat;
    double ms = medianMs(**kernel, buffers.args, reps);
    double flops = attentionFlops(spec, *spec.batch, *spec.qLen, *spec.kvLen);
    double gflops = flops / (ms * 1e-3) / 1e9;

    // The same spec with batch, q_len and kv_len left dynamic.
    AttentionSpec dyn = spec;
    dyn.batch = dyn.qLen = dyn.kvLen = std::nullopt;
    double dynMs = 0;
    if (!huge) {
      auto dynKernel = runtime.getKernel(dyn);
      if (dynKernel)
        dynMs = medianMs(**dynKernel, buffers.args, reps);
    }
    // The unfused reference when its score matrix fits (< 1 GiB).
    double unfusedMs = 0;
    double scoreBytes = 4.0 * *spec.batch * spec.qHeads * *spec.qLen * *spec.kvLen;
    if (scoreBytes < (1u << 30)) {
      CompileOptions ref;
      ref.unfusedReference = true;
      auto refKernel = runtime.getKernel(spec, Target::CPU, ref);
      if (refKernel)
        unfusedMs = medianMs(**refKernel, buffers.args, std::min(reps, 3));
    }
    nlohmann::json r = {{"shape", shape.name},        {"spec", nlohmann::json::parse(spec.toJSON())},
                        {"compile_ms", compileMs},    {"flash_ms", ms},
                        {"gflops", gflops},           {"fraction_of_peak", gflops / peak},
                        {"dynamic_ms", dynMs},        {"unfused_ms", unfusedMs},
                        {"peak_rss_mib", peakRssMiB()}};
    std::printf("%-30s %10.1f %10.3f %9.1f %7.1f%% %10.3f %10.3f %10s", shape.name.c_str(),
                compileMs, ms, gflops, 100 * gflops / peak, dynMs, unfusedMs,
                unfusedMs > 0 ? (std::to_string(unfusedMs / ms).substr(0, 5) + "x").c_str() : "-");
    if (shape.decode) {
      double bytes = dtypeSize(spec.dtype) *
                     (double(*spec.batch) * spec.kvHeads * *spec.kvLen *
                      (spec.headDim + spec.vHeadDim));
      double gbs = bytes / (ms * 1e-3) / 1e9;
      r["gbytes_per_s"] = gbs;
      r["fraction_of_bandwidth"] = gbs / bandwidth;
      std::printf("   %.1f GB/s = %.0f%% of bandwidth", gbs, 100 * gbs / bandwidth);
    }
    std::printf("\n");
    results.push_back(r);
  }

  // The cost of a cache hit: getKernel on a compiled spec, then run entry.
  AttentionSpec small = makeSpec(1, 1, 1, 16, 16, 16, DType::F32, false);
  (void)runtime.getKernel(small);
  int calls = 10000;
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i)
    (void)runtime.getKernel(small);
  double hitUs = std::chrono::duration<double, std::micro>(Clock::now() - start).count() / calls;
  std::printf("\ncache hit (getKernel of a compiled spec): %.2f us\n", hitUs);

  if (!jsonPath.empty()) {
    nlohmann::json doc = {{"threads", n},          {"fma_peak_gflops", peak},
                          {"fma_peak_gflops_1thread", peak1},
                          {"memory_gbs", bandwidth}, {"cache_hit_us", hitUs},
                          {"results", results}};
    if (auto err = jsonFile->write(doc.dump(2) + "\n")) {
      std::fprintf(stderr, "attn-bench: error: %s\n",
                   llvm::toString(std::move(err)).c_str());
      return 1;
    }
  }
  return 0;
}
