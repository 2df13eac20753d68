//===- attn-run.cpp - compile and run one attention spec on .npy files ----===//
//
//   attn-run SPEC.json --q Q.npy --k K.npy --v V.npy [--mask M.npy]
//            [--kv-lens L.npy] [--capture NAME=FILE.npy ...]
//            [-o OUT.npy] [--lse LSE.npy]
//            [--target cpu|cuda] [--chip sm_80|sm_90] [--repeat N]
//            [--threads N] [--tile-sizes B,H,Q,K] [--expect R.npy [--atol T]]
//            [--cache-dir DIR]
//   attn-run SPEC.json --target cuda [--chip sm_80|sm_90]
//            [--emit-ptx K.ptx] [--emit-cubin K.cubin]
//   attn-run SPEC.json --compile-only [--cpu-target L] [--cache-dir DIR]
//
// Prints one JSON line: compile_ms, run_ms (median of the repeats), gflops,
// cache ("hit" when the kernel came from the on-disk cache of --cache-dir,
// $ATTN_MLIR_CACHE_DIR or the per-user ~/.cache/attn-mlir, "miss" when it
// was compiled and stored there, "off" without a cache directory), peak_rss_mib
// (the process's peak resident memory, VmHWM of /proc/self/status, where Linux
// provides it) and max_abs_err when --expect is given. With --emit-ptx /
// --emit-cubin it only compiles (no device and no input arrays needed), writes
// the kernel and prints its entry, grid, block, shared_bytes (and, for a cubin,
// the ptxas figures). With --compile-only it compiles the kernel into the disk
// cache (or finds it there) without input arrays or a run, and prints
// compile_ms, cache and the kernel's target and tile sizes: a way to fill the
// cache before deployment. With --target cuda the arrays are copied to device 0
// and back. Exit codes: 0 success; 2 bad input (one line on stderr naming the
// problem, nothing written); 1 an internal failure (compilation, no CUDA
// device, writing); 3 max_abs_err above
// --atol (by default 2e-5 * (1 + max|expected|)). Output paths are checked
// before anything runs and written at the end, all or none: regular files
// atomically (a temporary file renamed over them), devices, FIFOs and
// symlinks in place.
//
//===----------------------------------------------------------------------===//

#include "attn/Runtime/CUDA.h"
#include "attn/Runtime/Float16.h"
#include "attn/Runtime/Npy.h"
#include "attn/Runtime/Runtime.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>

using namespace attn;

namespace {

/// The peak resident set of this process in MiB (VmHWM of /proc/self/status),
/// or nullopt where that file is absent. VmHWM belongs to this address space
/// alone, unlike getrusage's ru_maxrss, which also counts the parent's pages
/// that a fork or vfork before exec held.
std::optional<double> peakResidentMiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stod(line.substr(6)) / 1024.0; // the field is in kB
  return std::nullopt;
}

/// An error that ends the run with a one-line message.
struct Failure {
  int code;
  std::string message;
};

[[noreturn]] void fail(int code, const std::string &message) {
  throw Failure{code, message};
}

template <typename T> T check(llvm::Expected<T> value, int code = 2) {
  if (!value)
    fail(code, llvm::toString(value.takeError()));
  return std::move(*value);
}

void check(llvm::Error err, int code = 2) {
  if (err)
    fail(code, llvm::toString(std::move(err)));
}

/// Converts a floating-point array to `dtype` (f32, f16 or bf16).
NpyArray toFloat(NpyArray in, DType dtype, const std::string &name) {
  if (in.dtype == dtype)
    return in;
  if (in.dtype != DType::F32 && !(in.dtype == DType::F16 && dtype == DType::F32))
    fail(2, name + ": dtype " + dtypeName(in.dtype) + " cannot be used as " +
                dtypeName(dtype));
  NpyArray out;
  out.dtype = dtype;
  out.shape = in.shape;
  int64_t n = in.numElements();
  out.data.resize(n * dtypeSize(dtype));
  for (int64_t i = 0; i < n; ++i) {
    float v = in.dtype == DType::F32 ? in.as<float>()[i]
                                     : f16ToFloat(in.as<uint16_t>()[i]);
    if (dtype == DType::F32)
      out.as<float>()[i] = v;
    else if (dtype == DType::F16)
      out.as<uint16_t>()[i] = floatToF16(v);
    else
      out.as<uint16_t>()[i] = floatToBF16(v);
  }
  return out;
}

