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

#include "llvm/ADT/StringMap.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <pthread.h>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

using namespace attn;
using namespace attn::detail;
using llvm::SmallVector;

//===----------------------------------------------------------------------===//
// WorkerPool
//===----------------------------------------------------------------------===//

namespace {
/// Counts fork()s of this process (in the children): the threads of a pool
/// made before a fork do not exist in the child, so the child runs that
/// pool's work on the calling thread and never joins its threads (a Python
/// process that forks workers, e.g. a DataLoader, keeps working).
std::atomic<unsigned> forkGeneration{0};

void watchForks() {
  static std::once_flag registered;
  std::call_once(registered, [] {
    pthread_atfork(nullptr, nullptr, [] {
      forkGeneration.fetch_add(1, std::memory_order_relaxed);
    });
  });
}
} // namespace

WorkerPool::WorkerPool(unsigned numThreads) {
  watchForks();
  generation = forkGeneration.load(std::memory_order_relaxed);
  threads = numThreads ? numThreads
                       : std::max(1u, llvm::hardware_concurrency().compute_thread_count());
  if (threads > 1)
    pool = std::make_unique<llvm::StdThreadPool>(
        llvm::hardware_concurrency(threads - 1));
}

WorkerPool::~WorkerPool() {
  // In a forked child the pool's threads are gone: joining them would hang.
  if (generation != forkGeneration.load(std::memory_order_relaxed))
    (void)pool.release();
}

void WorkerPool::parallelFor(int64_t n,
                             llvm::function_ref<void(int64_t)> body) {
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1))
      body(i);
  };
  int64_t helpers = std::min<int64_t>(threads - 1, n - 1);
  if (helpers <= 0 || !pool ||
      generation != forkGeneration.load(std::memory_order_relaxed)) {
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
/// The memref descriptor of MLIR's C interface for ranks 1..5.
struct MemRefDescriptor {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizesAndStrides[10]; // sizes[rank] then strides[rank]
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

/// Prefix of the packed wrappers: `_attn_packed_<entry>(void **args)` calls
/// `_mlir_ciface_<entry>` with *args[i] as its i-th argument.
constexpr const char *kPackedPrefix = "_attn_packed_";

/// Adds the packed wrapper of the C-interface function `ciface` to `module`.
void addPackedWrapper(llvm::Module &module, llvm::Function &ciface,
                      llvm::StringRef entry) {
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::getUnqual(ctx);
  auto *type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr},
                                       /*isVarArg=*/false);
  auto *wrapper = llvm::Function::Create(type, llvm::Function::ExternalLinkage,
                                         kPackedPrefix + entry.str(), module);
  llvm::IRBuilder<> builder(llvm::BasicBlock::Create(ctx, "entry", wrapper));
  llvm::SmallVector<llvm::Value *> args;
  for (auto [i, param] : llvm::enumerate(ciface.args())) {
    llvm::Value *slot = builder.CreateConstGEP1_64(ptr, wrapper->getArg(0), i);
    llvm::Value *address = builder.CreateLoad(ptr, slot);
    args.push_back(builder.CreateLoad(param.getType(), address));
  }
  builder.CreateCall(&ciface, args);
  builder.CreateRetVoid();
}

using PackedFn = void (*)(void **);

