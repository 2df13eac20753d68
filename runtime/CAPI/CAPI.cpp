//===- CAPI.cpp - C API of the attn-mlir JIT runtime ----------------------===//
//
// include/attn-c/attn.h over attn::Runtime. Every entry point catches every
// C++ exception, maps llvm::Error to a status and keeps the message in a
// thread-local string for attn_last_error().
//
//===----------------------------------------------------------------------===//

#include "attn-c/attn.h"
#include "attn/Runtime/Bench.h"

#include "attn/Runtime/Runtime.h"

#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <type_traits>

using namespace attn;

struct attn_context {
  std::unique_ptr<Runtime> runtime;
  Target target = Target::CPU;
  std::string cacheDir;
};

struct attn_kernel {
  std::shared_ptr<Kernel> kernel;
  /// kernel->spec().captures(), whose names attn_capture_info points at.
  std::vector<attn::CaptureSpec> captures;
};

namespace {

thread_local std::string lastError;

attn_status fail(attn_status status, std::string message) {
  lastError = std::move(message);
  return status;
}

/// Maps a message of the runtime to a status by its prefix.
attn_status statusOfCompileError(const std::string &msg) {
  auto starts = [&](const char *p) { return msg.rfind(p, 0) == 0; };
  if (starts("spec: "))
    return ATTN_ERROR_INVALID_SPEC;
  if (starts("options: "))
    return ATTN_ERROR_INVALID_ARGUMENT;
  if (starts("cuda: ") || starts("no CUDA device: "))
    return ATTN_ERROR_UNAVAILABLE;
  if (starts("cache: "))
    return ATTN_ERROR_CACHE;
  return ATTN_ERROR_COMPILE;
}

/// Runs `body`, turning exceptions into statuses.
template <typename F> attn_status guarded(F &&body) {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return fail(ATTN_ERROR_INTERNAL, "out of memory");
  } catch (const std::exception &e) {
    return fail(ATTN_ERROR_INTERNAL,
                std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(ATTN_ERROR_INTERNAL, "internal error: unknown exception");
  }
}

attn_status nullArgument(const char *function, const char *name) {
  return fail(ATTN_ERROR_INVALID_ARGUMENT,
              std::string(function) + ": '" + name + "' is NULL");
}

/// The integer a C caller stored in an enum field or passed as an enum
/// argument. C allows any int there, but in C++ loading an enum object whose
/// value lies outside the enumeration's range is undefined behaviour
/// (UBSan's -fsanitize=enum caught attn_context_options.target = 7): the
/// bits are copied out as a C int (the enums of attn.h are int-sized) before
/// any check, so that -1 reads as -1.
template <typename E>
int64_t cEnumValue(const E &v) {
  static_assert(std::is_enum_v<E> && sizeof(E) == sizeof(int32_t));
  int32_t raw;
  std::memcpy(&raw, &v, sizeof(raw));
  return raw;
}

bool toDType(int64_t d, DType &out) {
  switch (d) {
  case ATTN_DTYPE_F32:
    out = DType::F32;
    return true;
  case ATTN_DTYPE_F16:
    out = DType::F16;
    return true;
  case ATTN_DTYPE_BF16:
    out = DType::BF16;
    return true;
  case ATTN_DTYPE_BOOL:
    out = DType::Bool;
    return true;
  case ATTN_DTYPE_I32:
    out = DType::I32;
    return true;
  case ATTN_DTYPE_I64:
    out = DType::I64;
    return true;
  }
  return false;
}

attn_dtype fromDType(DType d) {
  switch (d) {
  case DType::F32:
    return ATTN_DTYPE_F32;
  case DType::F16:
    return ATTN_DTYPE_F16;
  case DType::BF16:
    return ATTN_DTYPE_BF16;
  case DType::Bool:
    return ATTN_DTYPE_BOOL;
  case DType::I32:
    return ATTN_DTYPE_I32;
  case DType::I64:
    return ATTN_DTYPE_I64;
  }
  return ATTN_DTYPE_F32;
}

const char *operandName(int i) {
  static const char *names[] = {"query",   "key",    "value", "mask",
                                "kv_lens", "output", "lse"};
  return names[i];
}

/// attn_tensor -> TensorRef; false (with the error set) when malformed.
bool toTensorRef(const attn_tensor &t, const char *name, TensorRef &out) {
  out = TensorRef();
  if (!t.data)
    return true;
  if (t.rank < 0 || t.rank > 4) {
    fail(ATTN_ERROR_INVALID_ARGUMENT, std::string(name) + ": rank " +
                                          std::to_string(t.rank) +
                                          " is outside 0..4");
    return false;
  }
  if (!toDType(cEnumValue(t.dtype), out.dtype)) {
    fail(ATTN_ERROR_INVALID_ARGUMENT,
         std::string(name) + ": unknown dtype value " +
             std::to_string(cEnumValue(t.dtype)));
    return false;
  }
  out.data = t.data;
  out.rank = t.rank;
  for (int i = 0; i < t.rank; ++i) {
    out.shape[i] = t.shape[i];
    out.strides[i] = t.strides[i];
  }
  return true;
}

/// attn_args -> AttentionArgs; a status other than ATTN_OK on failure.
attn_status toArgs(const attn_args *args, AttentionArgs &out,
                   const char *function) {
  if (!args)
    return nullArgument(function, "args");
  if (args->struct_size != sizeof(attn_args))
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                std::string(function) + ": args->struct_size is " +
                    std::to_string(args->struct_size) + ", expected " +
                    std::to_string(sizeof(attn_args)) +
                    " (call attn_args_init)");
  const attn_tensor *in[] = {&args->query, &args->key,     &args->value,
                             &args->mask,  &args->kv_lens, &args->output,
                             &args->lse};
  TensorRef *refs[] = {&out.query,  &out.key,    &out.value, &out.mask,
                       &out.kvLens, &out.output, &out.lse};
  for (int i = 0; i < 7; ++i)
    if (!toTensorRef(*in[i], operandName(i), *refs[i]))
      return ATTN_ERROR_INVALID_ARGUMENT;
  if (args->num_captures < 0 || args->num_captures > 64 ||
      (args->num_captures > 0 && !args->captures))
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                std::string(function) + ": args->num_captures is " +
                    std::to_string(args->num_captures) +
                    (args->num_captures > 0 ? " with captures NULL"
                                            : ", outside 0..64"));
  out.captures.resize(args->num_captures);
  for (int32_t i = 0; i < args->num_captures; ++i) {
    std::string name = "capture " + std::to_string(i);
    if (!toTensorRef(args->captures[i], name.c_str(), out.captures[i]))
      return ATTN_ERROR_INVALID_ARGUMENT;
  }
  return ATTN_OK;
}

