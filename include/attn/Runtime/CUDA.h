//===- CUDA.h - CUDA kernels: PTX, ptxas, device access ---------*- C++ -*-===//
//
// The CUDA side of the runtime. Compiling a spec to PTX (and, with ptxas, to
// a cubin) needs no device and no CUDA library; running needs the CUDA
// driver, which the runtime loads at run time (dlopen("libcuda.so.1")), so
// the library builds and links everywhere. Without the driver or a device
// every call that needs one returns an error whose message starts with
// "no CUDA device".
//
//   auto image = attn::compileCUDAKernelImage(spec, options); // no device
//   image->ptx, image->entry, image->grid(...), image->block, ...
//
//   attn::Runtime rt;
//   auto kernel = rt.getKernel(spec, attn::Target::CUDA);   // needs a device
//   args.query = attn::TensorRef::contiguous(devicePtr, ...); // device memory
//   (*kernel)->run(args);                                     // synchronous
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_RUNTIME_CUDA_H
#define ATTN_RUNTIME_CUDA_H

#include "attn/Runtime/Runtime.h"

#include <array>
#include <string>
#include <vector>

namespace attn {

/// A compiled CUDA kernel and how to launch it.
struct CUDAKernelImage {
  /// "sm_80" or "sm_90".
  std::string chip;
  /// PTX text (ISA 8.0) with one .entry, `entry`.
  std::string ptx;
  std::string entry;
  /// Threads per block (x, y, z).
  std::array<int64_t, 3> block{};
  /// Dynamic shared memory per block, in bytes.
  int64_t sharedBytes = 0;
  /// Tile sizes (batch, heads, query, key).
  mlir::attn::AttentionTileSizes tileSizes;
  /// The kernel's memref parameters in order, as positions in
  /// kernelOperands(spec) (query, key, value, [mask], [kv_lens], output,
  /// [lse]); each is passed as its expanded memref descriptor (allocated
  /// pointer, aligned pointer, offset, sizes, strides).
  std::vector<int> paramOperands;

  /// Grid (x, y, z) = (q_heads / head tile, ceil(batch / batch tile),
  /// ceil(q_len / query tile)) for the given sizes: the query block varies
  /// slowest, so the longest causal blocks start first.
  std::array<int64_t, 3> grid(int64_t batch, int64_t qHeads,
                              int64_t qLen) const;
};

/// Tile sizes the CUDA kernels use for `spec` when CompileOptions leaves them
/// to the compiler.
mlir::attn::AttentionTileSizes selectCUDATileSizes(const AttentionSpec &spec);

/// Compiles `spec` for `options.chip` (sm_80 or sm_90; empty means sm_90)
/// through attn-cuda-pipeline to PTX. Touches no driver. Errors: an invalid
/// spec, an unsupported chip ("chip: 'sm_75' is not supported ..."), a spec
/// the CUDA kernels do not support (tensor masks, head_dim not a multiple of
/// 16, ...), or a compiler failure.
llvm::Expected<CUDAKernelImage>
compileCUDAKernelImage(const AttentionSpec &spec,
                       const CompileOptions &options = {});

/// What ptxas made of a PTX kernel.
struct PtxasResult {
  std::string cubin;
  /// From `ptxas -v`: registers per thread, spill bytes, static shared
  /// memory and stack frame bytes (-1 when not reported).
  int64_t registers = -1, spillStoreBytes = -1, spillLoadBytes = -1,
          staticSharedBytes = -1, stackBytes = -1;
  /// The -v report.
  std::string log;
};

/// The ptxas to use: $ATTN_PTXAS, then `ptxas` on $PATH, then
/// $CUDA_HOME/bin, $CUDA_PATH/bin and /usr/local/cuda/bin. Error: "ptxas
/// not found ...".
llvm::Expected<std::string> findPtxas();

/// Assembles `ptx` for `chip` with `ptxas -arch=<chip> -O3 -v`.
llvm::Expected<PtxasResult> assemblePTX(const std::string &ptx,
                                        const std::string &chip);

namespace cuda {

/// Succeeds when libcuda loads, initialises and reports a device; otherwise
/// "no CUDA device: <why>".
llvm::Error checkDevice();

/// The chip of device 0 for the kernels ("sm_80" for compute capability
/// 8.x, "sm_90" for 9.x and later), or the checkDevice() error.
llvm::Expected<std::string> deviceChip();

/// Device memory on device 0, freed with the object (for callers without a
/// CUDA runtime of their own: attn-run, tests).
class DeviceBuffer {
public:
  static llvm::Expected<DeviceBuffer> allocate(size_t bytes);
  DeviceBuffer(DeviceBuffer &&other) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer();

  /// The device address (for TensorRef::data).
  void *data() const { return reinterpret_cast<void *>(ptr); }
  size_t size() const { return bytes; }
  llvm::Error copyFromHost(const void *src, size_t n);
  llvm::Error copyToHost(void *dst, size_t n) const;

private:
  DeviceBuffer(unsigned long long ptr, size_t bytes) : ptr(ptr), bytes(bytes) {}
  unsigned long long ptr = 0;
  size_t bytes = 0;
};

} // namespace cuda
} // namespace attn

#endif // ATTN_RUNTIME_CUDA_H