class CPUKernel final : public Kernel {
public:
  CPUKernel(AttentionSpec spec, KernelInfo info,
            std::unique_ptr<llvm::orc::LLJIT> jit, PackedFn entry,
            PackedFn merge, int64_t kvSplits, std::shared_ptr<WorkerPool> pool)
      : Kernel(std::move(spec), std::move(info)), jit(std::move(jit)),
        entry(entry), merge(merge), kvSplits(kvSplits), pool(std::move(pool)),
        operands(kernelOperands(this->spec())) {}

protected:
  llvm::Error launch(const AttentionArgs &args, int64_t batch, int64_t qLen,
                     int64_t kvLen) const override {
    SmallVector<MemRefDescriptor, 8> inputs, outputs;
    size_t capture = 0;
    for (KernelOperand op : operands) {
      switch (op) {
      case KernelOperand::Query:
        inputs.push_back(describe(args.query));
        break;
      case KernelOperand::Key:
        inputs.push_back(describe(args.key));
        break;
      case KernelOperand::Value:
        inputs.push_back(describe(args.value));
        break;
      case KernelOperand::Mask:
        inputs.push_back(describe(args.mask));
        break;
      case KernelOperand::KvLens:
        inputs.push_back(describe(args.kvLens));
        break;
      case KernelOperand::Capture:
        inputs.push_back(describe(args.captures[capture++]));
        break;
      case KernelOperand::Output:
        outputs.push_back(describe(args.output));
        break;
      case KernelOperand::Lse:
        outputs.push_back(describe(args.lse));
        break;
      }
    }
    const KernelInfo &ki = info();
    // The unfused reference (no tile sizes) is a single workgroup.
    int64_t workgroups =
        !ki.tileSizes ? 1
                      : mlir::attn::getWorkgroupCount(batch, spec().qHeads,
                                                      qLen, *ki.tileSizes);
    (void)kvLen;

    if (kvSplits <= 1) {
      SmallVector<void *, 8> descPtrs;
      for (MemRefDescriptor &d : inputs)
        descPtrs.push_back(&d);
      for (MemRefDescriptor &d : outputs)
        descPtrs.push_back(&d);
      // Workgroups run in id order: attn-tile-attention owns the order (under
      // a causal mask it numbers each head's query blocks longest first), so
      // the threads finish together.
      pool->parallelFor(workgroups, [&](int64_t wg) {
        int64_t begin = wg, end = wg + 1;
        SmallVector<void *, 10> packed;
        for (void *&p : descPtrs)
          packed.push_back(&p);
        packed.push_back(&begin);
        packed.push_back(&end);
        entry(packed.data());
      });
      return llvm::Error::success();
    }

    // Split-KV: every (workgroup, split) pair computes a partial state into
    // the workspace, then one call merges the splits.
    const AttentionSpec &s = spec();
    int64_t rows = batch * s.qHeads * qLen;
    std::vector<float> wsAcc(kvSplits * rows * s.vHeadDim), wsMax(kvSplits * rows),
        wsSum(kvSplits * rows);
    auto contiguous = [](float *data, std::initializer_list<int64_t> shape) {
      MemRefDescriptor d{};
      d.allocated = d.aligned = data;
      int rank = static_cast<int>(shape.size());
      int64_t stride = 1;
      for (int i = rank - 1; i >= 0; --i) {
        d.sizesAndStrides[i] = shape.begin()[i];
        d.sizesAndStrides[rank + i] = stride;
        stride *= shape.begin()[i];
      }
      return d;
    };
    MemRefDescriptor ws[3] = {
        contiguous(wsAcc.data(), {kvSplits, batch, s.qHeads, qLen, s.vHeadDim}),
        contiguous(wsMax.data(), {kvSplits, batch, s.qHeads, qLen}),
        contiguous(wsSum.data(), {kvSplits, batch, s.qHeads, qLen})};
    SmallVector<void *, 10> partialPtrs, mergePtrs;
    for (MemRefDescriptor &d : inputs)
      partialPtrs.push_back(&d);
    for (MemRefDescriptor &d : ws) {
      partialPtrs.push_back(&d);
      mergePtrs.push_back(&d);
    }
    for (MemRefDescriptor &d : outputs)
      mergePtrs.push_back(&d);
    pool->parallelFor(workgroups * kvSplits, [&](int64_t item) {
      int64_t wg = item / kvSplits, split = item % kvSplits;
      int64_t begin = wg, end = wg + 1;
      SmallVector<void *, 12> packed;
      for (void *&p : partialPtrs)
        packed.push_back(&p);
      packed.push_back(&split);
      packed.push_back(&begin);
      packed.push_back(&end);
      entry(packed.data());
    });
    int64_t begin = 0, end = 1;
    SmallVector<void *, 8> packed;
    for (void *&p : mergePtrs)
      packed.push_back(&p);
    packed.push_back(&begin);
    packed.push_back(&end);
    merge(packed.data());
    return llvm::Error::success();
  }

private:
  std::unique_ptr<llvm::orc::LLJIT> jit;
  PackedFn entry, merge;
  int64_t kvSplits;
  std::shared_ptr<WorkerPool> pool;
  /// The entry's memref operands in order.
  std::vector<KernelOperand> operands;
};

llvm::Error compileError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "compile: " + msg);
}

