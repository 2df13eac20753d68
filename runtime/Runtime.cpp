//===- Runtime.cpp - JIT runtime for attention kernels --------------------===//

#include "attn/Runtime/Runtime.h"
#include "DiskCache.h"
#include "KernelBuilder.h"
#include "RuntimeInternal.h"

#include "attn/Transforms/Transforms.h"

#include "mlir/InitAllPasses.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Threading.h"

#include <chrono>
#include <cstdlib>
#include <future>
#include <list>
#include <map>
#include <mutex>

using namespace attn;

const char *attn::targetName(Target target) {
  return target == Target::CPU ? "cpu" : "cuda";
}

TensorRef TensorRef::contiguous(void *data, DType dtype, int rank,
                                const int64_t *shape) {
  TensorRef t;
  t.data = data;
  t.dtype = dtype;
  t.rank = rank;
  int64_t stride = 1;
  for (int i = rank - 1; i >= 0; --i) {
    t.shape[i] = shape[i];
    t.strides[i] = stride;
    stride *= shape[i];
  }
  return t;
}

TensorRef TensorRef::contiguous(void *data, DType dtype,
                                std::initializer_list<int64_t> shape) {
  return contiguous(data, dtype, static_cast<int>(shape.size()),
                    shape.begin());
}

Kernel::~Kernel() = default;

static std::string shapeString(const int64_t *shape, int rank) {
  return formatShape(llvm::ArrayRef<int64_t>(shape, rank));
}

char ArgumentError::ID = 0;

static llvm::Error argError(const llvm::Twine &msg) {
  return llvm::make_error<ArgumentError>(msg);
}

static llvm::Error runtimeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

namespace {
/// Expected operand layout for validation (no heap allocation: run()
/// validates on every call).
struct Expect {
  const char *name;
  const TensorRef *ref;
  DType dtype;
  llvm::SmallVector<int64_t, 4> shape;
};
} // namespace

/// Bytes from the first to one past the last element of `t` (0 when it has
/// no element), or nullopt when that overflows int64.
static std::optional<int64_t> byteExtent(const TensorRef &t) {
  int64_t last = 0, term;
  bool empty = false;
  for (int i = 0; i < t.rank; ++i) {
    empty |= t.shape[i] == 0;
    if (t.shape[i] > 0 &&
        (__builtin_mul_overflow(t.shape[i] - 1, t.strides[i], &term) ||
         __builtin_add_overflow(last, term, &last)))
      return std::nullopt;
  }
  int64_t bytes;
  if (__builtin_add_overflow(last, 1, &last) ||
      __builtin_mul_overflow(last, dtypeSize(t.dtype), &bytes))
    return std::nullopt;
  return empty ? 0 : bytes;
}

/// Whether two different elements of `t` may share an address: with the
/// dimensions of size > 1 sorted by stride, each stride must exceed the
/// farthest offset the smaller ones reach (a zero stride, as expand() gives,
/// or interleaved strides fail). Conservative: a few exotic non-overlapping
/// layouts are refused too.
static bool overlapsItself(const TensorRef &t) {
  llvm::SmallVector<std::pair<int64_t, int64_t>, 4> dims; // (stride, size)
  for (int i = 0; i < t.rank; ++i) {
    if (t.shape[i] == 0)
      return false; // no element
    if (t.shape[i] > 1)
      dims.push_back({t.strides[i], t.shape[i]});
  }
  llvm::sort(dims);
  int64_t reach = 0;
  for (auto [stride, size] : dims) {
    if (stride <= reach)
      return true;
    reach += stride * (size - 1);
  }
  return false;
}

llvm::Error Kernel::validate(const AttentionArgs &args) const {
  return validateArguments(spec(), args);
}

