//===- CPUExecutor.cpp - JIT-compiled CPU kernels -------------------------===//
//
// spec -> kernel module (KernelBuilder) -> attn-cpu-pipeline -> LLVM ->
// mlir::ExecutionEngine (ORC JIT, host CPU features, O3). A run splits the
// workgroups of the kernel over the runtime's threads; each thread calls
// the entry with its range of workgroup ids.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "RuntimeInternal.h"

#include "attn/Pipelines/Pipelines.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <chrono>
#include <mutex>

using namespace attn;
using namespace attn::detail;

//===----------------------------------------------------------------------===//
// WorkerPool
//===----------------------------------------------------------------------===//

WorkerPool::WorkerPool(unsigned numThreads) {
  threads = numThreads ? numThreads
                       : std::max(1u, llvm::hardware_concurrency().compute_thread_count());
  if (threads > 1)
    pool = std::make_unique<llvm::StdThreadPool>(
        llvm::hardware_concurrency(threads - 1));
}

WorkerPool::~WorkerPool() = default;

void WorkerPool::parallelFor(int64_t n,
                             llvm::function_ref<void(int64_t)> body) {
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1))
      body(i);
  };
  int64_t helpers = std::min<int64_t>(threads - 1, n - 1);
  if (helpers <= 0 || !pool) {
    worker();
    return;
  }
  llvm::ThreadPoolTaskGroup group(*pool);
  for (int64_t h = 0; h < helpers; ++h)
    group.async(worker);
  worker();
  group.wait();
}

//===----------------------------------------------------------------------===//
// CPU kernel
//===----------------------------------------------------------------------===//

namespace {
/// The memref descriptor of MLIR's C interface for ranks 1..4.
struct MemRefDescriptor {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizesAndStrides[8]; // sizes[rank] then strides[rank]
};

MemRefDescriptor describe(const TensorRef &t) {
  MemRefDescriptor d{};
  d.allocated = d.aligned = t.data;
  d.offset = 0;
  for (int i = 0; i < t.rank; ++i) {
    d.sizesAndStrides[i] = t.shape[i];
    d.sizesAndStrides[t.rank + i] = t.strides[i];
  }
  return d;
}

class CPUKernel final : public Kernel {
public:
  CPUKernel(AttentionSpec spec, KernelInfo info,
            std::unique_ptr<mlir::ExecutionEngine> engine,
            void (*entry)(void **), std::shared_ptr<WorkerPool> pool)
      : Kernel(std::move(spec), std::move(info)), engine(std::move(engine)),
        entry(entry), pool(std::move(pool)) {}

protected:
  llvm::Error launch(const AttentionArgs &args, int64_t batch, int64_t qLen,
                     int64_t kvLen) const override {
    std::vector<KernelOperand> operands = kernelOperands(spec());
    MemRefDescriptor descs[7];
    void *descPtrs[7];
    for (size_t i = 0; i < operands.size(); ++i) {
      const TensorRef *t = nullptr;
      switch (operands[i]) {
      case KernelOperand::Query:
        t = &args.query;
        break;
      case KernelOperand::Key:
        t = &args.key;
        break;
      case KernelOperand::Value:
        t = &args.value;
        break;
      case KernelOperand::Mask:
        t = &args.mask;
        break;
      case KernelOperand::KvLens:
        t = &args.kvLens;
        break;
      case KernelOperand::Output:
        t = &args.output;
        break;
      case KernelOperand::Lse:
        t = &args.lse;
        break;
      }
      descs[i] = describe(*t);
      descPtrs[i] = &descs[i];
    }
    const KernelInfo &ki = info();
    mlir::attn::AttentionTileSizes tiles{ki.tileSizes[0], ki.tileSizes[1],
                                         ki.tileSizes[2], ki.tileSizes[3]};
    int64_t workgroups =
        mlir::attn::getWorkgroupCount(batch, spec().qHeads, qLen, tiles);
    size_t n = operands.size();
    pool->parallelFor(workgroups, [&](int64_t wg) {
      int64_t begin = wg, end = wg + 1;
      void *packed[9];
      for (size_t i = 0; i < n; ++i)
        packed[i] = &descPtrs[i];
      packed[n] = &begin;
      packed[n + 1] = &end;
      entry(packed);
    });
    (void)kvLen;
    return llvm::Error::success();
  }

private:
  std::unique_ptr<mlir::ExecutionEngine> engine;
  void (*entry)(void **);
  std::shared_ptr<WorkerPool> pool;
};

llvm::Error compileError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "compile: " + msg);
}
} // namespace

llvm::Expected<std::shared_ptr<Kernel>>
detail::compileCPUKernel(const AttentionSpec &spec,
                         const CompileOptions &compileOptions,
                         std::shared_ptr<WorkerPool> pool) {
  auto start = std::chrono::steady_clock::now();
  static std::once_flag initTargets;
  std::call_once(initTargets, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });

  mlir::MLIRContext context(kernelDialectRegistry(),
                            mlir::MLIRContext::Threading::DISABLED);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      buildKernelModule(context, spec, /*workgroupRange=*/true);

  mlir::attn::AttentionTileSizes tiles = selectCPUTileSizes(spec);
  if (llvm::any_of(compileOptions.tileSizes, [](int64_t t) { return t; })) {
    auto chosen = mlir::attn::AttentionTileSizes::fromList(
        compileOptions.tileSizes);
    if (mlir::failed(chosen))
      return compileError("tile sizes must be 4 positive integers");
    tiles = *chosen;
  }
  mlir::attn::CPUPipelineOptions options;
  options.tileSizes = {tiles.batch, tiles.heads, tiles.query, tiles.key};
  mlir::PassManager pm(&context);
  mlir::attn::buildCPUPipeline(pm, options);
  std::string diagnostics;
  {
    llvm::raw_string_ostream os(diagnostics);
    mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
      os << d << "\n";
      return mlir::success();
    });
    if (mlir::failed(pm.run(*module)))
      return compileError("attn-cpu-pipeline failed: " + diagnostics);
  }

  auto tmBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!tmBuilder)
    return tmBuilder.takeError();
  tmBuilder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto tm = tmBuilder->createTargetMachine();
  if (!tm)
    return tm.takeError();
  mlir::ExecutionEngineOptions engineOptions;
  auto transformer = mlir::makeOptimizingTransformer(3, 0, tm->get());
  engineOptions.transformer = transformer;
  engineOptions.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  engineOptions.enableGDBNotificationListener = false;
  engineOptions.enablePerfNotificationListener = false;
  auto engine =
      mlir::ExecutionEngine::create(*module, engineOptions, std::move(*tm));
  if (!engine)
    return compileError("JIT: " + llvm::toString(engine.takeError()));
  auto entry = (*engine)->lookupPacked(std::string("_mlir_ciface_") +
                                       kKernelEntry);
  if (!entry)
    return compileError("JIT: " + llvm::toString(entry.takeError()));

  KernelInfo info;
  info.target = Target::CPU;
  info.tileSizes = {tiles.batch, tiles.heads, tiles.query, tiles.key};
  info.entry = kKernelEntry;
  info.compileMs = std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  return std::make_shared<CPUKernel>(spec, std::move(info), std::move(*engine),
                                     *entry, std::move(pool));
}

llvm::Expected<std::shared_ptr<Kernel>>
detail::compileCUDAKernel(const AttentionSpec &) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "cuda: the CUDA target is not available in "
                                 "this build");
}