/// Whether bf16 kernels may use AMX tiles: the host has amx-tile and
/// amx-bf16 and (Linux) the process holds the AMX tile-data state, which is
/// requested once here (arch_prctl ARCH_REQ_XCOMP_PERM for
/// XFEATURE_XTILEDATA; without it the first tile instruction faults).
bool hostAMXUsable() {
  static const bool usable = [] {
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    if (!features.lookup("amx-tile") || !features.lookup("amx-bf16"))
      return false;
#if defined(__linux__) && defined(__x86_64__)
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return usable;
}

void initializeNativeTarget() {
  static std::once_flag initTargets;
  std::call_once(initTargets, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

/// LLVM's target machine for a CPU target level: the level's CPU and
/// features (so that its code holds no instruction of a higher level),
/// scheduled for the running CPU (tune-cpu, set on each function).
llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
targetMachine(const mlir::attn::CPUTargetInfo &level) {
  initializeNativeTarget();
  llvm::orc::JITTargetMachineBuilder builder{
      llvm::Triple(llvm::sys::getProcessTriple())};
  builder.setCPU(level.llvmCPU.str());
  llvm::SmallVector<llvm::StringRef> features;
  level.llvmFeatures.split(features, ',', -1, /*KeepEmpty=*/false);
  builder.addFeatures(std::vector<std::string>(features.begin(), features.end()));
  builder.setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  return builder.createTargetMachine();
}
} // namespace

std::vector<mlir::attn::CPUTargetInfo> attn::runnableCPUTargets() {
  std::vector<mlir::attn::CPUTargetInfo> levels;
  // AMX code faults without the OS's grant.
  for (const mlir::attn::CPUTargetInfo &level :
       mlir::attn::hostCPUTargetLevels())
    if (!level.amxBf16 || hostAMXUsable())
      levels.push_back(level);
  return levels;
}

const mlir::attn::CPUTargetInfo &attn::hostCPUTarget() {
  // The highest runnable level; the lowest there is on a CPU below it
  // (resolveCPUTarget then says what it lacks).
  static const mlir::attn::CPUTargetInfo level = [] {
    std::vector<mlir::attn::CPUTargetInfo> levels = runnableCPUTargets();
    return levels.empty() ? mlir::attn::CPUTargetInfo::levels().front()
                          : levels.back();
  }();
  return level;
}

std::string attn::hostCPUModel() {
  static const std::string model = [] {
    if (auto buffer = llvm::MemoryBuffer::getFileAsStream("/proc/cpuinfo")) {
      llvm::SmallVector<llvm::StringRef> lines;
      (*buffer)->getBuffer().split(lines, '\n');
      for (llvm::StringRef line : lines)
        if (line.starts_with("model name"))
          return line.split(':').second.trim().str();
    }
    return llvm::sys::getHostCPUName().str();
  }();
  return model;
}

/// The running CPU's features (LLVM's names), read once.
static const llvm::StringMap<bool> &hostFeatures() {
  static const llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  return features;
}

llvm::Expected<mlir::attn::CPUTargetInfo>
detail::resolveCPUTarget(llvm::StringRef name) {
  std::string missing;
  if (name.empty()) {
    // A CPU below the lowest level (no AVX2) has no level to compile for.
    if (!hostCPUTarget().runsOn(hostFeatures(), &missing))
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "options: this CPU (" + hostCPUModel() + ") lacks " + missing +
              ": attn-mlir's CPU kernels need x86-64-v3 (AVX2, FMA, F16C) "
              "or higher");
    return hostCPUTarget();
  }
  const mlir::attn::CPUTargetInfo *level =
      mlir::attn::CPUTargetInfo::lookup(name);
  if (!level || level->name == "generic")
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "options: unknown cpu_target '" + name + "' (known: " +
            mlir::attn::CPUTargetInfo::levelNames() + ")");
  if (!level->runsOn(hostFeatures(), &missing))
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "options: cpu_target '" + name + "' needs " + missing +
            ", which this CPU (" + hostCPUModel() + ") lacks");
  if (level->amxBf16 && !hostAMXUsable())
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "options: cpu_target '" + name +
            "' needs the AMX tile state, which the OS did not grant this "
            "process");
  return *level;
}