/// Reads the elements of a floating-point array as floats.
std::vector<float> asFloats(const NpyArray &a) {
  std::vector<float> v(a.numElements());
  for (size_t i = 0; i < v.size(); ++i) {
    switch (a.dtype) {
    case DType::F32:
      v[i] = a.as<float>()[i];
      break;
    case DType::F16:
      v[i] = f16ToFloat(a.as<uint16_t>()[i]);
      break;
    case DType::BF16:
      v[i] = bf16ToFloat(a.as<uint16_t>()[i]);
      break;
    default:
      fail(2, "expected a floating-point array");
    }
  }
  return v;
}

TensorRef refTo(NpyArray &a, const std::string &name, int rank) {
  if (static_cast<int>(a.shape.size()) != rank)
    fail(2, name + ": expected a rank-" + std::to_string(rank) +
                " array, got rank " + std::to_string(a.shape.size()));
  return TensorRef::contiguous(a.data.data(), a.dtype, rank, a.shape.data());
}

std::string readText(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    fail(2, path + ": cannot read: " + buffer.getError().message());
  return (*buffer)->getBuffer().str();
}

/// Compiles `spec` for CUDA without a device and writes the PTX and / or
/// cubin; prints the launch configuration.
int emitCUDA(const AttentionSpec &spec, const std::string &chip,
             const std::string &ptxPath, const std::string &cubinPath) {
  // Both outputs are checked before the compiler runs.
  std::optional<OutputFile> ptxFile, cubinFile;
  if (!ptxPath.empty())
    ptxFile.emplace(check(OutputFile::open(ptxPath)));
  if (!cubinPath.empty())
    cubinFile.emplace(check(OutputFile::open(cubinPath)));
  CompileOptions options;
  options.chip = chip;
  auto start = std::chrono::steady_clock::now();
  CUDAKernelImage image = check(compileCUDAKernelImage(spec, options), 1);
  double compileMs = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - start)
                         .count();
  nlohmann::json result;
  result["target"] = "cuda";
  result["chip"] = image.chip;
  result["entry"] = image.entry;
  // Sizes the spec leaves dynamic give a null grid entry.
  nlohmann::json grid = nlohmann::json::array();
  std::array<int64_t, 3> g = image.grid(spec.batch.value_or(1), spec.qHeads,
                                        spec.qLen.value_or(1));
  grid.push_back(g[0]);
  grid.push_back(spec.batch ? nlohmann::json(g[1]) : nlohmann::json());
  grid.push_back(spec.qLen ? nlohmann::json(g[2]) : nlohmann::json());
  result["grid"] = grid;
  result["block"] = image.block;
  result["shared_bytes"] = image.sharedBytes;
  result["tile_sizes"] = image.tileSizes.toArray();
  result["compile_ms"] = compileMs;
  PtxasResult ptxas;
  if (!cubinPath.empty()) {
    ptxas = check(assemblePTX(image.ptx, image.chip), 1);
    result["registers"] = ptxas.registers;
    result["spill_store_bytes"] = ptxas.spillStoreBytes;
    result["spill_load_bytes"] = ptxas.spillLoadBytes;
    result["static_shared_bytes"] = ptxas.staticSharedBytes;
    result["stack_bytes"] = ptxas.stackBytes;
  }
  std::vector<std::pair<OutputFile *, llvm::StringRef>> outputs;
  if (ptxFile) {
    outputs.push_back({&*ptxFile, image.ptx});
    result["ptx"] = ptxPath;
  }
  if (cubinFile) {
    outputs.push_back({&*cubinFile, ptxas.cubin});
    result["cubin"] = cubinPath;
  }
  check(writeOutputs(outputs), 1); // all or none
  std::printf("%s\n", result.dump().c_str());
  return 0;
}

