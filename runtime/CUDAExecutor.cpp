//===- CUDAExecutor.cpp - CUDA kernels through the driver API -------------===//
//
// spec -> kernel module (KernelBuilder) -> attn-cuda-pipeline -> PTX (no
// device needed), optionally -> ptxas -> cubin. To run, the CUDA driver is
// loaded at run time with dlopen("libcuda.so.1") and its entry points looked
// up by name, so the runtime builds and links on machines without CUDA; there
// every call that needs a device fails with "no CUDA device: <why>".
//
// Modules are loaded from PTX through the driver's JIT (cuModuleLoadDataEx),
// launched with the grid and block the compiler chose (one block per (head,
// batch, query block), dynamic shared memory for the double-buffered key and
// value tiles) and cached by the Runtime per spec and chip.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "RuntimeInternal.h"

#include "attn/Pipelines/Pipelines.h"
#include "attn/Runtime/CUDA.h"
#include "attn/Transforms/CUDA/CUDATarget.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <dlfcn.h>
#include <mutex>

using namespace attn;

static llvm::Error error(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

//===----------------------------------------------------------------------===//
// The driver API, loaded at run time
//===----------------------------------------------------------------------===//

namespace {
// The subset of cuda.h the runtime uses (driver API, stable ABI).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
constexpr int kAttrComputeCapabilityMajor = 75;
constexpr int kAttrComputeCapabilityMinor = 76;
constexpr int kFuncAttrMaxDynamicSharedBytes = 8;

struct Driver {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *,
                                 void **);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, CUstream, void **,
                             void **);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuGetErrorName)(CUresult, const char **);

  CUdevice device = 0;
  CUcontext context = nullptr;
  int major = 0, minor = 0;

  std::string describe(CUresult r) const {
    const char *name = nullptr;
    if (cuGetErrorName)
      cuGetErrorName(r, &name);
    return name ? std::string(name) : "CUDA error " + std::to_string(r);
  }
  llvm::Error check(CUresult r, const char *what) const {
    if (r == 0)
      return llvm::Error::success();
    return error(llvm::Twine("cuda: ") + what + " failed: " + describe(r));
  }
  /// Makes the primary context current on the calling thread.
  llvm::Error enter() const {
    return check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
  }
};

/// The process-wide driver, or why there is none.
struct DriverState {
  Driver driver;
  std::string error; // empty when usable
};

const DriverState &driverState() {
  static DriverState state = [] {
    DriverState s;
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      lib = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char *why = dlerror();
      s.error = std::string("the CUDA driver (libcuda.so.1) cannot be "
                            "loaded: ") +
                (why ? why : "not found");
      return s;
    }
    Driver &d = s.driver;
    bool missing = false;
    std::string missingName;
    auto load = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(lib, name));
      if (!fn && !missing) {
        missing = true;
        missingName = name;
      }
    };
    load(d.cuInit, "cuInit");
    load(d.cuDeviceGetCount, "cuDeviceGetCount");
    load(d.cuDeviceGet, "cuDeviceGet");
    load(d.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    load(d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    load(d.cuCtxSetCurrent, "cuCtxSetCurrent");
    load(d.cuCtxSynchronize, "cuCtxSynchronize");
    load(d.cuModuleLoadDataEx, "cuModuleLoadDataEx");
    load(d.cuModuleUnload, "cuModuleUnload");
    load(d.cuModuleGetFunction, "cuModuleGetFunction");
    load(d.cuFuncSetAttribute, "cuFuncSetAttribute");
    load(d.cuLaunchKernel, "cuLaunchKernel");
    load(d.cuMemAlloc, "cuMemAlloc_v2");
    load(d.cuMemFree, "cuMemFree_v2");
    load(d.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    load(d.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    load(d.cuGetErrorName, "cuGetErrorName");
    if (missing) {
      s.error = "libcuda lacks " + missingName;
      return s;
    }
    if (CUresult r = d.cuInit(0)) {
      s.error = "cuInit failed: " + d.describe(r);
      return s;
    }
    int count = 0;
    if (CUresult r = d.cuDeviceGetCount(&count)) {
      s.error = "cuDeviceGetCount failed: " + d.describe(r);
      return s;
    }
    if (count == 0) {
      s.error = "the driver reports no device";
      return s;
    }
    if (CUresult r = d.cuDeviceGet(&d.device, 0)) {
      s.error = "cuDeviceGet failed: " + d.describe(r);
      return s;
    }
    d.cuDeviceGetAttribute(&d.major, kAttrComputeCapabilityMajor, d.device);
    d.cuDeviceGetAttribute(&d.minor, kAttrComputeCapabilityMinor, d.device);
    if (CUresult r = d.cuDevicePrimaryCtxRetain(&d.context, d.device)) {
      s.error = "cuDevicePrimaryCtxRetain failed: " + d.describe(r);
      return s;
    }
    return s;
  }();
  return state;
}

llvm::Expected<const Driver &> driver() {
  const DriverState &s = driverState();
  if (!s.error.empty())
    return error("no CUDA device: " + s.error);
  return s.driver;
}
} // namespace

llvm::Error cuda::checkDevice() {
  auto d = driver();
  return d ? llvm::Error::success() : d.takeError();
}

llvm::Expected<std::string> cuda::deviceChip() {
  auto d = driver();
  if (!d)
    return d.takeError();
  if (d->major < 8)
    return error("cuda: the device has compute capability " +
                 std::to_string(d->major) + "." + std::to_string(d->minor) +
                 "; the CUDA kernels need 8.0 (sm_80) or newer");
  return std::string(d->major >= 9 ? "sm_90" : "sm_80");
}

llvm::Expected<cuda::DeviceBuffer> cuda::DeviceBuffer::allocate(size_t n) {
  auto d = driver();
  if (!d)
    return d.takeError();
  if (auto err = d->enter())
    return std::move(err);
  CUdeviceptr ptr = 0;
  if (auto err = d->check(d->cuMemAlloc(&ptr, n ? n : 1), "cuMemAlloc"))
    return std::move(err);
  return DeviceBuffer(ptr, n);
}

cuda::DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : ptr(other.ptr), bytes(other.bytes) {
  other.ptr = 0;
  other.bytes = 0;
}

cuda::DeviceBuffer &
cuda::DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  std::swap(ptr, other.ptr);
  std::swap(bytes, other.bytes);
  return *this;
}