mlir::attn::AttentionTileSizes
detail::chooseCPUTileSizes(const AttentionSpec &spec,
                           const CompileOptions &options) {
  if (options.tileSizes)
    return *options.tileSizes;
  // The options passed validateCompileOptions, which resolved the target.
  llvm::Expected<mlir::attn::CPUTargetInfo> level =
      resolveCPUTarget(options.cpuTarget);
  mlir::attn::CPUTargetInfo target = level ? *level : hostCPUTarget();
  if (!level)
    llvm::consumeError(level.takeError());
  if (options.unfusedReference)
    target.amxBf16 = false;
  return selectCPUTileSizes(spec, target);
}

CompileOptions detail::resolveCPUCompileOptions(const AttentionSpec &spec,
                                                const CompileOptions &options,
                                                unsigned threads) {
  CompileOptions resolved = options;
  if (resolved.cpuTarget.empty())
    resolved.cpuTarget = hostCPUTarget().name.str();
  mlir::attn::AttentionTileSizes tiles = chooseCPUTileSizes(spec, resolved);
  resolved.tileSizes = tiles;
  if (resolved.kvSplits == 0) {
    // Split-KV (flash-decoding) for a few query rows over many keys, when
    // the (batch, head, query-block) workgroups are too few to keep every
    // thread busy: about 4 work items per thread, splits of >= 512 keys.
    resolved.kvSplits = 1;
    if (!options.unfusedReference && spec.qLen && *spec.qLen <= 16 &&
        spec.kvLen) {
      int64_t workgroups = mlir::attn::getWorkgroupCount(
          spec.batch.value_or(1), spec.qHeads, *spec.qLen, tiles);
      int64_t wanted = 4 * static_cast<int64_t>(threads);
      if (workgroups < wanted)
        resolved.kvSplits = std::clamp<int64_t>(
            (wanted + workgroups - 1) / workgroups, 1,
            std::max<int64_t>(1, *spec.kvLen / 512));
    }
  }
  if (options.unfusedReference)
    resolved.kvSplits = 1;
  return resolved;
}

llvm::ArrayRef<llvm::StringRef> detail::kernelLibrarySymbols() {
  // logf: the log-sum-exp's log.
  static const llvm::StringRef symbols[] = {"memcpy", "memmove", "memset",
                                            "malloc", "free",   "logf",
                                            "expf"};
  return symbols;
}

llvm::Expected<CPUObject>
detail::compileCPUObject(const AttentionSpec &spec,
                         const CompileOptions &compileOptions) {
  // The options passed validateCompileOptions (Runtime::getKernel).
  llvm::Expected<mlir::attn::CPUTargetInfo> level =
      resolveCPUTarget(compileOptions.cpuTarget);
  if (!level)
    return level.takeError();
  return compileCPUObject(spec, compileOptions, *level);
}

llvm::Expected<CPUObject>
detail::compileCPUObject(const AttentionSpec &spec,
                         const CompileOptions &compileOptions,
                         const mlir::attn::CPUTargetInfo &level) {
  // Runtime::getKernel resolved the tile sizes (resolveCPUCompileOptions).
  mlir::attn::AttentionTileSizes tiles = compileOptions.tileSizes
                                             ? *compileOptions.tileSizes
                                             : selectCPUTileSizes(spec, level);

  // MLIR: the kernel module through attn-cpu-pipeline.
  mlir::MLIRContext context(kernelDialectRegistry(),
                            mlir::MLIRContext::Threading::DISABLED);
  int64_t kvSplits = std::max<int64_t>(1, compileOptions.kvSplits);
  if (compileOptions.unfusedReference)
    kvSplits = 1;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      buildKernelModule(context, spec, /*workgroupRange=*/true, kvSplits);
  mlir::attn::CPUPipelineOptions options;
  options.tileSizes = llvm::ArrayRef<int64_t>(tiles.toArray());
  options.reference = compileOptions.unfusedReference;
  // The level decides the MLIR lowering (lanes, registers, bf16 dot
  // products, AMX) and, below, LLVM's target.
  options.cpu = level.name.str();
  mlir::PassManager pm(&context);
  if (mlir::failed(mlir::attn::buildCPUPipeline(pm, options)))
    return compileError("attn-cpu-pipeline: no CPU target '" + level.name +
                        "'");
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

  // LLVM: translate, specialise for the level, optimise, emit an object.
  auto tm = targetMachine(level);
  if (!tm)
    return tm.takeError();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      mlir::translateModuleToLLVMIR(*module, llvmContext, "attn_kernel");
  if (!llvmModule)
    return compileError("translation to LLVM IR failed");
  for (const char *name : {kKernelEntry, kMergeEntry})
    if (llvm::Function *ciface =
            llvmModule->getFunction(std::string("_mlir_ciface_") + name))
      addPackedWrapper(*llvmModule, *ciface, name);
  llvmModule->setDataLayout((*tm)->createDataLayout());
  llvmModule->setTargetTriple((*tm)->getTargetTriple());
  for (llvm::Function &f : *llvmModule) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", (*tm)->getTargetCPU());
    f.addFnAttr("target-features", (*tm)->getTargetFeatureString());
    f.addFnAttr("tune-cpu", llvm::sys::getHostCPUName());
    // The vector code is written for the level's full-width registers: do
    // not let the x86 backend split 512-bit vectors (prefer-256-bit on
    // recent cores).
    std::string bits = std::to_string(level.vectorBits());
    f.addFnAttr("prefer-vector-width", bits);
    f.addFnAttr("min-legal-vector-width", bits);
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
  object.tileSizes = tiles;
  if (compileOptions.unfusedReference)
    object.tileSizes = std::nullopt;
  object.kvSplits = kvSplits;
  object.cpuTarget = level.name.str();
  return object;
}

