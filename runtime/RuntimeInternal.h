//===- RuntimeInternal.h - runtime internals --------------------*- C++ -*-===//
#ifndef ATTN_RUNTIME_RUNTIMEINTERNAL_H
#define ATTN_RUNTIME_RUNTIMEINTERNAL_H

#include "attn/Runtime/Runtime.h"

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
  std::unique_ptr<llvm::StdThreadPool> pool;
};

llvm::Expected<std::shared_ptr<Kernel>>
compileCPUKernel(const AttentionSpec &spec, const CompileOptions &options,
                 std::shared_ptr<WorkerPool> pool);

llvm::Expected<std::shared_ptr<Kernel>>
compileCUDAKernel(const AttentionSpec &spec);

} // namespace detail
} // namespace attn

#endif // ATTN_RUNTIME_RUNTIMEINTERNAL_H