cuda::DeviceBuffer::~DeviceBuffer() {
  if (!ptr)
    return;
  if (auto d = driver()) {
    llvm::consumeError(d->enter());
    d->cuMemFree(ptr);
  } else {
    llvm::consumeError(d.takeError());
  }
}

llvm::Error cuda::DeviceBuffer::copyFromHost(const void *src, size_t n) {
  if (n > bytes)
    return error("cuda: copy of " + std::to_string(n) +
                 " bytes into a buffer of " + std::to_string(bytes));
  auto d = driver();
  if (!d)
    return d.takeError();
  if (auto err = d->enter())
    return err;
  return d->check(d->cuMemcpyHtoD(ptr, src, n), "cuMemcpyHtoD");
}

llvm::Error cuda::DeviceBuffer::copyToHost(void *dst, size_t n) const {
  if (n > bytes)
    return error("cuda: copy of " + std::to_string(n) +
                 " bytes out of a buffer of " + std::to_string(bytes));
  auto d = driver();
  if (!d)
    return d.takeError();
  if (auto err = d->enter())
    return err;
  return d->check(d->cuMemcpyDtoH(dst, ptr, n), "cuMemcpyDtoH");
}

//===----------------------------------------------------------------------===//
// Compilation to PTX (no device)
//===----------------------------------------------------------------------===//

std::array<int64_t, 3> CUDAKernelImage::grid(int64_t batch, int64_t qHeads,
                                             int64_t qLen) const {
  // CUDA's grid is (head groups, batch blocks, query blocks).
  mlir::attn::WorkgroupGrid g =
      mlir::attn::getWorkgroupGrid(batch, qHeads, qLen, tileSizes);
  return {g.headGroups, g.batchBlocks, g.queryBlocks};
}

mlir::attn::AttentionTileSizes
attn::selectCUDATileSizes(const AttentionSpec &spec) {
  return mlir::attn::selectCUDATileSizes(getAttentionProblem(spec));
}

static llvm::Error compileError(const llvm::Twine &msg) {
  return error("compile: " + msg);
}

