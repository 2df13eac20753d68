//===- Runtime.h - JIT runtime for attention kernels ------------*- C++ -*-===//
//
// Compiles attention kernels for a spec through the attn pipelines, caches
// them by spec and target, and runs them on caller-owned buffers.
//
//   attn::Runtime rt;                               // all cores
//   auto kernel = rt.getKernel(spec);               // compiles or hits cache
//   attn::AttentionArgs args;                       // q, k, v, out, ...
//   args.query = attn::TensorRef::contiguous(q, attn::DType::F32, {1, 8, 1024,
//   64});
//   ...
//   if (auto err = (*kernel)->run(args)) ...        // validated, then run
//
// Thread-safe: any number of threads may compile and run at once.
//
// Compiled CPU kernels are also stored on disk (RuntimeOptions::cacheDir,
// the environment variable ATTN_MLIR_CACHE_DIR, or by default the per-user
// ~/.cache/attn-mlir), so a later process loads them without running the
// compiler. ATTN_MLIR_CACHE_DIR="" or RuntimeOptions::diskCache = false
// turns that off.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_RUNTIME_RUNTIME_H
#define ATTN_RUNTIME_RUNTIME_H

#include "attn/Runtime/Spec.h"
#include "attn/Transforms/CPU/CPUTarget.h"
#include "attn/Transforms/TileSizes.h"

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace attn {

enum class Target { CPU, CUDA };
const char *targetName(Target target);

/// A caller-owned tensor of rank <= 4: sizes and strides are in elements.
/// The innermost stride must be 1 (a runtime error otherwise). For
/// Target::CUDA kernels `data` is a device pointer on device 0 (cuMemAlloc,
/// cudaMalloc or attn::cuda::DeviceBuffer); query, key, value and output must
/// then start on 16-byte boundaries with outer strides that are multiples of
/// 16 bytes.
struct TensorRef {
  void *data = nullptr;
  DType dtype = DType::F32;
  int rank = 0;
  std::array<int64_t, 4> shape{};
  std::array<int64_t, 4> strides{};

  /// A C-contiguous tensor.
  static TensorRef contiguous(void *data, DType dtype,
                              std::initializer_list<int64_t> shape);
  static TensorRef contiguous(void *data, DType dtype, int rank,
                              const int64_t *shape);
  bool empty() const { return data == nullptr; }
};

/// The operands of one run. `mask` is given when the spec has a tensor mask
/// ([B|1, Hq|1, Sq|1, Sk], bool or float per the spec), `kvLens` when it has a
/// key_padding mask ([B], i32 or i64), `lse` when the spec returns the
/// log-sum-exp ([B, Hq, Sq] f32). query [B, Hq, Sq, D], key [B, Hkv, Sk, D],
/// value [B, Hkv, Sk, Dv], output [B, Hq, Sq, Dv] in the spec's dtype.
/// `captures` are the inputs of the spec's score_mod / mask_mod, one per
/// AttentionSpec::captures() entry, in that order (e.g. q_document_ids
/// [B, Sq] and kv_document_ids [B, Sk] i32 for a document mask_mod).
struct AttentionArgs {
  TensorRef query, key, value, mask, kvLens, output, lse;
  std::vector<TensorRef> captures;
};

/// The error of Kernel::validate (and of Kernel::run on arguments that fail
/// validation): an operand is missing, superfluous, or does not match the
/// spec. Test with `err.isA<attn::ArgumentError>()`; the message names the
/// operand.
class ArgumentError : public llvm::ErrorInfo<ArgumentError, llvm::StringError> {
public:
  static char ID;
  explicit ArgumentError(const llvm::Twine &msg)
      : ErrorInfo(msg, llvm::inconvertibleErrorCode()) {}
};

/// Checks `args` against `spec` as Kernel::validate does: presence, dtypes,
/// ranks, shapes (every size in 0..2^31-1; dynamic sizes must agree between
/// operands), innermost strides, addressable extents. With `outputs` false
/// only the inputs (query, key, value, mask, kv_lens) are checked, so that a
/// caller can reject its inputs before it sizes the outputs from the spec.
/// Errors are ArgumentErrors naming the operand.
llvm::Error validateArguments(const AttentionSpec &spec,
                              const AttentionArgs &args, bool outputs = true);

/// What the compiler chose for a kernel.
struct KernelInfo {
  Target target = Target::CPU;
  /// Tile sizes (batch, heads, query, key); none for the unfused
  /// reference, which runs as one workgroup.
  std::optional<mlir::attn::AttentionTileSizes> tileSizes;
  /// Time spent compiling it, in ms (0 when it came from a cache).
  double compileMs = 0;
  /// Time spent loading the object code into the JIT, in ms.
  double loadMs = 0;
  /// True when the object code came from the on-disk cache (compileMs is
  /// then 0: the compiler did not run).
  bool fromDiskCache = false;
  /// Name of the entry point in the compiled module.
  std::string entry;
  /// Key splits (1: no split-KV).
  int64_t kvSplits = 1;
  /// CPU only: the CPU target level it was compiled for (CompileOptions::
  /// cpuTarget resolved, e.g. "x86-64-v4-bf16").
  std::string cpuTarget;
  /// CUDA only: the chip the kernel was compiled for, threads per block
  /// (x, y, z) and dynamic shared memory per block in bytes.
  std::string chip;
  std::array<int64_t, 3> block{};
  int64_t sharedBytes = 0;
};

/// A compiled kernel for one spec and target.
class Kernel {
public:
  virtual ~Kernel();
  const AttentionSpec &spec() const { return spec_; }
  const KernelInfo &info() const { return info_; }

  /// Checks `args` against the spec: presence, dtypes, ranks, shapes
  /// (dynamic sizes must agree between operands), innermost strides. The
  /// error names the operand, e.g. "key: shape [1, 8, 100, 64] does not
  /// match [1, 8, 128, 64]".
  llvm::Error validate(const AttentionArgs &args) const;

  /// Validates, then runs the kernel (on the runtime's threads for the CPU;
  /// for CUDA on device 0, returning when the kernel has finished).
  llvm::Error run(const AttentionArgs &args) const;

protected:
  Kernel(AttentionSpec spec, KernelInfo info)
      : spec_(std::move(spec)), info_(std::move(info)) {}
  /// Runs on arguments that passed validate(); sizes resolved.
  virtual llvm::Error launch(const AttentionArgs &args, int64_t batch,
                             int64_t qLen, int64_t kvLen) const = 0;

private:
  AttentionSpec spec_;
  KernelInfo info_;
};

/// Per-kernel compiler choices; the defaults let the compiler decide.
struct CompileOptions {
  /// Tile sizes (batch, heads, query, key) for attn-tile-attention; none
  /// means the compiler's choice for the spec and target (TileSelection.h).
  /// Checked by validateCompileOptions (mlir::attn::verifyTileSizes).
  std::optional<mlir::attn::AttentionTileSizes> tileSizes;
  /// Compile the unfused reference lowering (convert-attn-to-linalg: the
  /// whole score matrix in memory, one thread) instead of the flash path.
  /// For benchmarks and cross-checks only.
  bool unfusedReference = false;
  /// Split-KV (flash-decoding): the keys are cut into this many ranges that
  /// run in parallel and are merged through their log-sum-exp; 0 means the
  /// compiler's choice (splits for few query rows and few workgroups).
  int64_t kvSplits = 0;
  /// Target::CUDA: the chip to compile for, "sm_80" or "sm_90"; empty means
  /// the device's (sm_90 when compiling without a device). Part of the cache
  /// key.
  std::string chip;
  /// Target::CPU: the CPU target level to compile for
  /// (mlir::attn::CPUTargetInfo): "x86-64-v3" (AVX2), "x86-64-v4"
  /// (AVX-512), "x86-64-v4-bf16" (+ AVX512-BF16) or "x86-64-v4-amx" (+ AMX).
  /// Empty means the highest level this CPU has (hostCPUTarget()). A level
  /// the CPU cannot run is refused by validateCompileOptions: "options:
  /// cpu_target 'x86-64-v4' needs avx512f, which this CPU lacks". Part of the
  /// cache key, in memory and on disk.
  std::string cpuTarget;
};

/// The CPU target level kernels are compiled for by default: the highest
/// level of mlir::attn::CPUTargetInfo::levels() this CPU has, AMX only where
/// the OS grants this process the AMX tile state. Its name is what
/// CompileOptions::cpuTarget takes.
const mlir::attn::CPUTargetInfo &hostCPUTarget();

/// The CPU target levels this CPU can run, lowest first (x86-64-v3 first on
/// every supported CPU): the values CompileOptions::cpuTarget accepts here.
std::vector<mlir::attn::CPUTargetInfo> runnableCPUTargets();

/// The CPU's model name (/proc/cpuinfo's "model name", else LLVM's name of
/// the host CPU), for reports.
std::string hostCPUModel();

/// The largest query or key tile size a CompileOptions may ask for.
constexpr int64_t kMaxTileRows = mlir::attn::kMaxTileRows;
/// The most key splits a CompileOptions may ask for.
constexpr int64_t kMaxKvSplits = 256;

/// Checks `options` for `spec` and `target` before anything is compiled:
/// tile sizes as mlir::attn::verifyTileSizes checks them for the target (the
/// check attn-tile-attention makes: positive, query and key tiles of at most
/// kMaxTileRows, within the CPU code generator's stack scratch on
/// Target::CPU), and kv_splits in
/// 0..kMaxKvSplits. Errors start with "options: " and name the option.
/// Runtime::getKernel calls it.
llvm::Error validateCompileOptions(const AttentionSpec &spec, Target target,
                                   const CompileOptions &options);

/// The environment variable that names the on-disk kernel cache directory
/// when RuntimeOptions::cacheDir is empty; set to the empty string, it turns
/// the default disk cache off.
constexpr const char *kCacheDirEnvVar = "ATTN_MLIR_CACHE_DIR";

/// The per-user default of the disk cache directory (XDG Base Directory
/// spec): $XDG_CACHE_HOME/attn-mlir when XDG_CACHE_HOME is an absolute path,
/// else $HOME/.cache/attn-mlir; "" when neither is known.
std::string defaultCacheDirectory();

/// Worker threads a Runtime accepts per core of the machine.
constexpr unsigned kMaxThreadsPerCore = 4;
/// The most worker threads a Runtime accepts: kMaxThreadsPerCore per core.
unsigned maxRuntimeThreads();

/// RuntimeOptions::maxCachedKernels's default.
constexpr size_t kDefaultMaxCachedKernels = 256;

struct RuntimeOptions {
  /// Worker threads for CPU kernels; 0 means every core of the machine. More
  /// than maxRuntimeThreads() is refused: Runtime::create returns
  /// "threads: N is more than 4 per core of this machine (at most M)", and
  /// so does every getKernel of a Runtime constructed directly.
  unsigned numThreads = 0;
  /// Directory of the on-disk kernel cache (CPU kernels). Empty means the
  /// directory named by ATTN_MLIR_CACHE_DIR when that is set (no disk cache
  /// when it is set to ""), else defaultCacheDirectory() (silently none
  /// when that cannot be used). The directory is created with mode 0700
  /// (and missing parents likewise); an existing one must be owned by the
  /// effective user and be writable by it alone (not by its group nor by
  /// everyone), or it is refused.
  std::string cacheDir;
  /// False disables the disk cache whatever cacheDir and the environment
  /// say.
  bool diskCache = true;
  /// The most compiled kernels the in-memory cache keeps (about 0.3 MiB of
  /// code and JIT state each); beyond it the least recently used is
  /// dropped (and compiled again, or loaded from the disk cache, when
  /// asked for again). 0: no bound.
  size_t maxCachedKernels = kDefaultMaxCachedKernels;
};

/// Counters of a Runtime's kernel cache, since it was created.
struct RuntimeStats {
  /// Kernels compiled (the compiler ran).
  uint64_t compiles = 0;
  /// Kernels loaded from the disk cache without compiling.
  uint64_t diskHits = 0;
  /// Disk lookups that found no usable entry (absent or rejected).
  uint64_t diskMisses = 0;
  /// Entries that existed but were rejected: truncated, corrupt (checksum),
  /// another format or key, a symlink, not a regular file, or not owned by
  /// the user. They are rebuilt and replaced.
  uint64_t diskRejected = 0;
  /// Entries written, and writes that failed (a failed write is not an
  /// error of getKernel: the kernel is still returned).
  uint64_t diskWrites = 0, diskWriteFailures = 0;
  /// Why the last disk write failed ("" when none did), e.g. "cache: cannot
  /// create a temporary file in '/ro': Permission denied".
  std::string lastDiskWriteError;
};

/// The compiler's identity: attn-mlir version, source revision and LLVM
/// version, e.g. "attn-mlir 0.1.0 (git 1a2b3c4...) LLVM 22.1.8". It is part
/// of every disk cache key, so a rebuilt compiler never loads stale kernels.
const char *compilerVersion();

/// Compiles, caches and runs kernels.
class Runtime {
public:
  /// When the disk cache directory cannot be used (refused or not
  /// creatable), getKernel returns that error; Runtime::create reports it
  /// at once instead.
  explicit Runtime(RuntimeOptions options = {});
  ~Runtime();

  /// A runtime, or the error of opening its disk cache directory, e.g.
  /// "cache: directory '/tmp/x' is world-writable (mode 0777): refusing to
  /// use it".
  static llvm::Expected<std::unique_ptr<Runtime>>
  create(RuntimeOptions options = {});
  Runtime(const Runtime &) = delete;
  Runtime &operator=(const Runtime &) = delete;

  /// Returns the cached kernel for (spec, target), compiling it on a miss.
  /// Concurrent requests for the same spec compile it once. Errors: the
  /// spec is invalid, the target is unavailable (Target::CUDA without the
  /// driver or a device: "no CUDA device: ..."), or compilation failed.
  llvm::Expected<std::shared_ptr<Kernel>>
  getKernel(const AttentionSpec &spec, Target target = Target::CPU,
            const CompileOptions &options = {});

  /// Number of kernels in the in-memory cache.
  size_t cacheSize() const;
  /// Empties the in-memory cache (kernels being compiled stay; kernels
  /// handed out stay alive with their holders; the disk cache is kept).
  void clearCache();
  unsigned numThreads() const;
  /// The disk cache directory in use ("" when there is none).
  std::string cacheDirectory() const;
  /// The counters of the kernel caches.
  RuntimeStats stats() const;

  class Impl;

private:
  std::unique_ptr<Impl> impl;
};

} // namespace attn

#endif // ATTN_RUNTIME_RUNTIME_H