llvm::Error attn::validateArguments(const AttentionSpec &s,
                                    const AttentionArgs &args, bool outputs) {
  // Resolve dynamic sizes from query and key.
  if (args.query.empty() || args.key.empty() || args.value.empty() ||
      (outputs && args.output.empty()))
    return argError(outputs ? "query, key, value and output must be given"
                            : "query, key and value must be given");
  if (args.query.rank != 4 || args.key.rank != 4)
    return argError(args.query.rank != 4 ? "query: expected rank 4"
                                         : "key: expected rank 4");
  // Every size of every operand: 0 <= size < 2^31, as in the spec.
  for (auto [name, t] :
       {std::pair{"query", &args.query}, {"key", &args.key},
        {"value", &args.value}, {"mask", &args.mask},
        {"kv_lens", &args.kvLens}, {"output", &args.output},
        {"lse", &args.lse}}) {
    if (t->empty())
      continue;
    if (t->rank < 1 || t->rank > 4)
      return argError(llvm::Twine(name) + ": rank " + llvm::Twine(t->rank) +
                      " is outside 1..4");
    for (int i = 0; i < t->rank; ++i)
      if (t->shape[i] < 0 || t->shape[i] > INT32_MAX)
        return argError(llvm::Twine(name) + ": shape " +
                        shapeString(t->shape.data(), t->rank) +
                        " has a size outside 0..2^31-1");
  }
  int64_t batch = s.batch.value_or(args.query.shape[0]);
  int64_t qLen = s.qLen.value_or(args.query.shape[2]);
  int64_t kvLen = s.kvLen.value_or(args.key.shape[2]);

  llvm::SmallVector<Expect, 7> expects = {
      {"query", &args.query, s.dtype, {batch, s.qHeads, qLen, s.headDim}},
      {"key", &args.key, s.dtype, {batch, s.kvHeads, kvLen, s.headDim}},
      {"value", &args.value, s.dtype, {batch, s.kvHeads, kvLen, s.vHeadDim}},
  };
  if (outputs)
    expects.push_back(
        {"output", &args.output, s.dtype, {batch, s.qHeads, qLen, s.vHeadDim}});
  const MaskSpec *tensorMask = s.findMask(MaskSpec::Kind::Tensor);
  if (tensorMask)
    expects.push_back({"mask",
                       &args.mask,
                       tensorMask->dtype,
                       {tensorMask->batchBroadcast ? 1 : batch,
                        tensorMask->headBroadcast ? 1 : s.qHeads,
                        tensorMask->queryBroadcast ? 1 : qLen, kvLen}});
  else if (!args.mask.empty())
    return argError("mask: given, but the spec has no tensor mask");
  const MaskSpec *padding = s.findMask(MaskSpec::Kind::KeyPadding);
  if (padding)
    expects.push_back({"kv_lens", &args.kvLens, padding->dtype, {batch}});
  else if (!args.kvLens.empty())
    return argError("kv_lens: given, but the spec has no key_padding mask");
  std::vector<CaptureSpec> captures = s.captures();
  if (args.captures.size() != captures.size()) {
    std::string why =
        captures.empty()
            ? "the spec has no score_mod or mask_mod that reads any"
            : std::string("the spec's ") +
                  (s.maskMod ? "mask_mod" : "score_mod") + " reads " +
                  std::to_string(captures.size());
    return argError("captures: " + llvm::Twine(args.captures.size()) +
                    " given, but " + why);
  }
  for (auto [c, ref] : llvm::zip(captures, args.captures)) {
    std::vector<int64_t> shape = c.shapeAt(batch, qLen, kvLen);
    expects.push_back(
        {c.name.c_str(), &ref, c.dtype,
         llvm::SmallVector<int64_t, 4>(shape.begin(), shape.end())});
  }
  if (s.returnLse && outputs)
    expects.push_back({"lse", &args.lse, DType::F32, {batch, s.qHeads, qLen}});
  else if (!s.returnLse && !args.lse.empty())
    return argError("lse: given, but the spec does not return the "
                    "log-sum-exp");

  for (const Expect &e : expects) {
    const TensorRef &t = *e.ref;
    if (t.empty())
      return argError(llvm::Twine(e.name) + ": missing");
    if (t.dtype != e.dtype)
      return argError(llvm::Twine(e.name) + ": dtype " + dtypeName(t.dtype) +
                      " does not match the spec's " + dtypeName(e.dtype));
    int rank = static_cast<int>(e.shape.size());
    if (t.rank != rank)
      return argError(llvm::Twine(e.name) + ": rank " + llvm::Twine(t.rank) +
                      " does not match the expected rank " +
                      llvm::Twine(rank));
    for (int i = 0; i < rank; ++i)
      if (t.shape[i] != e.shape[i])
        return argError(llvm::Twine(e.name) + ": shape " +
                        shapeString(t.shape.data(), rank) +
                        " does not match " +
                        shapeString(e.shape.data(), rank));
    if (rank > 0 && t.strides[rank - 1] != 1) // a rank-0 capture has none
      return argError(llvm::Twine(e.name) +
                      ": the innermost stride must be 1, got " +
                      llvm::Twine(t.strides[rank - 1]));
    for (int i = 0; i < rank; ++i)
      if (t.strides[i] < 0)
        return argError(llvm::Twine(e.name) + ": negative strides are not "
                                              "supported");
    // The last element's offset (in bytes) must be addressable.
    if (!byteExtent(t))
      return argError(llvm::Twine(e.name) + ": strides overflow");
  }
  // The outputs are written while the inputs are read: no output may share
  // memory with any other operand (e.g. out= aliasing key or value), nor
  // with itself (threads would race on the shared elements).
  if (outputs) {
    for (const Expect &w : expects)
      if ((w.ref == &args.output || w.ref == &args.lse) &&
          overlapsItself(*w.ref))
        return argError(llvm::Twine(w.name) +
                        ": overlaps itself (strides " +
                        shapeString(w.ref->strides.data(), w.ref->rank) +
                        " for shape " +
                        shapeString(w.ref->shape.data(), w.ref->rank) +
                        " put two elements at one address, e.g. an "
                        "expand()ed tensor); outputs must not alias any "
                        "operand");
    auto span = [](const TensorRef &t) {
      auto begin = reinterpret_cast<uintptr_t>(t.data);
      return std::pair<uintptr_t, uintptr_t>{
          begin, begin + static_cast<uintptr_t>(*byteExtent(t))};
    };
    for (const Expect &w : expects) {
      if (w.ref != &args.output && w.ref != &args.lse)
        continue;
      auto [wb, we] = span(*w.ref);
      for (const Expect &o : expects) {
        if (o.ref == w.ref)
          continue;
        auto [ob, oe] = span(*o.ref);
        if (wb < we && ob < oe && wb < oe && ob < we)
          return argError(llvm::Twine(w.name) + ": shares memory with " +
                          o.name + " (outputs must not alias any operand)");
      }
    }
  }
  return llvm::Error::success();
}

