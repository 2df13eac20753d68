/*===- attn.h - C API of the attn-mlir JIT runtime ----------------*- C -*-===*
 *
 * A stable C interface for embedding the attention compiler in frameworks:
 * create a context (target, threads, kernel cache directory), compile an
 * attention spec into a kernel, query what the kernel expects, run it on
 * caller-owned buffers with explicit strides, and destroy the handles.
 *
 *   attn_context *ctx;
 *   attn_context_options opts;
 *   attn_context_options_init(&opts);            // CPU, all cores
 *   if (attn_context_create(&opts, &ctx) != ATTN_OK) fail(attn_last_error());
 *   attn_kernel *k;
 *   attn_kernel_compile_json(ctx, "{\"batch\": 1, \"q_heads\": 8, "
 *       "\"q_len\": 128, \"kv_len\": 128, \"head_dim\": 64}", NULL, &k);
 *   attn_args args;
 *   attn_args_init(&args);
 *   attn_tensor_contiguous(&args.query, q, ATTN_DTYPE_F32, 4, q_shape);
 *   ...                                           // key, value, output
 *   attn_status s = attn_kernel_run(k, &args);    // validated, then run
 *   attn_kernel_destroy(k);
 *   attn_context_destroy(ctx);
 *
 * Conventions
 * - Every function that can fail returns an attn_status; ATTN_OK is 0. On
 *   failure, attn_last_error() returns the runtime's message (e.g. "key:
 *   shape [1, 8, 100, 64] does not match [1, 8, 128, 64]"). Output
 *   parameters are only written on success.
 * - No C++ exception, STL type or ownership of caller memory crosses this
 *   interface. Tensors are borrowed for the duration of one call.
 * - Shapes and strides are in elements (not bytes), int64. Tensors have rank
 *   <= 4; the innermost stride must be 1 and strides must be >= 0 (0
 *   broadcasts along a dimension). Layouts: query [B, Hq, Sq, D], key
 *   [B, Hkv, Sk, D], value [B, Hkv, Sk, Dv], output [B, Hq, Sq, Dv] (the
 *   spec's dtype); mask [B|1, Hq|1, Sq|1, Sk] (bool, or a float additive
 *   bias; per the spec); kv_lens [B] (i32 or i64, per the spec); lse
 *   [B, Hq, Sq] f32 (natural log of the scaled scores).
 * - Thread safety: a context and its kernels may be used from any number of
 *   threads at once (compiling and running). The last error is per thread.
 *   A kernel stays valid after its context is destroyed (it shares the
 *   worker threads), until attn_kernel_destroy.
 *
 * The spec (JSON) is described in docs/design.md section 6 / README.md.
 *===----------------------------------------------------------------------===*/

#ifndef ATTN_C_ATTN_H
#define ATTN_C_ATTN_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define ATTN_C_EXPORT __declspec(dllexport)
#else
#define ATTN_C_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this interface: bumped on incompatible changes. */
#define ATTN_C_API_VERSION 2

typedef enum attn_status {
  ATTN_OK = 0,
  /* A NULL handle or pointer, an out-of-range enum, a bad struct_size. */
  ATTN_ERROR_INVALID_ARGUMENT = 1,
  /* The spec (JSON or struct) is malformed or inconsistent. */
  ATTN_ERROR_INVALID_SPEC = 2,
  /* Run arguments do not match the kernel: missing operand, dtype, rank,
     shape, stride. */
  ATTN_ERROR_SHAPE_MISMATCH = 3,
  /* The compiler failed on a valid spec. */
  ATTN_ERROR_COMPILE = 4,
  /* The target is not available (e.g. CUDA without a device or driver). */
  ATTN_ERROR_UNAVAILABLE = 5,
  /* The kernel cache directory was refused or cannot be created. */
  ATTN_ERROR_CACHE = 6,
  /* A buffer passed by the caller is too small (see the function). */
  ATTN_ERROR_BUFFER_TOO_SMALL = 7,
  /* Out of memory, or any other unexpected failure. */
  ATTN_ERROR_INTERNAL = 8
} attn_status;