bool validMaskKind(int64_t k) {
  return k == ATTN_MASK_CAUSAL || k == ATTN_MASK_SLIDING_WINDOW ||
         k == ATTN_MASK_TENSOR || k == ATTN_MASK_KEY_PADDING;
}

attn_status toSpec(const attn_spec *in, AttentionSpec &spec) {
  if (in->struct_size != sizeof(attn_spec))
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                "attn_kernel_compile: spec->struct_size is " +
                    std::to_string(in->struct_size) + ", expected " +
                    std::to_string(sizeof(attn_spec)) +
                    " (call attn_spec_init)");
  auto dynamic = [](int64_t v) {
    return v == -1 ? std::optional<int64_t>() : std::optional<int64_t>(v);
  };
  spec = AttentionSpec();
  spec.batch = dynamic(in->batch);
  spec.qHeads = in->q_heads;
  spec.kvHeads = in->kv_heads;
  spec.qLen = dynamic(in->q_len);
  spec.kvLen = dynamic(in->kv_len);
  spec.headDim = in->head_dim;
  spec.vHeadDim = in->v_head_dim;
  if (!toDType(cEnumValue(in->dtype), spec.dtype))
    return fail(ATTN_ERROR_INVALID_SPEC,
                "spec: unknown dtype value " +
                    std::to_string(cEnumValue(in->dtype)));
  // NaN (ATTN_SCALE_DEFAULT) is the default; every other value, zero and
  // negative included, is the scale (AttentionSpec::validate refuses
  // infinities).
  if (!std::isnan(in->scale))
    spec.scale = in->scale;
  spec.returnLse = in->return_lse != 0;
  if (in->num_masks < 0 || (in->num_masks > 0 && !in->masks))
    return fail(ATTN_ERROR_INVALID_SPEC,
                "spec: num_masks is " + std::to_string(in->num_masks) +
                    (in->num_masks > 0 ? " but masks is NULL" : ""));
  for (int32_t i = 0; i < in->num_masks; ++i) {
    const attn_mask &m = in->masks[i];
    std::string where = "spec: masks[" + std::to_string(i) + "]";
    if (!validMaskKind(cEnumValue(m.kind)))
      return fail(ATTN_ERROR_INVALID_SPEC,
                  where + ": unknown kind value " +
                      std::to_string(cEnumValue(m.kind)));
    MaskSpec ms;
    ms.kind = static_cast<MaskSpec::Kind>(cEnumValue(m.kind));
    ms.bottomRight = m.bottom_right != 0;
    ms.left = m.left;
    ms.right = m.right;
    if (!toDType(cEnumValue(m.dtype), ms.dtype))
      return fail(ATTN_ERROR_INVALID_SPEC,
                  where + ": unknown dtype value " +
                      std::to_string(cEnumValue(m.dtype)));
    ms.batchBroadcast = m.batch_broadcast != 0;
    ms.headBroadcast = m.head_broadcast != 0;
    ms.queryBroadcast = m.query_broadcast != 0;
    spec.masks.push_back(ms);
  }
  if (llvm::Error err = spec.validate())
    return fail(ATTN_ERROR_INVALID_SPEC, llvm::toString(std::move(err)));
  return ATTN_OK;
}