llvm::Error Kernel::run(const AttentionArgs &args) const {
  if (auto err = validate(args))
    return err;
  const AttentionSpec &s = spec();
  return launch(args, s.batch.value_or(args.query.shape[0]),
                s.qLen.value_or(args.query.shape[2]),
                s.kvLen.value_or(args.key.shape[2]));
}

//===----------------------------------------------------------------------===//
// Runtime
//===----------------------------------------------------------------------===//

namespace {
struct CacheEntry {
  std::shared_ptr<Kernel> kernel;
  std::string error;
};

/// A CPU kernel for a spec whose q_len is a run-time value: one compiled
/// kernel with the compiler's (prefill) tiles and one with the tiles it
/// chooses for a single query row (the decode scheme: keys on the lanes,
/// a whole GQA group per workgroup), picked per call by q_len. Without it a
/// decode step of a q_len-dynamic kernel runs 64-row tiles on one row.
class PrefillDecodeKernel final : public Kernel {
public:
  PrefillDecodeKernel(std::shared_ptr<Kernel> prefill,
                      std::shared_ptr<Kernel> decode)
      : Kernel(prefill->spec(), prefill->info()), prefill(std::move(prefill)),
        decode(std::move(decode)) {}

protected:
  llvm::Error launch(const AttentionArgs &args, int64_t, int64_t qLen,
                     int64_t) const override {
    return (qLen <= mlir::attn::kMaxCPUDecodeTileRows ? decode : prefill)
        ->run(args);
  }

private:
  std::shared_ptr<Kernel> prefill, decode;
};
} // namespace