llvm::Expected<std::string>
detail::cpuTargetDescription(const mlir::attn::CPUTargetInfo &level) {
  // The host does not change: each level is described once.
  static std::mutex mutex;
  static llvm::StringMap<std::string> described;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = described.find(level.name);
  if (it != described.end())
    return it->second;
  auto tm = targetMachine(level);
  if (!tm)
    return tm.takeError();
  std::string description =
      "level=" + level.name.str() + " " + (*tm)->getTargetTriple().str() +
      " cpu=" + (*tm)->getTargetCPU().str() +
      " features=" + (*tm)->getTargetFeatureString().str() +
      " tune=" + llvm::sys::getHostCPUName().str() +
      " amx_granted=" + (hostAMXUsable() ? "1" : "0");
  described[level.name] = description;
  return description;
}

llvm::Expected<std::shared_ptr<Kernel>>
detail::loadCPUKernel(const AttentionSpec &spec, const CPUObject &object,
                      double compileMs, std::shared_ptr<WorkerPool> pool,
                      bool fromDiskCache) {
  auto start = std::chrono::steady_clock::now();
  initializeNativeTarget();
  // A kernel from the disk cache may hold tile instructions: the process
  // needs the AMX state before it runs.
  if (spec.dtype == DType::BF16)
    (void)hostAMXUsable();
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return compileError("JIT: " + llvm::toString(jit.takeError()));
  // The C library functions of kernelLibrarySymbols() from the process.
  auto generator =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
          (*jit)->getDataLayout().getGlobalPrefix(),
          [](const llvm::orc::SymbolStringPtr &name) {
            return llvm::is_contained(kernelLibrarySymbols(), *name);
          });
  if (!generator)
    return compileError("JIT: " + llvm::toString(generator.takeError()));
  (*jit)->getMainJITDylib().addGenerator(std::move(*generator));
  if (auto err = (*jit)->addObjectFile(llvm::MemoryBuffer::getMemBufferCopy(
          object.bytes, "attn_kernel.o")))
    return compileError("JIT: " + llvm::toString(std::move(err)));
  auto entry = (*jit)->lookup(std::string(kPackedPrefix) + kKernelEntry);
  if (!entry)
    return compileError("JIT: " + llvm::toString(entry.takeError()));
  PackedFn merge = nullptr;
  if (object.kvSplits > 1) {
    auto m = (*jit)->lookup(std::string(kPackedPrefix) + kMergeEntry);
    if (!m)
      return compileError("JIT: " + llvm::toString(m.takeError()));
    merge = m->toPtr<PackedFn>();
  }

  KernelInfo info;
  info.target = Target::CPU;
  info.tileSizes = object.tileSizes;
  info.entry = kKernelEntry;
  info.compileMs = compileMs;
  info.kvSplits = object.kvSplits;
  info.cpuTarget = object.cpuTarget;
  info.fromDiskCache = fromDiskCache;
  info.loadMs = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  return std::make_shared<CPUKernel>(spec, std::move(info), std::move(*jit),
                                     entry->toPtr<PackedFn>(), merge,
                                     object.kvSplits, std::move(pool));
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