static_assert(static_cast<int>(MaskSpec::Kind::Causal) == ATTN_MASK_CAUSAL &&
                  static_cast<int>(MaskSpec::Kind::SlidingWindow) ==
                      ATTN_MASK_SLIDING_WINDOW &&
                  static_cast<int>(MaskSpec::Kind::Tensor) ==
                      ATTN_MASK_TENSOR &&
                  static_cast<int>(MaskSpec::Kind::KeyPadding) ==
                      ATTN_MASK_KEY_PADDING,
              "attn_mask_kind follows MaskSpec::Kind");

attn_status toCompileOptions(const attn_compile_options *in,
                             CompileOptions &out, const char *function) {
  out = CompileOptions();
  if (!in)
    return ATTN_OK;
  if (in->struct_size != sizeof(attn_compile_options))
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                std::string(function) + ": options->struct_size is " +
                    std::to_string(in->struct_size) + ", expected " +
                    std::to_string(sizeof(attn_compile_options)) +
                    " (call attn_compile_options_init)");
  // All 0: the compiler's choice; anything else is checked by
  // validateCompileOptions when the kernel is compiled.
  const int64_t *t = in->tile_sizes;
  if (t[0] || t[1] || t[2] || t[3])
    out.tileSizes = mlir::attn::AttentionTileSizes{t[0], t[1], t[2], t[3]};
  if (in->kv_splits < 0)
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                std::string(function) + ": options->kv_splits must be >= 0");
  out.kvSplits = in->kv_splits;
  out.unfusedReference = in->unfused_reference != 0;
  if (in->cpu_target)
    out.cpuTarget = in->cpu_target;
  return ATTN_OK;
}

