//===- CPUExecutor.cpp - JIT-compiled CPU kernels -------------------------===//
//
// spec -> kernel module (KernelBuilder) -> attn-cpu-pipeline -> LLVM IR ->
// O3 for the host CPU -> an object file -> ORC LLJIT. The object file is
// the unit a persistent cache can store. A run splits the workgroups of the
// kernel over the runtime's threads; each thread calls the entry with its
// range of workgroup ids.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "RuntimeInternal.h"

#include "attn/Pipelines/Pipelines.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
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

/// Calls `_mlir_ciface_attn_kernel(desc *..., int64_t begin, int64_t end)`
/// with `n` descriptor pointers.
void callEntry(void *entry, size_t n, void **descs, int64_t begin,
               int64_t end) {
  using D = void *;
  switch (n) {
  case 4:
    return reinterpret_cast<void (*)(D, D, D, D, int64_t, int64_t)>(entry)(
        descs[0], descs[1], descs[2], descs[3], begin, end);
  case 5:
    return reinterpret_cast<void (*)(D, D, D, D, D, int64_t, int64_t)>(entry)(
        descs[0], descs[1], descs[2], descs[3], descs[4], begin, end);
  case 6:
    return reinterpret_cast<void (*)(D, D, D, D, D, D, int64_t, int64_t)>(
        entry)(descs[0], descs[1], descs[2], descs[3], descs[4], descs[5],
               begin, end);
  case 7:
    return reinterpret_cast<void (*)(D, D, D, D, D, D, D, int64_t, int64_t)>(
        entry)(descs[0], descs[1], descs[2], descs[3], descs[4], descs[5],
               descs[6], begin, end);
  default:
    llvm_unreachable("a kernel has 4 to 7 memref operands");
  }
}

class CPUKernel final : public Kernel {
public:
  CPUKernel(AttentionSpec spec, KernelInfo info,
            std::unique_ptr<llvm::orc::LLJIT> jit, void *entry,
            std::shared_ptr<WorkerPool> pool)
      : Kernel(std::move(spec), std::move(info)), jit(std::move(jit)),
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
      callEntry(entry, n, descPtrs, wg, wg + 1);
    });
    (void)kvLen;
    return llvm::Error::success();
  }

private:
  std::unique_ptr<llvm::orc::LLJIT> jit;
  void *entry;
  std::shared_ptr<WorkerPool> pool;
};

llvm::Error compileError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "compile: " + msg);
}

llvm::Expected<std::unique_ptr<llvm::TargetMachine>> hostTargetMachine() {
  static std::once_flag initTargets;
  std::call_once(initTargets, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    return builder.takeError();
  builder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  return builder->createTargetMachine();
}
} // namespace

mlir::attn::AttentionTileSizes
detail::chooseCPUTileSizes(const AttentionSpec &spec,
                           const CompileOptions &options) {
  mlir::attn::AttentionTileSizes tiles = selectCPUTileSizes(spec);
  if (auto chosen =
          mlir::attn::AttentionTileSizes::fromList(options.tileSizes);
      llvm::any_of(options.tileSizes, [](int64_t t) { return t; }) &&
      mlir::succeeded(chosen))
    tiles = *chosen;
  return tiles;
}

llvm::Expected<CPUObject>
detail::compileCPUObject(const AttentionSpec &spec,
                         const CompileOptions &compileOptions) {
  if (llvm::any_of(compileOptions.tileSizes, [](int64_t t) { return t; }) &&
      mlir::failed(mlir::attn::AttentionTileSizes::fromList(
          compileOptions.tileSizes)))
    return compileError("tile sizes must be 4 positive integers");
  mlir::attn::AttentionTileSizes tiles = chooseCPUTileSizes(spec, compileOptions);

  // MLIR: the kernel module through attn-cpu-pipeline.
  mlir::MLIRContext context(kernelDialectRegistry(),
                            mlir::MLIRContext::Threading::DISABLED);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      buildKernelModule(context, spec, /*workgroupRange=*/true);
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

  // LLVM: translate, specialise for the host, optimise, emit an object.
  auto tm = hostTargetMachine();
  if (!tm)
    return tm.takeError();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      mlir::translateModuleToLLVMIR(*module, llvmContext, "attn_kernel");
  if (!llvmModule)
    return compileError("translation to LLVM IR failed");
  llvmModule->setDataLayout((*tm)->createDataLayout());
  llvmModule->setTargetTriple((*tm)->getTargetTriple());
  for (llvm::Function &f : *llvmModule) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", (*tm)->getTargetCPU());
    f.addFnAttr("target-features", (*tm)->getTargetFeatureString());
    // The vector code is written for full-width registers: do not let the
    // x86 backend split 512-bit vectors (prefer-256-bit on recent cores).
    f.addFnAttr("prefer-vector-width", "512");
    f.addFnAttr("min-legal-vector-width", "512");
  }
  auto transformer = mlir::makeOptimizingTransformer(3, 0, tm->get());
  if (auto err = transformer(llvmModule.get()))
    return compileError("LLVM optimisation: " + llvm::toString(std::move(err)));
  CPUObject object;
  {
    llvm::raw_string_ostream os(object.bytes);
    llvm::buffer_ostream stream(os);
    llvm::legacy::PassManager codegen;
    if ((*tm)->addPassesToEmitFile(codegen, stream, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
      return compileError("the host target cannot emit object files");
    codegen.run(*llvmModule);
  }
  object.tileSizes = {tiles.batch, tiles.heads, tiles.query, tiles.key};
  return object;
}

llvm::Expected<std::shared_ptr<Kernel>>
detail::loadCPUKernel(const AttentionSpec &spec, const CPUObject &object,
                      double compileMs, std::shared_ptr<WorkerPool> pool) {
  auto tm = hostTargetMachine(); // initialises the native target once
  if (!tm)
    return tm.takeError();
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return compileError("JIT: " + llvm::toString(jit.takeError()));
  // libm (expf, logf, ...) and the C library from the process.
  auto generator =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
          (*jit)->getDataLayout().getGlobalPrefix());
  if (!generator)
    return compileError("JIT: " + llvm::toString(generator.takeError()));
  (*jit)->getMainJITDylib().addGenerator(std::move(*generator));
  if (auto err = (*jit)->addObjectFile(llvm::MemoryBuffer::getMemBufferCopy(
          object.bytes, "attn_kernel.o")))
    return compileError("JIT: " + llvm::toString(std::move(err)));
  auto entry =
      (*jit)->lookup(std::string("_mlir_ciface_") + kKernelEntry);
  if (!entry)
    return compileError("JIT: " + llvm::toString(entry.takeError()));

  KernelInfo info;
  info.target = Target::CPU;
  info.tileSizes = object.tileSizes;
  info.entry = kKernelEntry;
  info.compileMs = compileMs;
  return std::make_shared<CPUKernel>(spec, std::move(info), std::move(*jit),
                                     entry->toPtr<void *>(), std::move(pool));
}

llvm::Expected<std::shared_ptr<Kernel>>
detail::compileCPUKernel(const AttentionSpec &spec,
                         const CompileOptions &compileOptions,
                         std::shared_ptr<WorkerPool> pool) {
  auto start = std::chrono::steady_clock::now();
  llvm::Expected<CPUObject> object = compileCPUObject(spec, compileOptions);
  if (!object)
    return object.takeError();
  double ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - start)
                  .count();
  return loadCPUKernel(spec, *object, ms, std::move(pool));
}