/// The JSON fields that say which kernel ran: target, chip or threads and
/// CPU target level, compile_ms, tile_sizes and cache ("hit", "miss" or
/// "off"). Warns on stderr when the kernel could not be saved to the disk
/// cache (it would report "miss" on every run).
nlohmann::json describeKernel(const Kernel &kernel, Runtime &runtime,
                              double compileMs) {
  nlohmann::json result;
  const KernelInfo &info = kernel.info();
  result["target"] = info.target == Target::CUDA ? "cuda" : "cpu";
  if (info.target == Target::CUDA)
    result["chip"] = info.chip;
  else {
    result["threads"] = runtime.numThreads();
    result["cpu_target"] = info.cpuTarget;
  }
  result["compile_ms"] = compileMs;
  if (info.tileSizes)
    result["tile_sizes"] = info.tileSizes->toArray();
  else
    result["tile_sizes"] = nullptr; // the unfused reference
  result["cache"] = runtime.cacheDirectory().empty()
                        ? "off"
                        : (info.fromDiskCache ? "hit" : "miss");
  if (RuntimeStats stats = runtime.stats(); stats.diskWriteFailures > 0)
    llvm::errs() << "attn-run: warning: the kernel was not saved to the disk "
                    "cache, so it is compiled again on every run: "
                 << stats.lastDiskWriteError << "\n";
  return result;
}

/// A runtime with the command line's threads and cache directory, the
/// kernel of `spec` it compiled (or loaded from the disk cache) and the
/// milliseconds that took. Exits on failure.
struct CompiledKernel {
  std::unique_ptr<Runtime> runtime;
  std::shared_ptr<Kernel> kernel;
  double compileMs;
};

CompiledKernel compileKernel(const AttentionSpec &spec, Target target,
                             const CompileOptions &compileOptions,
                             unsigned threads, const std::string &cacheDir) {
  RuntimeOptions options;
  options.numThreads = threads;
  options.cacheDir = cacheDir;
  CompiledKernel c;
  c.runtime = check(Runtime::create(options));
  auto start = std::chrono::steady_clock::now();
  c.kernel = check(c.runtime->getKernel(spec, target, compileOptions), 1);
  c.compileMs = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  return c;
}

/// Device copies of the arrays of `args` (TensorRef.data replaced by device
/// pointers) for a CUDA run.
struct DeviceArgs {
  std::vector<cuda::DeviceBuffer> buffers;
  AttentionArgs args;
};

size_t byteSize(const TensorRef &t) {
  if (t.empty())
    return 0;
  size_t n = 1;
  for (int i = 0; i < t.rank; ++i)
    n *= t.shape[i];
  return n * dtypeSize(t.dtype);
}

DeviceArgs toDevice(const AttentionArgs &host) {
  DeviceArgs d;
  d.args = host;
  for (TensorRef *t : {&d.args.query, &d.args.key, &d.args.value, &d.args.mask,
                       &d.args.kvLens, &d.args.output, &d.args.lse}) {
    if (t->empty())
      continue;
    size_t bytes = byteSize(*t);
    cuda::DeviceBuffer buffer = check(cuda::DeviceBuffer::allocate(bytes), 1);
    check(buffer.copyFromHost(t->data, bytes), 1);
    t->data = buffer.data();
    d.buffers.push_back(std::move(buffer));
  }
  return d;
}