attn_status compileSpec(attn_context *context, const AttentionSpec &spec,
                        const CompileOptions &options, attn_kernel **out) {
  auto kernel = context->runtime->getKernel(spec, context->target, options);
  if (!kernel) {
    std::string msg = llvm::toString(kernel.takeError());
    return fail(statusOfCompileError(msg), msg);
  }
  std::vector<attn::CaptureSpec> captures = (*kernel)->spec().captures();
  *out = new attn_kernel{std::move(*kernel), std::move(captures)};
  return ATTN_OK;
}

} // namespace

extern "C" {

const char *attn_last_error(void) { return lastError.c_str(); }

const char *attn_status_string(attn_status status) {
  switch (status) {
  case ATTN_OK:
    return "ATTN_OK";
  case ATTN_ERROR_INVALID_ARGUMENT:
    return "ATTN_ERROR_INVALID_ARGUMENT";
  case ATTN_ERROR_INVALID_SPEC:
    return "ATTN_ERROR_INVALID_SPEC";
  case ATTN_ERROR_SHAPE_MISMATCH:
    return "ATTN_ERROR_SHAPE_MISMATCH";
  case ATTN_ERROR_COMPILE:
    return "ATTN_ERROR_COMPILE";
  case ATTN_ERROR_UNAVAILABLE:
    return "ATTN_ERROR_UNAVAILABLE";
  case ATTN_ERROR_CACHE:
    return "ATTN_ERROR_CACHE";
  case ATTN_ERROR_BUFFER_TOO_SMALL:
    return "ATTN_ERROR_BUFFER_TOO_SMALL";
  case ATTN_ERROR_INTERNAL:
    return "ATTN_ERROR_INTERNAL";
  }
  return "ATTN_ERROR_UNKNOWN";
}

const char *attn_version(void) { return compilerVersion(); }

size_t attn_dtype_size(attn_dtype dtype) {
  DType d;
  return toDType(cEnumValue(dtype), d) ? static_cast<size_t>(dtypeSize(d))
                                       : 0;
}

void attn_context_options_init(attn_context_options *options) {
  if (!options)
    return;
  std::memset(options, 0, sizeof(*options));
  options->struct_size = sizeof(attn_context_options);
  options->target = ATTN_TARGET_CPU;
  options->max_cached_kernels = kDefaultMaxCachedKernels;
}

attn_status attn_context_create(const attn_context_options *options,
                                attn_context **out) {
  return guarded([&]() -> attn_status {
    if (!out)
      return nullArgument("attn_context_create", "out");
    attn_context_options defaults;
    attn_context_options_init(&defaults);
    if (!options)
      options = &defaults;
    if (options->struct_size != sizeof(attn_context_options))
      return fail(ATTN_ERROR_INVALID_ARGUMENT,
                  "attn_context_create: options->struct_size is " +
                      std::to_string(options->struct_size) + ", expected " +
                      std::to_string(sizeof(attn_context_options)) +
                      " (call attn_context_options_init)");
    if (int64_t target = cEnumValue(options->target);
        target != ATTN_TARGET_CPU && target != ATTN_TARGET_CUDA)
      return fail(ATTN_ERROR_INVALID_ARGUMENT,
                  "attn_context_create: unknown target value " +
                      std::to_string(target));
    RuntimeOptions ro;
    ro.numThreads = options->num_threads;
    ro.maxCachedKernels = options->max_cached_kernels;
    if (options->cache_dir) {
      if (options->cache_dir[0] == '\0')
        ro.diskCache = false;
      else
        ro.cacheDir = options->cache_dir;
    }
    auto runtime = Runtime::create(ro);
    if (!runtime) {
      std::string msg = llvm::toString(runtime.takeError());
      return fail(msg.rfind("threads: ", 0) == 0 ? ATTN_ERROR_INVALID_ARGUMENT
                                                 : ATTN_ERROR_CACHE,
                  msg);
    }
    auto *ctx = new attn_context;
    ctx->runtime = std::move(*runtime);
    ctx->cacheDir = ctx->runtime->cacheDirectory();
    ctx->target =
        options->target == ATTN_TARGET_CUDA ? Target::CUDA : Target::CPU;
    *out = ctx;
    return ATTN_OK;
  });
}

void attn_context_destroy(attn_context *context) { delete context; }

attn_status attn_context_num_threads(const attn_context *context,
                                     uint32_t *out) {
  if (!context)
    return nullArgument("attn_context_num_threads", "context");
  if (!out)
    return nullArgument("attn_context_num_threads", "out");
  *out = context->runtime->numThreads();
  return ATTN_OK;
}

attn_status attn_context_cache_dir(const attn_context *context,
                                   const char **out) {
  if (!context)
    return nullArgument("attn_context_cache_dir", "context");
  if (!out)
    return nullArgument("attn_context_cache_dir", "out");
  *out = context->cacheDir.c_str();
  return ATTN_OK;
}

attn_status attn_context_cache_stats(const attn_context *context,
                                     attn_cache_stats *out) {
  if (!context)
    return nullArgument("attn_context_cache_stats", "context");
  if (!out)
    return nullArgument("attn_context_cache_stats", "out");
  return guarded([&]() -> attn_status {
    RuntimeStats s = context->runtime->stats();
    out->compiles = s.compiles;
    out->memory_entries = context->runtime->cacheSize();
    out->disk_hits = s.diskHits;
    out->disk_misses = s.diskMisses;
    out->disk_rejected = s.diskRejected;
    out->disk_writes = s.diskWrites;
    out->disk_write_failures = s.diskWriteFailures;
    return ATTN_OK;
  });
}

attn_status attn_context_clear_cache(attn_context *context) {
  if (!context)
    return nullArgument("attn_context_clear_cache", "context");
  return guarded([&]() -> attn_status {
    context->runtime->clearCache();
    return ATTN_OK;
  });
}

void attn_spec_init(attn_spec *spec) {
  if (!spec)
    return;
  std::memset(spec, 0, sizeof(*spec));
  spec->struct_size = sizeof(attn_spec);
  spec->batch = 1;
  spec->q_heads = spec->kv_heads = 1;
  spec->q_len = spec->kv_len = 1;
  spec->head_dim = spec->v_head_dim = 64;
  spec->dtype = ATTN_DTYPE_F32;
  spec->scale = ATTN_SCALE_DEFAULT;
}

void attn_mask_init(attn_mask *mask, attn_mask_kind kind) {
  if (!mask)
    return;
  std::memset(mask, 0, sizeof(*mask));
  std::memcpy(&mask->kind, &kind, sizeof(kind)); // validated when compiled
  mask->dtype = cEnumValue(kind) == ATTN_MASK_KEY_PADDING ? ATTN_DTYPE_I32
                                                          : ATTN_DTYPE_BOOL;
  mask->head_broadcast = 1;
}

uint32_t attn_max_threads(void) { return maxRuntimeThreads(); }

const char *attn_cpu_target(void) {
  static const std::string name = hostCPUTarget().name.str();
  return name.c_str();
}

const char *attn_cpu_targets(void) {
  static const std::string names = [] {
    std::string s;
    for (const mlir::attn::CPUTargetInfo &level : runnableCPUTargets())
      s += (s.empty() ? "" : ",") + level.name.str();
    return s;
  }();
  return names.c_str();
}

const char *attn_cpu_model(void) {
  static const std::string model = hostCPUModel();
  return model.c_str();
}

void attn_compile_options_init(attn_compile_options *options) {
  if (!options)
    return;
  std::memset(options, 0, sizeof(*options));
  options->struct_size = sizeof(attn_compile_options);
}

attn_status attn_kernel_compile_json(attn_context *context,
                                     const char *spec_json,
                                     const attn_compile_options *options,
                                     attn_kernel **out) {
  if (!context)
    return nullArgument("attn_kernel_compile_json", "context");
  if (!spec_json)
    return nullArgument("attn_kernel_compile_json", "spec_json");
  if (!out)
    return nullArgument("attn_kernel_compile_json", "out");
  return guarded([&]() -> attn_status {
    CompileOptions co;
    if (attn_status st =
            toCompileOptions(options, co, "attn_kernel_compile_json"))
      return st;
    auto spec = AttentionSpec::fromJSON(spec_json);
    if (!spec)
      return fail(ATTN_ERROR_INVALID_SPEC, llvm::toString(spec.takeError()));
    return compileSpec(context, *spec, co, out);
  });
}

attn_status attn_kernel_compile(attn_context *context, const attn_spec *spec,
                                const attn_compile_options *options,
                                attn_kernel **out) {
  if (!context)
    return nullArgument("attn_kernel_compile", "context");
  if (!spec)
    return nullArgument("attn_kernel_compile", "spec");
  if (!out)
    return nullArgument("attn_kernel_compile", "out");
  return guarded([&]() -> attn_status {
    CompileOptions co;
    if (attn_status st = toCompileOptions(options, co, "attn_kernel_compile"))
      return st;
    AttentionSpec s;
    if (attn_status st = toSpec(spec, s))
      return st;
    return compileSpec(context, s, co, out);
  });
}

void attn_kernel_destroy(attn_kernel *kernel) { delete kernel; }

attn_status attn_kernel_operand_info(const attn_kernel *kernel,
                                     attn_operand operand,
                                     attn_operand_info *out) {
  if (!kernel)
    return nullArgument("attn_kernel_operand_info", "kernel");
  if (!out)
    return nullArgument("attn_kernel_operand_info", "out");
  if (cEnumValue(operand) < 0 || cEnumValue(operand) > 6)
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                "attn_kernel_operand_info: unknown operand value " +
                    std::to_string(cEnumValue(operand)));
  const AttentionSpec &s = kernel->kernel->spec();
  int64_t b = s.batch.value_or(-1), sq = s.qLen.value_or(-1),
          sk = s.kvLen.value_or(-1);
  attn_operand_info info;
  std::memset(&info, 0, sizeof(info));
  info.required = 1;
  info.dtype = fromDType(s.dtype);
  auto shape = [&](std::initializer_list<int64_t> dims) {
    info.rank = static_cast<int32_t>(dims.size());
    int i = 0;
    for (int64_t d : dims)
      info.shape[i++] = d;
  };
  const MaskSpec *tensor = s.findMask(MaskSpec::Kind::Tensor);
  const MaskSpec *padding = s.findMask(MaskSpec::Kind::KeyPadding);
  switch (operand) {
  case ATTN_OPERAND_QUERY:
    shape({b, s.qHeads, sq, s.headDim});
    break;
  case ATTN_OPERAND_KEY:
    shape({b, s.kvHeads, sk, s.headDim});
    break;
  case ATTN_OPERAND_VALUE:
    shape({b, s.kvHeads, sk, s.vHeadDim});
    break;
  case ATTN_OPERAND_OUTPUT:
    shape({b, s.qHeads, sq, s.vHeadDim});
    break;
  case ATTN_OPERAND_MASK:
    info.required = tensor != nullptr;
    if (tensor) {
      info.dtype = fromDType(tensor->dtype);
      shape({tensor->batchBroadcast ? 1 : b,
             tensor->headBroadcast ? 1 : s.qHeads,
             tensor->queryBroadcast ? 1 : sq, sk});
    }
    break;
  case ATTN_OPERAND_KV_LENS:
    info.required = padding != nullptr;
    if (padding) {
      info.dtype = fromDType(padding->dtype);
      shape({b});
    }
    break;
  case ATTN_OPERAND_LSE:
    info.required = s.returnLse;
    if (s.returnLse) {
      info.dtype = ATTN_DTYPE_F32;
      shape({b, s.qHeads, sq});
    }
    break;
  }
  *out = info;
  return ATTN_OK;
}