class Runtime::Impl {
public:
  explicit Impl(const RuntimeOptions &options)
      : pool(std::make_shared<detail::WorkerPool>(
            options.numThreads <= maxRuntimeThreads() ? options.numThreads
                                                      : 1)),
        maxKernels(options.maxCachedKernels) {
    if (options.numThreads > maxRuntimeThreads()) {
      // Refused (a pool of 2^31 threads never starts): reported by create()
      // and by every getKernel.
      optionsError = "threads: " + std::to_string(options.numThreads) +
                     " is more than " + std::to_string(kMaxThreadsPerCore) +
                     " per core of this machine (at most " +
                     std::to_string(maxRuntimeThreads()) + ")";
      return;
    }
    if (!options.diskCache)
      return;
    std::string dir = options.cacheDir;
    bool perUserDefault = false;
    if (dir.empty()) {
      if (const char *env = std::getenv(kCacheDirEnvVar)) {
        dir = env; // set but empty: no disk cache
      } else {
        dir = defaultCacheDirectory();
        perUserDefault = true;
      }
    }
    if (dir.empty())
      return;
    auto cache = detail::DiskCache::open(dir);
    if (cache)
      disk = std::move(*cache);
    else if (perUserDefault)
      // The default is a convenience: a home without a usable cache folder
      // (read-only, foreign owner) compiles in every process instead.
      llvm::consumeError(cache.takeError());
    else
      diskError = llvm::toString(cache.takeError());
  }

  /// Compiles a CPU kernel, or loads it from the disk cache.
  llvm::Expected<std::shared_ptr<Kernel>>
  getCPUKernel(const AttentionSpec &spec, const CompileOptions &options);

  std::shared_ptr<detail::WorkerPool> pool;
  std::unique_ptr<detail::DiskCache> disk;
  /// Why the disk cache directory was refused ("" when it was not).
  std::string diskError;
  /// Why the options were refused ("" when they were not).
  std::string optionsError;
  mutable std::mutex mutex;
  /// The in-memory cache: each key's (possibly in-flight) kernel and its
  /// place in `uses`, most recently used first.
  struct Slot {
    std::shared_future<CacheEntry> future;
    std::list<std::string>::iterator use;
  };
  std::map<std::string, Slot> cache;
  std::list<std::string> uses;
  /// RuntimeOptions::maxCachedKernels (0: no bound).
  size_t maxKernels = 0;

  /// Drops the least recently used compiled kernels beyond maxKernels (and
  /// all of them with `all`); kernels still being compiled stay. Callers
  /// hold `mutex`. Kernels handed out stay alive with their holders.
  void evict(bool all = false) {
    for (auto use = uses.end(); use != uses.begin();) {
      if (!all && (maxKernels == 0 || cache.size() <= maxKernels))
        return;
      --use;
      auto it = cache.find(*use);
      if (it->second.future.wait_for(std::chrono::seconds(0)) !=
          std::future_status::ready)
        continue;
      cache.erase(it);
      use = uses.erase(use);
    }
  }
  RuntimeStats stats; // guarded by mutex
};

llvm::Expected<std::shared_ptr<Kernel>>
Runtime::Impl::getCPUKernel(const AttentionSpec &spec,
                            const CompileOptions &options) {
  std::string key;
  // The unfused reference (a benchmark baseline) is never cached on disk.
  bool useDisk = disk && !options.unfusedReference;
  if (useDisk) {
    llvm::Expected<std::string> keyOrErr = detail::cpuCacheKey(spec, options);
    if (!keyOrErr)
      return keyOrErr.takeError();
    key = std::move(*keyOrErr);
    detail::DiskCache::LoadStatus status;
    std::optional<detail::CPUObject> object = disk->load(key, status);
    if (object)
      object->cpuTarget = options.cpuTarget; // the key names it
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (object)
        ++stats.diskHits;
      else
        ++stats.diskMisses;
      if (status == detail::DiskCache::LoadStatus::Rejected)
        ++stats.diskRejected;
    }
    if (object) {
      auto kernel = detail::loadCPUKernel(spec, *object, /*compileMs=*/0, pool,
                                          /*fromDiskCache=*/true);
      if (kernel)
        return kernel;
      // An entry that passed every check but does not load (e.g. an object
      // the JIT cannot link) is rebuilt like a corrupt one.
      llvm::consumeError(kernel.takeError());
      std::lock_guard<std::mutex> lock(mutex);
      --stats.diskHits;
      ++stats.diskMisses;
      ++stats.diskRejected;
    }
  }

  auto start = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mutex);
    ++stats.compiles;
  }
  llvm::Expected<detail::CPUObject> object =
      detail::compileCPUObject(spec, options);
  if (!object)
    return object.takeError();
  double ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - start)
                  .count();
  if (useDisk) {
    llvm::Error err = disk->store(key, *object);
    std::lock_guard<std::mutex> lock(mutex);
    if (err) {
      stats.lastDiskWriteError = llvm::toString(std::move(err));
      ++stats.diskWriteFailures;
    } else {
      ++stats.diskWrites;
    }
  }
  return detail::loadCPUKernel(spec, *object, ms, pool);
}