int run(int argc, char **argv) {
  CLI::App app{"Compile and run one attention spec on .npy inputs"};
  std::string specPath, qPath, kPath, vPath, maskPath, lensPath, outPath,
      lsePath, expectPath, cacheDir, targetName = "cpu", chip, emitPtx,
      emitCubin, cpuTarget;
  bool verbose = false, compileOnly = false;
  int repeat = 1;
  unsigned threads = 0;
  std::optional<double> atol; // none: the default tolerance
  std::vector<int64_t> tileSizes;
  std::vector<std::string> capturePaths;
  app.add_option("spec", specPath, "JSON spec (docs/design.md section 6)")
      ->required();
  app.add_option("--q", qPath, "query [B, Hq, Sq, D] .npy");
  app.add_option("--k", kPath, "key [B, Hkv, Sk, D] .npy");
  app.add_option("--v", vPath, "value [B, Hkv, Sk, Dv] .npy");
  app.add_option("--mask", maskPath,
                 "mask [B|1, Hq|1, Sq|1, Sk] .npy (bool, or float bias)");
  app.add_option("--kv-lens", lensPath, "kv_lens [B] .npy (int32 or int64)");
  app.add_option("--capture", capturePaths,
                 "NAME=FILE.npy: an input of the spec's score_mod or "
                 "mask_mod, e.g. q_document_ids=Q_IDS.npy (int32 or int64 "
                 "ids, float tables; once per capture the spec names)");
  app.add_option("-o,--out", outPath, "output [B, Hq, Sq, Dv] .npy to write");
  app.add_option("--lse", lsePath, "log-sum-exp [B, Hq, Sq] .npy to write");
  app.add_option("--expect", expectPath,
                 "reference output .npy: report max_abs_err against it");
  app.add_option("--atol", atol,
                 "with --expect: fail (exit 3) when max_abs_err exceeds this "
                 "(default: 2e-5 * (1 + max|expected|), the f32 tolerance of "
                 "the numerics tests)");
  app.add_option("--target", targetName, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--chip", chip,
                 "CUDA chip, sm_80 or sm_90 (default: the device's, or sm_90 "
                 "for --emit-*)");
  app.add_option("--emit-ptx", emitPtx,
                 "with --target cuda: write the kernel's PTX here (no device "
                 "or arrays needed)");
  app.add_option("--emit-cubin", emitCubin,
                 "with --target cuda: assemble the kernel with ptxas and "
                 "write the cubin here");
  app.add_option("--cpu-target", cpuTarget,
                 "CPU target level: x86-64-v3 (AVX2), x86-64-v4 (AVX-512), "
                 "x86-64-v4-bf16 or x86-64-v4-amx (default: the highest this "
                 "CPU has)");
  app.add_flag("--compile-only", compileOnly,
               "compile the kernel (into the disk cache) and print what was "
               "compiled; no input arrays, no run");
  app.add_flag("-v,--verbose", verbose,
               "say on stderr which CPU this is and which target the kernel "
               "is compiled for");
  app.add_option("--repeat", repeat, "number of timed runs (median reported)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("--tile-sizes", tileSizes,
                 "tile sizes batch,heads,query,key (default: the compiler's)")
      ->delimiter(',')
      ->expected(4);
  app.add_option("--cache-dir", cacheDir,
                 "on-disk kernel cache directory (default: "
                 "$ATTN_MLIR_CACHE_DIR, else ~/.cache/attn-mlir; "
                 "ATTN_MLIR_CACHE_DIR= turns it off)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    fail(2, e.what());
  }

  AttentionSpec spec = check(AttentionSpec::fromJSON(readText(specPath)));
  CompileOptions compileOptions;
  if (!lsePath.empty())
    spec.returnLse = true;
  Target target = targetName == "cuda" ? Target::CUDA : Target::CPU;
  if (!chip.empty() && chip != "sm_80" && chip != "sm_90")
    fail(2, "chip: '" + chip + "' is not supported (expected sm_80 or sm_90)");
  if (!chip.empty() && target != Target::CUDA)
    fail(2, "chip: --chip needs --target cuda");
  // Distinct outputs: two outputs written to one path would lose one.
  {
    std::vector<std::string> paths;
    for (const std::string *p : {&outPath, &lsePath, &emitPtx, &emitCubin})
      if (!p->empty()) {
        if (std::find(paths.begin(), paths.end(), *p) != paths.end())
          fail(2, *p + ": named as two outputs");
        paths.push_back(*p);
      }
  }
  if (atol && !(*atol >= 0)) // NaN fails too
    fail(2, "--atol must be a non-negative number");
  if (atol && expectPath.empty())
    fail(2, "--atol needs --expect");
  if (!tileSizes.empty()) // CLI11 takes exactly 4
    compileOptions.tileSizes = mlir::attn::AttentionTileSizes{
        tileSizes[0], tileSizes[1], tileSizes[2], tileSizes[3]};
  compileOptions.chip = chip;
  if (!cpuTarget.empty() && target != Target::CPU)
    fail(2, "cpu-target: --cpu-target needs --target cpu");
  compileOptions.cpuTarget = cpuTarget;
  check(validateCompileOptions(spec, target, compileOptions));
  if (verbose && target == Target::CPU) {
    const mlir::attn::CPUTargetInfo *level =
        cpuTarget.empty() ? &hostCPUTarget()
                          : mlir::attn::CPUTargetInfo::lookup(cpuTarget);
    llvm::errs() << "attn-run: CPU: " << hostCPUModel()
                 << "; target: " << level->name << " (" << level->summary
                 << ")\n";
  }
  if (!emitPtx.empty() || !emitCubin.empty()) {
    if (target != Target::CUDA)
      fail(2, "--emit-ptx and --emit-cubin need --target cuda");
    return emitCUDA(spec, chip.empty() ? "sm_90" : chip, emitPtx, emitCubin);
  }
  if (compileOnly) {
    if (!qPath.empty() || !kPath.empty() || !vPath.empty() ||
        !maskPath.empty() || !lensPath.empty() || !capturePaths.empty() ||
        !outPath.empty() || !lsePath.empty() || !expectPath.empty())
      fail(2, "--compile-only takes no input or output arrays");
    CompiledKernel c =
        compileKernel(spec, target, compileOptions, threads, cacheDir);
    std::printf("%s\n",
                describeKernel(*c.kernel, *c.runtime, c.compileMs).dump().c_str());
    return 0;
  }
  // Every output path is checked before anything is read or run; the
  // files are written at the end, all or none.
  std::optional<OutputFile> outFile, lseFile;
  if (!outPath.empty())
    outFile.emplace(check(OutputFile::open(outPath)));
  if (!lsePath.empty())
    lseFile.emplace(check(OutputFile::open(lsePath)));
  for (auto [path, name] : {std::pair{&qPath, "--q"}, {&kPath, "--k"},
                            {&vPath, "--v"}})
    if (path->empty())
      fail(2, std::string(name) + " is required");

  // Inputs, converted to the spec's element types.
  // No input is read past what the spec implies (8 bytes an element: f64
  // arrays are accepted and converted).
  auto maxBytes = [&](llvm::ArrayRef<std::optional<int64_t>> dims) {
    int64_t bytes = 8;
    for (std::optional<int64_t> d : dims)
      if (!d || __builtin_mul_overflow(bytes, *d, &bytes) ||
          bytes > kMaxNpyBytes)
        return kMaxNpyBytes;
    return bytes;
  };
  // The shape the spec expects, for errors ("?" for a run-time size).
  auto shapeOf = [](llvm::ArrayRef<std::optional<int64_t>> dims) {
    std::string s = "[";
    for (std::optional<int64_t> d : dims)
      s += (s.size() > 1 ? ", " : "") + (d ? std::to_string(*d) : "?");
    return s + "]";
  };
  auto read = [&](const std::string &path,
                  llvm::ArrayRef<std::optional<int64_t>> dims) {
    return check(readNpy(path, maxBytes(dims), shapeOf(dims)));
  };
  std::optional<int64_t> qh = spec.qHeads, kvh = spec.kvHeads,
                         d = spec.headDim, dv = spec.vHeadDim;
  NpyArray q = toFloat(read(qPath, {spec.batch, qh, spec.qLen, d}),
                       spec.dtype, "query");
  NpyArray k = toFloat(read(kPath, {spec.batch, kvh, spec.kvLen, d}),
                       spec.dtype, "key");
  NpyArray v = toFloat(read(vPath, {spec.batch, kvh, spec.kvLen, dv}),
                       spec.dtype, "value");
  AttentionArgs args;
  args.query = refTo(q, "query", 4);
  args.key = refTo(k, "key", 4);
  args.value = refTo(v, "value", 4);
  NpyArray mask, lens;
  if (const MaskSpec *m = spec.findMask(MaskSpec::Kind::Tensor)) {
    if (maskPath.empty())
      fail(2, "mask: the spec has a tensor mask: pass --mask");
    mask = read(maskPath, {m->batchBroadcast ? 1 : spec.batch,
                           m->headBroadcast ? 1 : qh,
                           m->queryBroadcast ? 1 : spec.qLen, spec.kvLen});
    if (m->dtype != DType::Bool)
      mask = toFloat(std::move(mask), m->dtype, "mask");
    else if (mask.dtype != DType::Bool)
      fail(2, "mask: the spec's mask is bool, the array is " +
                  std::string(dtypeName(mask.dtype)));
    args.mask = refTo(mask, "mask", 4);
  } else if (!maskPath.empty()) {
    fail(2, "mask: --mask given, but the spec has no tensor mask");
  }
  if (const MaskSpec *m = spec.findMask(MaskSpec::Kind::KeyPadding)) {
    if (lensPath.empty())
      fail(2, "kv_lens: the spec has a key_padding mask: pass --kv-lens");
    lens = read(lensPath, {spec.batch});
    if (lens.dtype != DType::I32 && lens.dtype != DType::I64)
      fail(2, "kv_lens: expected an int32 or int64 array, got " +
                  std::string(dtypeName(lens.dtype)));
    if (lens.dtype != m->dtype) { // widen or narrow to the spec's type
      NpyArray conv;
      conv.dtype = m->dtype;
      conv.shape = lens.shape;
      conv.data.resize(lens.numElements() * dtypeSize(m->dtype));
      for (int64_t i = 0; i < lens.numElements(); ++i) {
        int64_t x = lens.dtype == DType::I32 ? lens.as<int32_t>()[i]
                                             : lens.as<int64_t>()[i];
        if (m->dtype == DType::I32)
          conv.as<int32_t>()[i] = static_cast<int32_t>(
              std::clamp<int64_t>(x, INT32_MIN, INT32_MAX));
        else
          conv.as<int64_t>()[i] = x;
      }
      lens = std::move(conv);
    }
    args.kvLens = refTo(lens, "kv_lens", 1);
  } else if (!lensPath.empty()) {
    fail(2, "kv_lens: --kv-lens given, but the spec has no key_padding mask");
  }

  // The captures of the spec's mask_mod, by name.
  std::vector<CaptureSpec> captureSpecs = spec.captures();
  std::vector<NpyArray> captures(captureSpecs.size());
  std::vector<bool> captureGiven(captureSpecs.size(), false);
  for (const std::string &arg : capturePaths) {
    size_t eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
      fail(2, "capture: expected NAME=FILE.npy, got '" + arg + "'");
    auto it = llvm::find_if(
        captureSpecs, [&](const CaptureSpec &c) { return c.name == name; });
    if (it == captureSpecs.end()) {
      std::string names;
      for (const CaptureSpec &c : captureSpecs)
        names += (names.empty() ? "" : ", ") + c.name;
      fail(2, "capture: the spec reads no capture '" + name + "'" +
                  (names.empty() ? std::string(" (it reads none)")
                                 : " (it reads " + names + ")"));
    }
    size_t index = it - captureSpecs.begin();
    if (captureGiven[index])
      fail(2, "capture: '" + name + "' given twice");
    captureGiven[index] = true;
    auto dim = [&](CaptureSpec::Dim d) -> std::optional<int64_t> {
      switch (d.kind) {
      case CaptureSpec::Dim::Batch:
        return spec.batch;
      case CaptureSpec::Dim::QLen:
        return spec.qLen;
      case CaptureSpec::Dim::KvLen:
        return spec.kvLen;
      case CaptureSpec::Dim::Fixed:
        break;
      }
      return d.size;
    };
    std::string path = arg.substr(eq + 1);
    std::vector<std::optional<int64_t>> shape;
    for (CaptureSpec::Dim d : it->shape)
      shape.push_back(dim(d));
    NpyArray a = read(path, shape);
    if (it->dtype == DType::F32) { // a table: any float array, as f32
      captures[index] = toFloat(std::move(a), DType::F32, name);
      continue;
    }
    if (a.dtype != DType::I32 && a.dtype != DType::I64)
      fail(2, name + ": expected an int32 or int64 array, got " +
                  dtypeName(a.dtype));
    if (a.dtype != it->dtype) { // to the capture's integer type
      NpyArray conv;
      conv.dtype = it->dtype;
      conv.shape = a.shape;
      conv.data.resize(a.numElements() * dtypeSize(it->dtype));
      for (int64_t i = 0; i < a.numElements(); ++i) {
        if (it->dtype == DType::I64) {
          conv.as<int64_t>()[i] = a.as<int32_t>()[i];
          continue;
        }
        int64_t x = a.as<int64_t>()[i];
        if (x < INT32_MIN || x > INT32_MAX)
          fail(2, name + ": value " + std::to_string(x) +
                      " does not fit the capture's int32");
        conv.as<int32_t>()[i] = static_cast<int32_t>(x);
      }
      a = std::move(conv);
    }
    captures[index] = std::move(a);
  }
  for (size_t i = 0; i < captureSpecs.size(); ++i)
    if (!captureGiven[i])
      fail(2,
           captureSpecs[i].name + ": the spec's " +
               (i < spec.scoreModCaptures().size() ? "score_mod" : "mask_mod") +
               " reads it: pass --capture " + captureSpecs[i].name +
               "=FILE.npy");
  for (auto [c, a] : llvm::zip(captureSpecs, captures))
    args.captures.push_back(
        refTo(a, c.name.c_str(), static_cast<int>(c.shape.size())));

  // The inputs must match the spec before the outputs are sized from it.
  check(validateArguments(spec, args, /*outputs=*/false));
  // Outputs (sizes from the inputs where the spec leaves them dynamic).
  int64_t batch = q.shape[0], qLen = q.shape[2], kvLen = k.shape[2];
  NpyArray out, lse;
  out.dtype = spec.dtype;
  out.shape = {batch, spec.qHeads, qLen, spec.vHeadDim};
  if (batch < 0 || qLen < 0 || kvLen < 0)
    fail(2, "query: negative size");
  int64_t outElems = 1;
  for (int64_t d : out.shape)
    if (d <= 0 || __builtin_mul_overflow(outElems, d, &outElems))
      fail(2, "output: invalid size");
  out.data.resize(outElems * dtypeSize(spec.dtype));
  args.output = refTo(out, "output", 4);
  if (spec.returnLse) {
    lse.dtype = DType::F32;
    lse.shape = {batch, spec.qHeads, qLen};
    lse.data.resize(batch * spec.qHeads * qLen * 4);
    args.lse = refTo(lse, "lse", 3);
  }

  // Compile (or fail) before anything is written.
  CompiledKernel compiled =
      compileKernel(spec, target, compileOptions, threads, cacheDir);
  Runtime &runtime = *compiled.runtime;
  std::shared_ptr<Kernel> kernel = compiled.kernel;
  double compileMs = compiled.compileMs;
  check(kernel->validate(args));

  // CUDA kernels read and write device memory.
  std::optional<DeviceArgs> device;
  if (target == Target::CUDA)
    device = toDevice(args);
  const AttentionArgs &runArgs = device ? device->args : args;

  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    auto start = std::chrono::steady_clock::now();
    check(kernel->run(runArgs), 1);
    times.push_back(std::chrono::duration<double, std::milli>(
                        std::chrono::steady_clock::now() - start)
                        .count());
  }
  if (device) {
    for (auto [host, dev] : {std::pair{&args.output, &device->args.output},
                             {&args.lse, &device->args.lse}}) {
      if (host->empty())
        continue;
      for (cuda::DeviceBuffer &buffer : device->buffers)
        if (buffer.data() == dev->data)
          check(buffer.copyToHost(host->data, byteSize(*host)), 1);
    }
  }
  std::sort(times.begin(), times.end());
  double runMs = times[times.size() / 2];

  nlohmann::json result = describeKernel(*kernel, runtime, compileMs);
  std::string mismatch;
  result["run_ms"] = runMs;
  result["gflops"] =
      attentionFlops(spec, batch, qLen, kvLen) / (runMs * 1e-3) / 1e9;
  if (std::optional<double> rss = peakResidentMiB())
    result["peak_rss_mib"] = *rss;

  if (!expectPath.empty()) {
    NpyArray ref = check(readNpy(
        expectPath, 8 * static_cast<int64_t>(out.numElements())));
    if (ref.shape != out.shape)
      fail(2, "expect: shape does not match the output");
    std::vector<float> got = asFloats(out), want = asFloats(ref);
    double maxErr = 0, maxRef = 0;
    bool nan = false;
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::isnan(got[i]) != std::isnan(want[i]))
        nan = true;
      else if (!std::isnan(got[i]))
        maxErr = std::max(maxErr, std::fabs(double(got[i]) - double(want[i])));
      maxRef = std::max(maxRef, std::fabs(double(want[i])));
    }
    result["max_abs_err"] = nan ? nlohmann::json("nan mismatch")
                                : nlohmann::json(maxErr);
    result["max_abs_ref"] = maxRef;
    // Without --atol: the f32 tolerance of the numerics tests.
    double tolerance = atol ? *atol : 2e-5 * (1 + maxRef);
    result["atol"] = tolerance;
    if (nan || maxErr > tolerance)
      mismatch = "max_abs_err " + result["max_abs_err"].dump() +
                 " exceeds " + (atol ? "--atol " : "the default atol ") +
                 std::to_string(tolerance);
  }

  // Writes happen last, each atomically.
  if (!outPath.empty()) {
    if (out.dtype == DType::BF16) { // .npy has no bf16: write f32
      std::vector<float> values = asFloats(out);
      out.dtype = DType::F32;
      out.data.assign(reinterpret_cast<const char *>(values.data()),
                      reinterpret_cast<const char *>(values.data() +
                                                     values.size()));
    }
  }
  // All or none: both temporaries written before either path is replaced.
  std::string outBytes, lseBytes;
  std::vector<std::pair<OutputFile *, llvm::StringRef>> outputs;
  if (outFile) {
    outBytes = check(npyBytes(out), 1);
    outputs.push_back({&*outFile, outBytes});
  }
  if (lseFile) {
    lseBytes = check(npyBytes(lse), 1);
    outputs.push_back({&*lseFile, lseBytes});
  }
  check(writeOutputs(outputs), 1);
  std::printf("%s\n", result.dump().c_str());
  if (!mismatch.empty())
    fail(3, mismatch);
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "attn-run: error: out of memory\n");
    return 1;
  } catch (const Failure &f) {
    std::string msg = f.message;
    if (msg.size() > 1000) // one readable line, whatever was echoed
      msg = msg.substr(0, 1000) + "...";
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    std::fprintf(stderr, "attn-run: error: %s\n", msg.c_str());
    return f.code;
  }
}