attn_status attn_kernel_num_captures(const attn_kernel *kernel, int32_t *out) {
  if (!kernel)
    return nullArgument("attn_kernel_num_captures", "kernel");
  if (!out)
    return nullArgument("attn_kernel_num_captures", "out");
  *out = static_cast<int32_t>(kernel->captures.size());
  return ATTN_OK;
}

attn_status attn_kernel_capture_info(const attn_kernel *kernel, int32_t index,
                                     attn_capture_info *out) {
  if (!kernel)
    return nullArgument("attn_kernel_capture_info", "kernel");
  if (!out)
    return nullArgument("attn_kernel_capture_info", "out");
  if (index < 0 || static_cast<size_t>(index) >= kernel->captures.size())
    return fail(
        ATTN_ERROR_INVALID_ARGUMENT,
        "attn_kernel_capture_info: index " + std::to_string(index) +
            " is outside 0.." +
            std::to_string(static_cast<int64_t>(kernel->captures.size()) - 1) +
            " (the kernel reads " + std::to_string(kernel->captures.size()) +
            " captures)");
  const attn::CaptureSpec &c = kernel->captures[index];
  const AttentionSpec &s = kernel->kernel->spec();
  std::vector<int64_t> shape = c.shapeAt(
      s.batch.value_or(-1), s.qLen.value_or(-1), s.kvLen.value_or(-1));
  attn_capture_info info;
  std::memset(&info, 0, sizeof(info));
  info.name = c.name.c_str();
  info.dtype = fromDType(c.dtype);
  info.rank = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i)
    info.shape[i] = shape[i];
  *out = info;
  return ATTN_OK;
}