typedef enum attn_dtype {
  ATTN_DTYPE_F32 = 0,
  ATTN_DTYPE_F16 = 1,
  ATTN_DTYPE_BF16 = 2,
  ATTN_DTYPE_BOOL = 3, /* one byte, 0 = false */
  ATTN_DTYPE_I32 = 4,
  ATTN_DTYPE_I64 = 5
} attn_dtype;

typedef enum attn_target {
  ATTN_TARGET_CPU = 0,
  ATTN_TARGET_CUDA = 1
} attn_target;

/* Opaque handles. */
typedef struct attn_context attn_context;
typedef struct attn_kernel attn_kernel;

/* The message of the last failed call on this thread ("" when none yet;
   successful calls leave it unchanged). The pointer stays valid until the
   next failing attn_* call on this thread. */
ATTN_C_EXPORT const char *attn_last_error(void);
/* A constant name for a status, e.g. "ATTN_ERROR_COMPILE". */
ATTN_C_EXPORT const char *attn_status_string(attn_status status);
/* The compiler's identity, e.g. "attn-mlir 0.1.0 (git ...) LLVM 22.1.8". */
ATTN_C_EXPORT const char *attn_version(void);
/* CPU target levels (x86-64-v3: AVX2 + FMA + F16C; x86-64-v4: AVX-512;
   x86-64-v4-bf16: + AVX512-BF16; x86-64-v4-amx: + AMX). attn_cpu_target:
   the level CPU kernels are compiled for by default, the highest this CPU
   has (AMX only where the OS grants it); attn_cpu_targets: the levels this
   CPU can run, comma-separated, lowest first (what
   attn_compile_options.cpu_target accepts); attn_cpu_model: the CPU's model
   name. Static strings. */
ATTN_C_EXPORT const char *attn_cpu_target(void);
ATTN_C_EXPORT const char *attn_cpu_targets(void);
ATTN_C_EXPORT const char *attn_cpu_model(void);
/* The most CPU worker threads a context accepts (4 per core of this
   machine). */
ATTN_C_EXPORT uint32_t attn_max_threads(void);
/* Bytes per element of a dtype (0 for an unknown value). */
ATTN_C_EXPORT size_t attn_dtype_size(attn_dtype dtype);

/*===--------------------------------------------------------------------===*
 * Context
 *===--------------------------------------------------------------------===*/

typedef struct attn_context_options {
  /* sizeof(attn_context_options); set by attn_context_options_init. */
  uint32_t struct_size;
  attn_target target;
  /* CPU worker threads; 0 = every core. More than 4 per core is refused
     (INVALID_ARGUMENT). */
  uint32_t num_threads;
  /* On-disk kernel cache directory. NULL: the directory named by the
     environment variable ATTN_MLIR_CACHE_DIR if set (none when it is set to
     ""), else the per-user $XDG_CACHE_HOME/attn-mlir or
     $HOME/.cache/attn-mlir (none when that cannot be used). "": no disk
     cache. It is created with mode 0700; a directory owned by another user,
     group- or world-writable is refused (ATTN_ERROR_CACHE). Copied. */
  const char *cache_dir;
  /* The most compiled kernels the context's in-memory cache keeps (about
     0.3 MiB each); beyond it the least recently used is dropped. 0: no
     bound. Default 256. */
  uint32_t max_cached_kernels;
} attn_context_options;

/* Defaults: CPU, all cores, cache directory from the environment, 256
   kernels in memory. */
ATTN_C_EXPORT void attn_context_options_init(attn_context_options *options);

/* Creates a context. `options` may be NULL (defaults). Errors:
   INVALID_ARGUMENT (NULL `out`, bad struct_size or target, num_threads
   over 4 per core), CACHE. */
ATTN_C_EXPORT attn_status
attn_context_create(const attn_context_options *options, attn_context **out);
/* Destroys a context (NULL is ignored). Kernels created from it remain
   usable until destroyed. */
ATTN_C_EXPORT void attn_context_destroy(attn_context *context);
/* Number of CPU worker threads of the context. */
ATTN_C_EXPORT attn_status attn_context_num_threads(const attn_context *context,
                                                   uint32_t *out);