llvm::Expected<CUDAKernelImage>
attn::compileCUDAKernelImage(const AttentionSpec &spec,
                             const CompileOptions &options) {
  if (auto err = spec.validate())
    return std::move(err);
  std::string chip = options.chip.empty() ? "sm_90" : options.chip;
  std::optional<mlir::attn::CUDATarget> target =
      mlir::attn::CUDATarget::get(chip);
  if (!target)
    return error("chip: '" + chip + "' is not supported (expected " +
                 mlir::attn::CUDATarget::supportedChipsString() + ")");
  if (auto err = validateCompileOptions(spec, Target::CUDA, options))
    return std::move(err);
  mlir::attn::AttentionTileSizes tiles =
      options.tileSizes ? *options.tileSizes : selectCUDATileSizes(spec);

  mlir::MLIRContext context(kernelDialectRegistry(),
                            mlir::MLIRContext::Threading::DISABLED);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      buildKernelModule(context, spec, /*workgroupRange=*/false);
  mlir::attn::CUDAPipelineOptions pipeline;
  pipeline.tileSizes = llvm::ArrayRef<int64_t>(tiles.toArray());
  pipeline.chip = chip;
  mlir::PassManager pm(&context);
  mlir::attn::buildCUDAPipeline(pm, pipeline);
  std::string diagnostics;
  {
    llvm::raw_string_ostream os(diagnostics);
    mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
      if (d.getSeverity() == mlir::DiagnosticSeverity::Error)
        os << d << "\n";
      return mlir::success();
    });
    if (mlir::failed(pm.run(*module)))
      return compileError("attn-cuda-pipeline failed: " + diagnostics);
  }

  CUDAKernelImage image;
  image.chip = chip;
  image.tileSizes = tiles;
  for (auto binary : module->getOps<mlir::gpu::BinaryOp>()) {
    for (mlir::Attribute a : binary.getObjects())
      if (auto object = llvm::dyn_cast<mlir::gpu::ObjectAttr>(a))
        image.ptx = object.getObject().getValue().str();
  }
  auto func = module->lookupSymbol<mlir::func::FuncOp>(kKernelEntry);
  mlir::gpu::LaunchFuncOp launch;
  if (func)
    func.walk([&](mlir::gpu::LaunchFuncOp op) { launch = op; });
  if (image.ptx.empty() || !launch)
    return compileError("attn-cuda-pipeline produced no kernel");
  image.entry = launch.getKernelName().getValue().str();
  auto constant = [](mlir::Value v) -> int64_t {
    std::optional<int64_t> c =
        v ? mlir::getConstantIntValue(v) : std::optional<int64_t>(0);
    return c ? *c : -1;
  };
  image.block = {constant(launch.getBlockSizeX()),
                 constant(launch.getBlockSizeY()),
                 constant(launch.getBlockSizeZ())};
  image.sharedBytes = constant(launch.getDynamicSharedMemorySize());
  if (llvm::any_of(image.block, [](int64_t b) { return b <= 0; }) ||
      image.sharedBytes < 0)
    return compileError("the kernel's launch configuration is not constant");
  for (mlir::Value operand : launch.getKernelOperands()) {
    auto arg = llvm::dyn_cast<mlir::BlockArgument>(operand);
    if (!arg || arg.getOwner() != &func.getBody().front())
      return compileError("a kernel parameter is not a kernel operand");
    image.paramOperands.push_back(arg.getArgNumber());
  }
  return image;
}

//===----------------------------------------------------------------------===//
// ptxas
//===----------------------------------------------------------------------===//

llvm::Expected<std::string> attn::findPtxas() {
  if (std::optional<std::string> env = llvm::sys::Process::GetEnv("ATTN_PTXAS"))
    if (llvm::sys::fs::can_execute(*env))
      return *env;
  if (auto path = llvm::sys::findProgramByName("ptxas"))
    return *path;
  for (const char *var : {"CUDA_HOME", "CUDA_PATH"})
    if (std::optional<std::string> root = llvm::sys::Process::GetEnv(var)) {
      llvm::SmallString<256> p(*root);
      llvm::sys::path::append(p, "bin", "ptxas");
      if (llvm::sys::fs::can_execute(p))
        return std::string(p);
    }
  if (llvm::sys::fs::can_execute("/usr/local/cuda/bin/ptxas"))
    return std::string("/usr/local/cuda/bin/ptxas");
  return error("ptxas not found (looked at $ATTN_PTXAS, $PATH, "
               "$CUDA_HOME/bin, $CUDA_PATH/bin and /usr/local/cuda/bin): "
               "install the CUDA toolkit or set CUDA_HOME");
}

/// The integer before `suffix` on the line of `log` that contains it.
static int64_t numberBefore(llvm::StringRef log, llvm::StringRef suffix) {
  size_t at = log.find(suffix);
  if (at == llvm::StringRef::npos)
    return -1;
  llvm::StringRef head = log.take_front(at).rtrim();
  size_t start = head.find_last_not_of("0123456789");
  int64_t value = -1;
  if (head.drop_front(start + 1).getAsInteger(10, value))
    return -1;
  return value;
}

