//===- RuntimeInternal.h - runtime internals --------------------*- C++ -*-===//
#ifndef ATTN_RUNTIME_RUNTIMEINTERNAL_H
#define ATTN_RUNTIME_RUNTIMEINTERNAL_H

#include "attn/Runtime/Runtime.h"
#include "attn/Transforms/Transforms.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <memory>

namespace llvm {
class StdThreadPool;
} // namespace llvm

namespace attn {
namespace detail {

/// The CPU worker threads of a Runtime: `numThreads - 1` pool threads plus
/// the calling thread.
class WorkerPool {
public:
  /// 0 means one thread per core.
  explicit WorkerPool(unsigned numThreads);
  ~WorkerPool();
  unsigned numThreads() const { return threads; }

  /// Calls body(i) for every i in [0, n), on up to numThreads() threads,
  /// handing out indices in increasing order; returns when all are done.
  void parallelFor(int64_t n, llvm::function_ref<void(int64_t)> body);

private:
  unsigned threads;
  /// The process's fork count when the pool was made (see CPUExecutor.cpp).
  unsigned generation = 0;
  std::unique_ptr<llvm::StdThreadPool> pool;
};

/// A compiled CPU kernel as a relocatable object file for the host.
struct CPUObject {
  std::string bytes;
  /// None for the unfused reference (one workgroup).
  std::optional<mlir::attn::AttentionTileSizes> tileSizes;
  int64_t kvSplits = 1;
  /// The CPU target level it was compiled for.
  std::string cpuTarget;
};

/// The CPU target level CompileOptions::cpuTarget names (empty: the host's,
/// hostCPUTarget()); errors start with "options: cpu_target".
llvm::Expected<mlir::attn::CPUTargetInfo> resolveCPUTarget(llvm::StringRef name);

/// Fills in the compiler's choices (tile sizes, key splits) left open in
/// `options` for a runtime with `threads` threads.
CompileOptions resolveCPUCompileOptions(const AttentionSpec &spec,
                                        const CompileOptions &options,
                                        unsigned threads);

/// The tile sizes a CPU kernel of `spec` uses: the caller's, or the
/// compiler's choice.
mlir::attn::AttentionTileSizes
chooseCPUTileSizes(const AttentionSpec &spec, const CompileOptions &options);

/// spec -> attn-cpu-pipeline -> LLVM IR -> O3 -> object file, for the
/// level options.cpuTarget names (resolveCPUTarget).
llvm::Expected<CPUObject> compileCPUObject(const AttentionSpec &spec,
                                           const CompileOptions &options);
/// The same for `level`, whether or not this CPU can run it (the object is
/// only compiled: tests inspect the objects of every level on any host).
llvm::Expected<CPUObject>
compileCPUObject(const AttentionSpec &spec, const CompileOptions &options,
                 const mlir::attn::CPUTargetInfo &level);

/// The symbols a CPU kernel object may leave undefined: the C library
/// functions LLVM emits calls to (memcpy, memset, ..., logf for the
/// log-sum-exp). The JIT resolves
/// these, and only these, from the process; a kernel needing another symbol
/// (a compiler-rt helper such as __truncsfbf2) fails to load with "JIT:
/// Symbols not found", and the every-level object test names it.
llvm::ArrayRef<llvm::StringRef> kernelLibrarySymbols();

/// Loads an object made by compileCPUObject into a fresh JIT. `compileMs`
/// and `fromDiskCache` go to the kernel's KernelInfo, with the time the load
/// took as loadMs.
llvm::Expected<std::shared_ptr<Kernel>>
loadCPUKernel(const AttentionSpec &spec, const CPUObject &object,
              double compileMs, std::shared_ptr<WorkerPool> pool,
              bool fromDiskCache = false);

/// What CPU kernels of `level` are compiled for: "level=<name> <triple>
/// cpu=<name> features=<feature string> tune=<host CPU> amx_granted=<0|1>".
/// Object code for one target may not run on another, so this is part of
/// the disk cache key.
llvm::Expected<std::string>
cpuTargetDescription(const mlir::attn::CPUTargetInfo &level);

/// compileCPUObject + loadCPUKernel.
llvm::Expected<std::shared_ptr<Kernel>>
compileCPUKernel(const AttentionSpec &spec, const CompileOptions &options,
                 std::shared_ptr<WorkerPool> pool);

/// Loads the CUDA driver (error "no CUDA device: ..." without one), compiles
/// `spec` to PTX for options.chip (default: the device's) and loads it with
/// the driver's JIT (CUDAExecutor.cpp).
llvm::Expected<std::shared_ptr<Kernel>>
compileCUDAKernel(const AttentionSpec &spec, const CompileOptions &options);

} // namespace detail
} // namespace attn

#endif // ATTN_RUNTIME_RUNTIMEINTERNAL_H