/* The disk cache directory in use ("" when none); the string lives as long
   as the context. */
ATTN_C_EXPORT attn_status attn_context_cache_dir(const attn_context *context,
                                                 const char **out);

/* Counters of a context's kernel caches since it was created. */
typedef struct attn_cache_stats {
  uint64_t compiles;       /* kernels compiled (the compiler ran) */
  uint64_t memory_entries; /* kernels in the in-memory cache */
  uint64_t disk_hits;      /* kernels loaded from the disk cache */
  uint64_t disk_misses;    /* disk lookups without a usable entry */
  uint64_t disk_rejected;  /* entries rejected: truncated, corrupt, unsafe */
  uint64_t disk_writes;    /* entries written */
  uint64_t disk_write_failures;
} attn_cache_stats;

ATTN_C_EXPORT attn_status attn_context_cache_stats(const attn_context *context,
                                                   attn_cache_stats *out);
/* Empties the context's in-memory kernel cache (the disk cache is kept;
   kernels already returned stay usable until destroyed). */
ATTN_C_EXPORT attn_status attn_context_clear_cache(attn_context *context);

/*===--------------------------------------------------------------------===*
 * Specs and compilation
 *===--------------------------------------------------------------------===*/

typedef enum attn_mask_kind {
  /* key j visible to query i when j <= i (+ kv_len - q_len if bottom_right) */
  ATTN_MASK_CAUSAL = 0,
  /* i - left <= j <= i + right (+ the same shift) */
  ATTN_MASK_SLIDING_WINDOW = 1,
  /* a mask/bias tensor passed at run time (attn_args.mask) */
  ATTN_MASK_TENSOR = 2,
  /* kv_lens passed at run time (attn_args.kv_lens): keys j >= kv_lens[b]
     are hidden */
  ATTN_MASK_KEY_PADDING = 3
} attn_mask_kind;

typedef struct attn_mask {
  attn_mask_kind kind;
  int32_t bottom_right;    /* CAUSAL, SLIDING_WINDOW: 1 = bottom-right */
  int64_t left, right;     /* SLIDING_WINDOW */
  attn_dtype dtype;        /* TENSOR: BOOL, F32, F16, BF16;
                              KEY_PADDING: I32, I64 */
  int32_t batch_broadcast; /* TENSOR: 1 = the mask's batch dim is 1 */
  int32_t head_broadcast;  /* TENSOR: 1 = the mask's head dim is 1 */
  int32_t query_broadcast; /* TENSOR: 1 = the mask's query dim is 1 */
} attn_mask;

/* attn_spec.scale's default: 1/sqrt(head_dim). */
#define ATTN_SCALE_DEFAULT (__builtin_nan(""))

/* The struct form of a spec. Sizes of -1 (batch, q_len, kv_len) are
   dynamic: one kernel serves every value. */
typedef struct attn_spec {
  uint32_t struct_size; /* sizeof(attn_spec); set by attn_spec_init */
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim;
  attn_dtype dtype;   /* F32, F16 or BF16 (query, key, value, output) */
  /* Multiplies Q K^T; any finite value, zero and negative included. NaN
     (ATTN_SCALE_DEFAULT, what attn_spec_init sets) means 1/sqrt(head_dim);
     an infinity is INVALID_SPEC. */
  double scale;
  int32_t return_lse; /* 1: the kernel also writes the log-sum-exp */
  int32_t num_masks;  /* masks combine by intersection */
  const attn_mask *masks;
} attn_spec;

/* Defaults: batch 1, 1 head, q_len = kv_len = 1, head_dim = v_head_dim = 64,
   f32, default scale, no LSE, no mask. */
ATTN_C_EXPORT void attn_spec_init(attn_spec *spec);
/* Mask defaults for a kind: top-left alignment, window 0/0, tensor masks
   bool with head_broadcast, kv_lens i32. */
ATTN_C_EXPORT void attn_mask_init(attn_mask *mask, attn_mask_kind kind);