llvm::Expected<PtxasResult> attn::assemblePTX(const std::string &ptx,
                                              const std::string &chip) {
  if (!mlir::attn::CUDATarget::get(chip))
    return error("chip: '" + chip + "' is not supported (expected " +
                 mlir::attn::CUDATarget::supportedChipsString() + ")");
  auto ptxas = findPtxas();
  if (!ptxas)
    return ptxas.takeError();
  llvm::SmallString<128> in, out, log;
  int fd;
  if (auto ec = llvm::sys::fs::createTemporaryFile("attn", "ptx", fd, in))
    return error("ptxas: cannot create a temporary file: " + ec.message());
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << ptx;
  }
  llvm::sys::fs::createTemporaryFile("attn", "cubin", out);
  llvm::sys::fs::createTemporaryFile("attn", "log", log);
  llvm::scope_exit cleanup([&] {
    llvm::sys::fs::remove(in);
    llvm::sys::fs::remove(out);
    llvm::sys::fs::remove(log);
  });
  std::string arch = "-arch=" + chip;
  llvm::SmallVector<llvm::StringRef> argv = {*ptxas, arch, "-O3", "-v",
                                             in,     "-o", out};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, log.str(),
                                                log.str()};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*ptxas, argv, std::nullopt, redirects,
                                     /*SecondsToWait=*/0, /*MemoryLimit=*/0,
                                     &message);
  PtxasResult result;
  if (auto buffer = llvm::MemoryBuffer::getFile(log))
    result.log = (*buffer)->getBuffer().str();
  if (rc != 0) {
    std::string firstLines = llvm::StringRef(result.log).take_front(2000).str();
    std::replace(firstLines.begin(), firstLines.end(), '\n', ' ');
    return error("ptxas failed (" + std::to_string(rc) +
                 "): " + (message.empty() ? firstLines : message));
  }
  auto cubin = llvm::MemoryBuffer::getFile(out, /*IsText=*/false);
  if (!cubin)
    return error("ptxas: no output: " + cubin.getError().message());
  result.cubin = (*cubin)->getBuffer().str();
  llvm::StringRef text = result.log;
  result.registers = numberBefore(text, " registers");
  result.spillStoreBytes = numberBefore(text, " bytes spill stores");
  result.spillLoadBytes = numberBefore(text, " bytes spill loads");
  result.stackBytes = numberBefore(text, " bytes stack frame");
  result.staticSharedBytes = numberBefore(text, " bytes smem");
  return result;
}

//===----------------------------------------------------------------------===//
// The kernel
//===----------------------------------------------------------------------===//

namespace {
class CUDAKernel final : public Kernel {
public:
  CUDAKernel(AttentionSpec spec, KernelInfo info, CUDAKernelImage image,
             CUmodule module, CUfunction function)
      : Kernel(std::move(spec), std::move(info)), image(std::move(image)),
        module(module), function(function) {}
  ~CUDAKernel() override {
    if (auto d = driver()) {
      llvm::consumeError(d->enter());
      d->cuModuleUnload(module);
    } else {
      llvm::consumeError(d.takeError());
    }
  }

protected:
  llvm::Error launch(const AttentionArgs &args, int64_t batch, int64_t qLen,
                     int64_t kvLen) const override;

private:
  CUDAKernelImage image;
  CUmodule module;
  CUfunction function;
};

const TensorRef &refOf(const AttentionArgs &args, KernelOperand op) {
  switch (op) {
  case KernelOperand::Query:
    return args.query;
  case KernelOperand::Key:
    return args.key;
  case KernelOperand::Value:
    return args.value;
  case KernelOperand::Mask:
    return args.mask;
  case KernelOperand::KvLens:
    return args.kvLens;
  case KernelOperand::Capture:
    break; // validateCompileOptions refuses mod regions on CUDA
  case KernelOperand::Output:
    return args.output;
  case KernelOperand::Lse:
    return args.lse;
  }
  llvm_unreachable("unknown operand");
}

const char *nameOf(KernelOperand op) {
  switch (op) {
  case KernelOperand::Query:
    return "query";
  case KernelOperand::Key:
    return "key";
  case KernelOperand::Value:
    return "value";
  case KernelOperand::Mask:
    return "mask";
  case KernelOperand::KvLens:
    return "kv_lens";
  case KernelOperand::Capture:
    return "capture";
  case KernelOperand::Output:
    return "output";
  case KernelOperand::Lse:
    return "lse";
  }
  llvm_unreachable("unknown operand");
}

llvm::Error CUDAKernel::launch(const AttentionArgs &args, int64_t batch,
                               int64_t qLen, int64_t) const {
  auto d = driver();
  if (!d)
    return d.takeError();
  std::vector<KernelOperand> operands = kernelOperands(spec());
  // cp.async moves 16-byte chunks, and fragments are loaded and stored in
  // pairs: the tensors' rows must start on 16-byte boundaries.
  for (KernelOperand op : operands) {
    if (op != KernelOperand::Query && op != KernelOperand::Key &&
        op != KernelOperand::Value && op != KernelOperand::Output)
      continue;
    const TensorRef &t = refOf(args, op);
    int64_t bytes = dtypeSize(t.dtype);
    bool aligned = reinterpret_cast<uintptr_t>(t.data) % 16 == 0;
    for (int i = 0; i + 1 < t.rank; ++i)
      aligned &= (t.strides[i] * bytes) % 16 == 0;
    if (!aligned)
      return error(llvm::Twine(nameOf(op)) +
                   ": the CUDA kernels need 16-byte aligned device data "
                   "and outer strides that are multiples of 16 bytes");
  }
  std::array<int64_t, 3> grid = image.grid(batch, spec().qHeads, qLen);
  if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0)
    return llvm::Error::success();
  if (grid[0] > 0x7fffffff || grid[1] > 65535 || grid[2] > 65535)
    return error("cuda: grid (" + std::to_string(grid[0]) + ", " +
                 std::to_string(grid[1]) + ", " + std::to_string(grid[2]) +
                 ") exceeds the CUDA limits");

