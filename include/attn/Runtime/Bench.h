//===- Bench.h - machine limits for benchmark reports -----------*- C++ -*-===//
//
// Measured (not nominal) limits of this machine, so that benchmark results
// can be read as a fraction of what the hardware does in the same run.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_RUNTIME_BENCH_H
#define ATTN_RUNTIME_BENCH_H

namespace attn {

/// FP32 fused multiply-add throughput in GFLOP/s (2 flops per lane per FMA)
/// on `threads` threads running independent chains of 512-bit FMAs
/// (AVX-512; 256-bit AVX2 FMA where AVX-512 is missing), about
/// `seconds` long.
double measureFmaPeakGflops(unsigned threads, double seconds = 0.3);

/// Read bandwidth from memory in GB/s (1e9 bytes/s) on `threads` threads,
/// streaming a buffer of `bytes` (much larger than the caches).
double measureMemoryBandwidthGBs(unsigned threads,
                                 unsigned long long bytes = 512ull << 20);

} // namespace attn

#endif // ATTN_RUNTIME_BENCH_H