/* Per-kernel compiler choices; zeroes let the compiler decide. */
typedef struct attn_compile_options {
  uint32_t struct_size;  /* sizeof(attn_compile_options); set by _init */
  int64_t tile_sizes[4]; /* batch, heads, query, key; all 0: compiler's */
  /* Split-KV (flash-decoding) key splits; 0: the compiler's choice. */
  int64_t kv_splits;
  /* Nonzero: the unfused reference lowering (whole score matrix in memory,
     one thread) instead of the flash path; for benchmarks. */
  int32_t unfused_reference;
  /* CPU target level to compile for ("x86-64-v3", ...; see attn_cpu_target);
     NULL or "": the highest this CPU has. A level this CPU cannot run is an
     INVALID_ARGUMENT error naming the missing feature. Part of the cache
     key. */
  const char *cpu_target;
} attn_compile_options;

ATTN_C_EXPORT void attn_compile_options_init(attn_compile_options *options);

/* Compiles (or finds in the context's caches) the kernel of a JSON spec.
   `options` may be NULL (defaults). Kernels are cached by spec, target and
   options: a second request returns the same compiled code at once.
   Errors: INVALID_ARGUMENT, INVALID_SPEC (the message names the key),
   COMPILE (e.g. tile sizes that are not 4 positive integers), UNAVAILABLE,
   CACHE. */
ATTN_C_EXPORT attn_status attn_kernel_compile_json(
    attn_context *context, const char *spec_json,
    const attn_compile_options *options, attn_kernel **out);
/* The same for a struct spec. */
ATTN_C_EXPORT attn_status
attn_kernel_compile(attn_context *context, const attn_spec *spec,
                    const attn_compile_options *options, attn_kernel **out);
/* Releases a kernel handle (NULL is ignored). */
ATTN_C_EXPORT void attn_kernel_destroy(attn_kernel *kernel);

/*===--------------------------------------------------------------------===*
 * Kernel queries
 *===--------------------------------------------------------------------===*/

typedef enum attn_operand {
  ATTN_OPERAND_QUERY = 0,
  ATTN_OPERAND_KEY = 1,
  ATTN_OPERAND_VALUE = 2,
  ATTN_OPERAND_MASK = 3,
  ATTN_OPERAND_KV_LENS = 4,
  ATTN_OPERAND_OUTPUT = 5,
  ATTN_OPERAND_LSE = 6
} attn_operand;

typedef struct attn_operand_info {
  int32_t required; /* 1: the kernel reads/writes it; 0: must be absent */
  attn_dtype dtype;
  int32_t rank;
  /* Expected sizes; -1 where the spec leaves the size dynamic (it then
     comes from query (batch, q_len) and key (kv_len) at run time). */
  int64_t shape[4];
} attn_operand_info;

ATTN_C_EXPORT attn_status attn_kernel_operand_info(const attn_kernel *kernel,
                                                   attn_operand operand,
                                                   attn_operand_info *out);

/* A run-time input of the kernel's score_mod / mask_mod (a capture): its
   name (as the spec's documentation and attn-run's --capture write it),
   dtype and expected sizes, -1 where the spec leaves a size dynamic. The
   name lives as long as the kernel. */
typedef struct attn_capture_info {
  const char *name;
  attn_dtype dtype;
  int32_t rank;
  int64_t shape[4];
} attn_capture_info;

/* The number of captures the kernel reads (attn_args.num_captures). */
ATTN_C_EXPORT attn_status attn_kernel_num_captures(const attn_kernel *kernel,
                                                   int32_t *out);
/* Capture `index` (0 .. num_captures - 1). Errors: INVALID_ARGUMENT for an
   index out of range. */
ATTN_C_EXPORT attn_status attn_kernel_capture_info(const attn_kernel *kernel,
                                                   int32_t index,
                                                   attn_capture_info *out);

typedef struct attn_kernel_info {
  attn_target target;
  int64_t tile_sizes[4]; /* batch, heads, query, key */
  int64_t kv_splits;     /* split-KV key splits (1: none) */
  double compile_ms;     /* time the compiler ran; 0 when from a cache */
  double load_ms;        /* time loading the object code into the JIT */
  int32_t from_disk_cache;
} attn_kernel_info;

ATTN_C_EXPORT attn_status attn_kernel_get_info(const attn_kernel *kernel,
                                               attn_kernel_info *out);