attn_status attn_kernel_get_info(const attn_kernel *kernel,
                                 attn_kernel_info *out) {
  if (!kernel)
    return nullArgument("attn_kernel_get_info", "kernel");
  if (!out)
    return nullArgument("attn_kernel_get_info", "out");
  const KernelInfo &ki = kernel->kernel->info();
  attn_kernel_info info;
  std::memset(&info, 0, sizeof(info));
  info.target = ki.target == Target::CUDA ? ATTN_TARGET_CUDA : ATTN_TARGET_CPU;
  if (ki.tileSizes) // all 0 for the unfused reference
    for (int i = 0; i < 4; ++i)
      info.tile_sizes[i] = ki.tileSizes->toArray()[i];
  info.kv_splits = ki.kvSplits;
  info.compile_ms = ki.compileMs;
  info.load_ms = ki.loadMs;
  info.from_disk_cache = ki.fromDiskCache;
  *out = info;
  return ATTN_OK;
}

attn_status attn_kernel_workspace_bytes(const attn_kernel *kernel,
                                        int64_t batch, int64_t q_len,
                                        int64_t kv_len, size_t *out) {
  if (!kernel)
    return nullArgument("attn_kernel_workspace_bytes", "kernel");
  if (!out)
    return nullArgument("attn_kernel_workspace_bytes", "out");
  if (batch < 0 || q_len < 0 || kv_len < 0)
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                "attn_kernel_workspace_bytes: negative size");
  *out = 0;
  return ATTN_OK;
}