llvm::Error attn::validateCompileOptions(const AttentionSpec &spec,
                                         Target target,
                                         const CompileOptions &options) {
  auto optionsError = [](const llvm::Twine &msg) {
    return runtimeError("options: " + msg);
  };
  if (options.tileSizes) {
    // The check attn-tile-attention makes of its tile-sizes (one owner).
    mlir::attn::TileTarget tileTarget =
        target == Target::CUDA ? mlir::attn::TileTarget::CUDA
        : options.unfusedReference ? mlir::attn::TileTarget::Generic
                                   : mlir::attn::TileTarget::CPU;
    std::string error = mlir::attn::verifyTileSizes(
        *options.tileSizes, tileTarget, spec.headDim, spec.vHeadDim,
        spec.dtype == DType::BF16);
    if (!error.empty())
      return optionsError(error);
  }
  if (target == Target::CPU)
    if (llvm::Expected<mlir::attn::CPUTargetInfo> level =
            detail::resolveCPUTarget(options.cpuTarget);
        !level)
      return level.takeError();
  if (options.kvSplits < 0 || options.kvSplits > kMaxKvSplits)
    return optionsError("kv_splits must be in 0.." + llvm::Twine(kMaxKvSplits) +
                        ", got " + llvm::Twine(options.kvSplits));
  const char *mod = spec.scoreMod ? "score_mod" : "mask_mod";
  if (spec.hasModRegions() && target == Target::CUDA)
    return optionsError(llvm::Twine("a ") + mod +
                        " is not supported on CUDA yet");
  return llvm::Error::success();
}

unsigned attn::maxRuntimeThreads() {
  return kMaxThreadsPerCore *
         std::max(1u, llvm::hardware_concurrency().compute_thread_count());
}

Runtime::Runtime(RuntimeOptions options)
    : impl(std::make_unique<Impl>(options)) {
  // The pipelines parse upstream pass names: register them once.
  static std::once_flag registered;
  std::call_once(registered, [] { mlir::registerAllPasses(); });
}

Runtime::~Runtime() = default;

llvm::Expected<std::unique_ptr<Runtime>>
Runtime::create(RuntimeOptions options) {
  auto runtime = std::make_unique<Runtime>(std::move(options));
  if (!runtime->impl->optionsError.empty())
    return runtimeError(runtime->impl->optionsError);
  if (!runtime->impl->diskError.empty())
    return runtimeError(runtime->impl->diskError);
  return runtime;
}

std::string attn::defaultCacheDirectory() {
  auto absolute = [](const char *v) { return v && v[0] == '/'; };
  const char *xdg = std::getenv("XDG_CACHE_HOME");
  if (absolute(xdg))
    return std::string(xdg) + "/attn-mlir";
  const char *home = std::getenv("HOME");
  if (absolute(home))
    return std::string(home) + "/.cache/attn-mlir";
  return "";
}

std::string Runtime::cacheDirectory() const {
  return impl->disk ? impl->disk->directory() : std::string();
}

RuntimeStats Runtime::stats() const {
  std::lock_guard<std::mutex> lock(impl->mutex);
  return impl->stats;
}

size_t Runtime::cacheSize() const {
  std::lock_guard<std::mutex> lock(impl->mutex);
  return impl->cache.size();
}

