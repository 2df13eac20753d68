//===- Bench.cpp - machine limits for benchmark reports -------------------===//

#include "attn/Runtime/Bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <immintrin.h>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {
/// 12 independent FMA chains hide the FMA latency on two FMA ports.
__attribute__((target("avx512f"))) float fmaLoop512(long iterations) {
  __m512 a0 = _mm512_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0,
         a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iterations; ++i) {
    a0 = _mm512_fmadd_ps(a0, b, c);
    a1 = _mm512_fmadd_ps(a1, b, c);
    a2 = _mm512_fmadd_ps(a2, b, c);
    a3 = _mm512_fmadd_ps(a3, b, c);
    a4 = _mm512_fmadd_ps(a4, b, c);
    a5 = _mm512_fmadd_ps(a5, b, c);
    a6 = _mm512_fmadd_ps(a6, b, c);
    a7 = _mm512_fmadd_ps(a7, b, c);
    a8 = _mm512_fmadd_ps(a8, b, c);
    a9 = _mm512_fmadd_ps(a9, b, c);
    a10 = _mm512_fmadd_ps(a10, b, c);
    a11 = _mm512_fmadd_ps(a11, b, c);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), a2),
                           _mm512_add_ps(_mm512_add_ps(a3, a4), a5));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a6, a7), a8));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a9, a10), a11));
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fmaLoop256(long iterations) {
  __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0,
         a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iterations; ++i) {
    a0 = _mm256_fmadd_ps(a0, b, c);
    a1 = _mm256_fmadd_ps(a1, b, c);
    a2 = _mm256_fmadd_ps(a2, b, c);
    a3 = _mm256_fmadd_ps(a3, b, c);
    a4 = _mm256_fmadd_ps(a4, b, c);
    a5 = _mm256_fmadd_ps(a5, b, c);
    a6 = _mm256_fmadd_ps(a6, b, c);
    a7 = _mm256_fmadd_ps(a7, b, c);
    a8 = _mm256_fmadd_ps(a8, b, c);
    a9 = _mm256_fmadd_ps(a9, b, c);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), a2),
                           _mm256_add_ps(_mm256_add_ps(a3, a4), a5));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a6, a7),
                                     _mm256_add_ps(a8, a9)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

/// Sums `count` 64-bit words with 512-bit loads (4 independent chains).
__attribute__((target("avx512f"))) uint64_t sumWords512(const uint64_t *p,
                                                       size_t count) {
  __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    s0 = _mm512_add_epi64(s0, _mm512_loadu_si512(p + i));
    s1 = _mm512_add_epi64(s1, _mm512_loadu_si512(p + i + 8));
    s2 = _mm512_add_epi64(s2, _mm512_loadu_si512(p + i + 16));
    s3 = _mm512_add_epi64(s3, _mm512_loadu_si512(p + i + 24));
  }
  uint64_t sum = _mm512_reduce_add_epi64(
      _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
  for (; i < count; ++i)
    sum += p[i];
  return sum;
}

uint64_t sumWords(const uint64_t *p, size_t count) {
  if (__builtin_cpu_supports("avx512f"))
    return sumWords512(p, count);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < count; ++i)
    s0 += p[i];
  return s0 + s1 + s2 + s3;
}

/// Runs body(thread) on `threads` threads started together; returns the
/// wall time in seconds.
template <typename F> double runThreads(unsigned threads, F body) {
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load())
        std::this_thread::yield();
      body(t);
    });
  while (ready.load() != threads)
    std::this_thread::yield();
  auto start = Clock::now();
  go.store(true);
  for (std::thread &th : pool)
    th.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}
} // namespace

double attn::measureFmaPeakGflops(unsigned threads, double seconds) {
  threads = std::max(1u, threads);
  bool avx512 = __builtin_cpu_supports("avx512f");
  int lanes = avx512 ? 16 : 8, chains = avx512 ? 12 : 10;
  auto loop = [&](long n) { return avx512 ? fmaLoop512(n) : fmaLoop256(n); };
  // Calibrate on one thread, then run every thread for about `seconds`.
  long n = 1 << 20;
  volatile float sink = 0;
  for (;;) {
    auto start = Clock::now();
    sink = sink + loop(n);
    double t = std::chrono::duration<double>(Clock::now() - start).count();
    if (t > seconds / 10 || n > (1l << 40))
      break;
    n *= 2;
  }
  n *= 10;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<float> sinks(threads);
    double t = runThreads(threads, [&](unsigned i) { sinks[i] = loop(n); });
    best = std::max(best, double(threads) * n * chains * lanes * 2 / t / 1e9);
  }
  return best;
}

double attn::measureMemoryBandwidthGBs(unsigned threads,
                                       unsigned long long bytes) {
  threads = std::max(1u, threads);
  size_t count = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buffer(count);
  // Touch every page (first-touch placement by the threads that read).
  runThreads(threads, [&](unsigned t) {
    size_t begin = count * t / threads, end = count * (t + 1) / threads;
    std::memset(buffer.data() + begin, 1, (end - begin) * sizeof(uint64_t));
  });
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<uint64_t> sums(threads);
    double t = runThreads(threads, [&](unsigned i) {
      size_t begin = count * i / threads, end = count * (i + 1) / threads;
      sums[i] = sumWords(buffer.data() + begin, end - begin);
    });
    best = std::max(best, double(count * sizeof(uint64_t)) / t / 1e9);
  }
  return best;
}