attn_status attn_kernel_spec_json(const attn_kernel *kernel, char *buf,
                                  size_t capacity, size_t *needed) {
  if (!kernel)
    return nullArgument("attn_kernel_spec_json", "kernel");
  return guarded([&]() -> attn_status {
    std::string json = kernel->kernel->spec().toJSON();
    if (needed)
      *needed = json.size() + 1;
    if (!buf || capacity < json.size() + 1)
      return fail(ATTN_ERROR_BUFFER_TOO_SMALL,
                  "attn_kernel_spec_json: the spec needs " +
                      std::to_string(json.size() + 1) + " bytes, capacity is " +
                      std::to_string(buf ? capacity : 0));
    std::memcpy(buf, json.c_str(), json.size() + 1);
    return ATTN_OK;
  });
}

attn_status attn_kernel_flops(const attn_kernel *kernel, int64_t batch,
                              int64_t q_len, int64_t kv_len, double *out) {
  if (!kernel)
    return nullArgument("attn_kernel_flops", "kernel");
  if (!out)
    return nullArgument("attn_kernel_flops", "out");
  if (batch < 0 || q_len < 0 || kv_len < 0)
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                "attn_kernel_flops: negative size");
  const AttentionSpec &s = kernel->kernel->spec();
  *out = attentionFlops(s, s.batch.value_or(batch), s.qLen.value_or(q_len),
                        s.kvLen.value_or(kv_len));
  return ATTN_OK;
}