void Runtime::clearCache() {
  std::lock_guard<std::mutex> lock(impl->mutex);
  impl->evict(/*all=*/true);
}

unsigned Runtime::numThreads() const { return impl->pool->numThreads(); }

llvm::Expected<std::shared_ptr<Kernel>>
Runtime::getKernel(const AttentionSpec &spec, Target target,
                   const CompileOptions &requested) {
  // Checked once, before the compiler's choices are filled in from them.
  if (auto err = spec.validate())
    return std::move(err);
  if (auto err = validateCompileOptions(spec, target, requested))
    return std::move(err);
  CompileOptions options =
      target == Target::CPU
          ? detail::resolveCPUCompileOptions(spec, requested, numThreads())
          : requested;
  // A run-time q_len with every choice left to the compiler: prefill and
  // decode kernels behind one handle (PrefillDecodeKernel).
  bool prefillDecode =
      target == Target::CPU && !spec.qLen && !requested.unfusedReference &&
      requested.kvSplits == 0 && !requested.tileSizes;
  std::string key = std::string(targetName(target)) + ":" + spec.toJSON();
  if (prefillDecode)
    key += ":prefill-decode";
  if (options.tileSizes)
    for (int64_t t : options.tileSizes->toArray())
      key += ":" + std::to_string(t);
  key += ":splits=" + std::to_string(options.kvSplits);
  if (options.unfusedReference)
    key += ":reference";
  if (target == Target::CPU)
    key += ":cpu=" + options.cpuTarget;
  if (target == Target::CUDA)
    key += ":" + (options.chip.empty() ? std::string("device") : options.chip);
  std::promise<CacheEntry> promise;
  std::shared_future<CacheEntry> future;
  bool compileHere = false;
  {
    std::lock_guard<std::mutex> lock(impl->mutex);
    auto it = impl->cache.find(key);
    if (it != impl->cache.end()) {
      future = it->second.future;
      impl->uses.splice(impl->uses.begin(), impl->uses, it->second.use);
    } else {
      future = promise.get_future().share();
      impl->uses.push_front(key);
      impl->cache.emplace(key, Impl::Slot{future, impl->uses.begin()});
      impl->evict();
      compileHere = true;
    }
  }
  if (compileHere) {
    CacheEntry entry;
    llvm::Expected<std::shared_ptr<Kernel>> kernel = [&]()
        -> llvm::Expected<std::shared_ptr<Kernel>> {
      if (!impl->optionsError.empty())
        return runtimeError(impl->optionsError);
      if (!impl->diskError.empty())
        return runtimeError(impl->diskError);
      if (prefillDecode) {
        // The two kernels are cached (and counted) on their own.
        CompileOptions prefillOptions = options;
        auto prefill = getKernel(spec, target, prefillOptions);
        if (!prefill)
          return prefill.takeError();
        AttentionSpec oneRow = spec;
        oneRow.qLen = 1;
        CompileOptions decodeOptions = requested;
        mlir::attn::AttentionTileSizes tiles =
            detail::chooseCPUTileSizes(oneRow, requested);
        decodeOptions.tileSizes = tiles;
        decodeOptions.kvSplits = 1;
        auto decode = getKernel(spec, target, decodeOptions);
        if (!decode)
          return decode.takeError();
        return std::shared_ptr<Kernel>(
            std::make_shared<PrefillDecodeKernel>(*prefill, *decode));
      }
      if (target == Target::CPU)
        return impl->getCPUKernel(spec, options);
      return detail::compileCUDAKernel(spec, options);
    }();
    if (kernel)
      entry.kernel = *kernel;
    else
      entry.error = llvm::toString(kernel.takeError());
    if (!entry.kernel) {
      // Do not cache failures: a later call may succeed (e.g. a device).
      std::lock_guard<std::mutex> lock(impl->mutex);
      auto it = impl->cache.find(key);
      impl->uses.erase(it->second.use);
      impl->cache.erase(it);
    }
    promise.set_value(entry);
  }
  const CacheEntry &entry = future.get();
  if (!entry.kernel)
    return runtimeError(entry.error);
  return entry.kernel;
}