/* Scratch memory the caller must provide for one run at these sizes (sizes
   the spec fixes are ignored), in bytes. The CPU kernels need none (they
   keep their tiles on the stack and in registers; split-KV kernels allocate
   their partial-state workspace themselves): 0. Reserved for targets that
   do. */
ATTN_C_EXPORT attn_status attn_kernel_workspace_bytes(const attn_kernel *kernel,
                                                      int64_t batch,
                                                      int64_t q_len,
                                                      int64_t kv_len,
                                                      size_t *out);

/* The kernel's canonical spec JSON (every field explicit), NUL-terminated,
   into buf[0..capacity). `needed` (may be NULL) receives the size with the
   NUL. Errors: BUFFER_TOO_SMALL (nothing written but `needed`). */
ATTN_C_EXPORT attn_status attn_kernel_spec_json(const attn_kernel *kernel,
                                                char *buf, size_t capacity,
                                                size_t *needed);

/* Floating-point operations of one run at these sizes (docs/design.md
   section 8). */
ATTN_C_EXPORT attn_status attn_kernel_flops(const attn_kernel *kernel,
                                            int64_t batch, int64_t q_len,
                                            int64_t kv_len, double *out);

/*===--------------------------------------------------------------------===*
 * Running
 *===--------------------------------------------------------------------===*/

/* A borrowed tensor: data == NULL means absent. */
typedef struct attn_tensor {
  void *data;
  attn_dtype dtype;
  int32_t rank;       /* 0..4 */
  int64_t shape[4];   /* elements */
  int64_t strides[4]; /* elements */
} attn_tensor;

/* Fills `t` as a C-contiguous tensor over `data`. Errors: INVALID_ARGUMENT
   (rank outside 1..4, NULL pointers). */
ATTN_C_EXPORT attn_status attn_tensor_contiguous(attn_tensor *t, void *data,
                                                 attn_dtype dtype, int32_t rank,
                                                 const int64_t *shape);

typedef struct attn_args {
  uint32_t struct_size; /* sizeof(attn_args); set by attn_args_init */
  attn_tensor query, key, value;
  attn_tensor mask;    /* when the spec has a TENSOR mask */
  attn_tensor kv_lens; /* when the spec has a KEY_PADDING mask */
  attn_tensor output;
  attn_tensor lse; /* when the spec returns the LSE */
  /* The inputs of the spec's mask_mod (its captures), num_captures of
     them in the order attn_kernel_capture_info numbers them, e.g.
     q_document_ids [B, Sq] and kv_document_ids [B, Sk] i32 for a document
     mask_mod; 0 and NULL when the spec has none. */
  int32_t num_captures;
  const attn_tensor *captures;
} attn_args;

/* Zeroes every tensor (all absent) and sets struct_size. */
ATTN_C_EXPORT void attn_args_init(attn_args *args);

/* Checks `args` against the kernel without running it. Errors:
   INVALID_ARGUMENT, SHAPE_MISMATCH (the message names the operand). */
ATTN_C_EXPORT attn_status attn_kernel_validate(const attn_kernel *kernel,
                                               const attn_args *args);
/* Validates, then runs the kernel on the context's threads; returns when
   the output is written. Output and LSE must not overlap the inputs. */
ATTN_C_EXPORT attn_status attn_kernel_run(const attn_kernel *kernel,
                                          const attn_args *args);

/*===--------------------------------------------------------------------===*
 * Machine limits, for benchmark reports
 *===--------------------------------------------------------------------===*/

/* Measured FP32 FMA throughput in GFLOP/s on `threads` threads (0: every
   core) running independent 512-bit FMA chains (256-bit where AVX-512 is
   missing), about 0.3 s. */
ATTN_C_EXPORT double attn_measure_fma_peak_gflops(uint32_t threads);
/* Measured memory read bandwidth in GB/s (1e9 bytes/s) on `threads` threads
   (0: every core), streaming 512 MiB. */
ATTN_C_EXPORT double attn_measure_memory_bandwidth_gbs(uint32_t threads);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ATTN_C_ATTN_H */