  // Expanded memref descriptors: allocated, aligned, offset, sizes, strides.
  std::vector<uint64_t> values;
  values.reserve(16 * image.paramOperands.size());
  for (int index : image.paramOperands) {
    const TensorRef &t = refOf(args, operands[index]);
    auto address = reinterpret_cast<uint64_t>(t.data);
    values.push_back(address);
    values.push_back(address);
    values.push_back(0);
    for (int i = 0; i < t.rank; ++i)
      values.push_back(static_cast<uint64_t>(t.shape[i]));
    for (int i = 0; i < t.rank; ++i)
      values.push_back(static_cast<uint64_t>(t.strides[i]));
  }
  std::vector<void *> params;
  for (uint64_t &v : values)
    params.push_back(&v);
  if (auto err = d->enter())
    return err;
  if (auto err = d->check(d->cuLaunchKernel(function, grid[0], grid[1], grid[2],
                                            image.block[0], image.block[1],
                                            image.block[2], image.sharedBytes,
                                            nullptr, params.data(), nullptr),
                          "cuLaunchKernel"))
    return err;
  return d->check(d->cuCtxSynchronize(), "the kernel");
}
} // namespace

llvm::Expected<std::shared_ptr<Kernel>>
detail::compileCUDAKernel(const AttentionSpec &spec,
                          const CompileOptions &options) {
  auto d = driver();
  if (!d)
    return d.takeError();
  auto start = std::chrono::steady_clock::now();
  auto device = cuda::deviceChip();
  if (!device)
    return device.takeError();
  CompileOptions resolved = options;
  if (resolved.chip.empty())
    resolved.chip = *device;
  if (resolved.chip == "sm_90" && d->major < 9)
    return error("chip: sm_90 kernels cannot run on this device (compute "
                 "capability " +
                 std::to_string(d->major) + "." + std::to_string(d->minor) +
                 ")");
  llvm::Expected<CUDAKernelImage> image =
      compileCUDAKernelImage(spec, resolved);
  if (!image)
    return image.takeError();
  if (auto err = d->enter())
    return std::move(err);
  CUmodule module = nullptr;
  if (auto err = d->check(d->cuModuleLoadDataEx(&module, image->ptx.c_str(), 0,
                                                nullptr, nullptr),
                          "cuModuleLoadDataEx (PTX JIT)"))
    return std::move(err);
  CUfunction function = nullptr;
  if (auto err = d->check(
          d->cuModuleGetFunction(&function, module, image->entry.c_str()),
          "cuModuleGetFunction")) {
    d->cuModuleUnload(module);
    return std::move(err);
  }
  if (auto err = d->check(
          d->cuFuncSetAttribute(function, kFuncAttrMaxDynamicSharedBytes,
                                static_cast<int>(image->sharedBytes)),
          "cuFuncSetAttribute")) {
    d->cuModuleUnload(module);
    return std::move(err);
  }
  KernelInfo info;
  info.target = Target::CUDA;
  info.tileSizes = image->tileSizes;
  info.entry = image->entry;
  info.chip = image->chip;
  info.block = image->block;
  info.sharedBytes = image->sharedBytes;
  info.compileMs = std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  return std::make_shared<CUDAKernel>(spec, std::move(info), std::move(*image),
                                      module, function);
}