attn_status attn_tensor_contiguous(attn_tensor *t, void *data, attn_dtype dtype,
                                   int32_t rank, const int64_t *shape) {
  if (!t)
    return nullArgument("attn_tensor_contiguous", "t");
  if (!data)
    return nullArgument("attn_tensor_contiguous", "data");
  if (!shape)
    return nullArgument("attn_tensor_contiguous", "shape");
  if (rank < 1 || rank > 4)
    return fail(ATTN_ERROR_INVALID_ARGUMENT, "attn_tensor_contiguous: rank " +
                                                 std::to_string(rank) +
                                                 " is outside 1..4");
  if (DType d; !toDType(cEnumValue(dtype), d))
    return fail(ATTN_ERROR_INVALID_ARGUMENT,
                "attn_tensor_contiguous: unknown dtype value " +
                    std::to_string(cEnumValue(dtype)));
  std::memset(t, 0, sizeof(*t));
  t->data = data;
  t->dtype = dtype;
  t->rank = rank;
  int64_t stride = 1;
  for (int i = rank - 1; i >= 0; --i) {
    t->shape[i] = shape[i];
    t->strides[i] = stride;
    stride *= shape[i];
  }
  return ATTN_OK;
}

void attn_args_init(attn_args *args) {
  if (!args)
    return;
  std::memset(args, 0, sizeof(*args));
  args->struct_size = sizeof(attn_args);
}

attn_status attn_kernel_validate(const attn_kernel *kernel,
                                 const attn_args *args) {
  if (!kernel)
    return nullArgument("attn_kernel_validate", "kernel");
  return guarded([&]() -> attn_status {
    AttentionArgs a;
    if (attn_status st = toArgs(args, a, "attn_kernel_validate"))
      return st;
    if (llvm::Error err = kernel->kernel->validate(a))
      return fail(ATTN_ERROR_SHAPE_MISMATCH, llvm::toString(std::move(err)));
    return ATTN_OK;
  });
}

attn_status attn_kernel_run(const attn_kernel *kernel, const attn_args *args) {
  if (!kernel)
    return nullArgument("attn_kernel_run", "kernel");
  return guarded([&]() -> attn_status {
    AttentionArgs a;
    if (attn_status st = toArgs(args, a, "attn_kernel_run"))
      return st;
    if (llvm::Error err = kernel->kernel->run(a)) {
      attn_status st = err.isA<ArgumentError>() ? ATTN_ERROR_SHAPE_MISMATCH
                                                : ATTN_ERROR_INTERNAL;
      return fail(st, llvm::toString(std::move(err)));
    }
    return ATTN_OK;
  });
}

} // extern "C"

double attn_measure_fma_peak_gflops(uint32_t threads) {
  if (!threads)
    threads = std::max(1u, std::thread::hardware_concurrency());
  return attn::measureFmaPeakGflops(threads);
}

double attn_measure_memory_bandwidth_gbs(uint32_t threads) {
  if (!threads)
    threads = std::max(1u, std::thread::hardware_concurrency());
  return attn::measureMemoryBandwidthGBs(threads);
}
