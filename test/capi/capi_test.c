/*===- capi_test.c - the C API, compiled as C ------------------------------===*
 *
 * Runs kernels through include/attn-c/attn.h and checks them against a naive
 * double-precision reference (contiguous and strided operands, dynamic
 * sizes, masks, key padding, LSE), the disk cache across contexts, and every
 * error path: each status the API returns, with its message.
 *
 *   attn-capi-test [SCRATCH_DIR]     (default: a fresh directory in /tmp)
 *
 * Exit code 0 when every check passes; the failures are printed.
 *===----------------------------------------------------------------------===*/

#define _GNU_SOURCE
#include "attn-c/attn.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    ++checks;                                                                  \
    if (!(cond)) {                                                             \
      ++failures;                                                              \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
    }                                                                          \
  } while (0)

/* Expects `call` to return `status` with a message containing `fragment`. */
#define EXPECT_STATUS(call, status, fragment)                                  \
  do {                                                                         \
    attn_status s_ = (call);                                                   \
    CHECK(s_ == (status), "%s returned %s (%s), expected %s", #call,           \
          attn_status_string(s_), attn_last_error(),                           \
          attn_status_string(status));                                         \
    if ((status) != ATTN_OK)                                                   \
      CHECK(strstr(attn_last_error(), (fragment)) != NULL,                     \
            "message \"%s\" does not contain \"%s\"", attn_last_error(),       \
            (fragment));                                                       \
  } while (0)

#define EXPECT_OK(call) EXPECT_STATUS(call, ATTN_OK, "")

/*===--------------------------------------------------------------------===*
 * Reference
 *===--------------------------------------------------------------------===*/

typedef struct Problem {
  int64_t b, hq, hkv, sq, sk, d, dv;
  float *q, *k, *v, *out, *lse;
} Problem;

static float frand(unsigned *state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *randomArray(int64_t n, unsigned seed) {
  float *a = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; ++i)
    a[i] = frand(&seed);
  return a;
}

/* Element (b, h, s, x) of a [B, H, S, X] tensor with the given strides. */
static float at(const float *base, const int64_t *strides, int64_t b, int64_t h,
                int64_t s, int64_t x) {
  return base[b * strides[0] + h * strides[1] + s * strides[2] +
              x * strides[3]];
}

/* Document ids of queries [B, Sq] and keys [B, Sk] (the document
   mask_mod: keys of other documents are hidden); NULL: none. */
static const int32_t *qDocs, *kvDocs;

/* max |out - ref| over the problem; causal is top-left; kv_lens hides keys
   j >= lens[b]; mask [B, Sk] hides keys where 0; qDocs / kvDocs as above. */
static double maxError(const Problem *p, const int64_t *qs, const int64_t *ks,
                       const int64_t *vs, const int64_t *os, int causal,
                       const int32_t *lens, const unsigned char *mask,
                       double *lseErr) {
  double scale = 1.0 / sqrt((double)p->d), err = 0, lerr = 0;
  double *scores = malloc(sizeof(double) * (size_t)p->sk);
  for (int64_t b = 0; b < p->b; ++b)
    for (int64_t h = 0; h < p->hq; ++h) {
      int64_t kh = h / (p->hq / p->hkv);
      for (int64_t i = 0; i < p->sq; ++i) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < p->sk; ++j) {
          int visible =
              (!causal || j <= i) && (!lens || j < lens[b]) &&
              (!mask || mask[b * p->sk + j]) &&
              (!qDocs || qDocs[b * p->sq + i] == kvDocs[b * p->sk + j]);
          double s = 0;
          for (int64_t x = 0; x < p->d; ++x)
            s += (double)at(p->q, qs, b, h, i, x) *
                 (double)at(p->k, ks, b, kh, j, x);
          scores[j] = visible ? s * scale : -INFINITY;
          if (scores[j] > mx)
            mx = scores[j];
        }
        if (mx == -INFINITY) { /* no visible key: output 0, LSE -inf */
          for (int64_t x = 0; x < p->dv; ++x) {
            double e = fabs((double)at(p->out, os, b, h, i, x));
            if (!(e <= err))
              err = e;
          }
          if (p->lse && p->lse[(b * p->hq + h) * p->sq + i] != -INFINITY)
            lerr = INFINITY;
          continue;
        }
        for (int64_t j = 0; j < p->sk; ++j)
          sum += scores[j] == -INFINITY ? 0 : exp(scores[j] - mx);
        for (int64_t x = 0; x < p->dv; ++x) {
          double o = 0;
          for (int64_t j = 0; j < p->sk; ++j)
            if (scores[j] != -INFINITY)
              o +=
                  exp(scores[j] - mx) / sum * (double)at(p->v, vs, b, kh, j, x);
          double e = fabs(o - (double)at(p->out, os, b, h, i, x));
          if (!(e <= err))
            err = e;
        }
        if (p->lse) {
          double l = mx + log(sum);
          double got = p->lse[(b * p->hq + h) * p->sq + i];
          double e = fabs(l - got);
          if (!(e <= lerr))
            lerr = e;
        }
      }
    }
  free(scores);
  if (lseErr)
    *lseErr = lerr;
  return err;
}

static void contiguousStrides(const int64_t *shape, int64_t *strides) {
  strides[3] = 1;
  for (int i = 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
}

/*===--------------------------------------------------------------------===*
 * Tests that run kernels
 *===--------------------------------------------------------------------===*/

static const char *kSmallSpec =
    "{\"batch\": 2, \"q_heads\": 4, \"kv_heads\": 2, \"q_len\": 7, "
    "\"kv_len\": 9, \"head_dim\": 16, \"mask\": {\"kind\": \"causal\"}, "
    "\"lse\": true}";

static void testContiguousRun(attn_context *ctx) {
  attn_kernel *k = NULL;
  EXPECT_OK(attn_kernel_compile_json(ctx, kSmallSpec, NULL, &k));
  if (!k)
    return;
  Problem p = {2, 4, 2, 7, 9, 16, 16, 0, 0, 0, 0, 0};
  int64_t qshape[4] = {2, 4, 7, 16}, kshape[4] = {2, 2, 9, 16},
          lshape[3] = {2, 4, 7};
  p.q = randomArray(2 * 4 * 7 * 16, 1);
  p.k = randomArray(2 * 2 * 9 * 16, 2);
  p.v = randomArray(2 * 2 * 9 * 16, 3);
  p.out = calloc(2 * 4 * 7 * 16, sizeof(float));
  p.lse = calloc(2 * 4 * 7, sizeof(float));
  attn_args args;
  attn_args_init(&args);
  EXPECT_OK(
      attn_tensor_contiguous(&args.query, p.q, ATTN_DTYPE_F32, 4, qshape));
  EXPECT_OK(attn_tensor_contiguous(&args.key, p.k, ATTN_DTYPE_F32, 4, kshape));
  EXPECT_OK(
      attn_tensor_contiguous(&args.value, p.v, ATTN_DTYPE_F32, 4, kshape));
  EXPECT_OK(
      attn_tensor_contiguous(&args.output, p.out, ATTN_DTYPE_F32, 4, qshape));
  EXPECT_OK(
      attn_tensor_contiguous(&args.lse, p.lse, ATTN_DTYPE_F32, 3, lshape));
  EXPECT_OK(attn_kernel_validate(k, &args));
  EXPECT_OK(attn_kernel_run(k, &args));
  int64_t qs[4], ks[4];
  contiguousStrides(qshape, qs);
  contiguousStrides(kshape, ks);
  double lseErr = 0;
  double err = maxError(&p, qs, ks, ks, qs, 1, NULL, NULL, &lseErr);
  CHECK(err <= 2e-5, "contiguous causal GQA: max abs error %g", err);
  CHECK(lseErr <= 2e-5, "contiguous causal GQA: LSE error %g", lseErr);

  /* Queries */
  attn_kernel_info info;
  EXPECT_OK(attn_kernel_get_info(k, &info));
  CHECK(info.target == ATTN_TARGET_CPU, "target %d", (int)info.target);
  CHECK(info.tile_sizes[0] > 0 && info.tile_sizes[3] > 0, "tile sizes");
  attn_operand_info oi;
  EXPECT_OK(attn_kernel_operand_info(k, ATTN_OPERAND_KEY, &oi));
  CHECK(oi.required && oi.rank == 4 && oi.shape[0] == 2 && oi.shape[1] == 2 &&
            oi.shape[2] == 9 && oi.shape[3] == 16 && oi.dtype == ATTN_DTYPE_F32,
        "key operand info");
  EXPECT_OK(attn_kernel_operand_info(k, ATTN_OPERAND_LSE, &oi));
  CHECK(oi.required && oi.rank == 3 && oi.shape[2] == 7, "lse operand info");
  EXPECT_OK(attn_kernel_operand_info(k, ATTN_OPERAND_MASK, &oi));
  CHECK(!oi.required, "no mask operand");
  EXPECT_OK(attn_kernel_operand_info(k, ATTN_OPERAND_KV_LENS, &oi));
  CHECK(!oi.required, "no kv_lens operand");
  size_t ws = 1;
  EXPECT_OK(attn_kernel_workspace_bytes(k, 2, 7, 9, &ws));
  CHECK(ws == 0, "workspace %zu", ws);
  double flops = 0;
  EXPECT_OK(attn_kernel_flops(k, 0, 0, 0, &flops));
  CHECK(flops > 0, "flops %g", flops);
  size_t needed = 0;
  char small[8];
  EXPECT_STATUS(attn_kernel_spec_json(k, small, sizeof(small), &needed),
                ATTN_ERROR_BUFFER_TOO_SMALL, "bytes, capacity is 8");
  CHECK(needed > sizeof(small), "needed %zu", needed);
  char *json = malloc(needed);
  EXPECT_OK(attn_kernel_spec_json(k, json, needed, NULL));
  CHECK(strstr(json, "\"q_heads\":4") != NULL, "spec json %s", json);
  free(json);

  /* The same spec again: the in-memory cache. */
  attn_cache_stats before, after;
  EXPECT_OK(attn_context_cache_stats(ctx, &before));
  attn_kernel *k2 = NULL;
  EXPECT_OK(attn_kernel_compile_json(ctx, kSmallSpec, NULL, &k2));
  EXPECT_OK(attn_context_cache_stats(ctx, &after));
  CHECK(after.compiles == before.compiles, "second compile ran the compiler");
  attn_kernel_destroy(k2);

  free(p.q), free(p.k), free(p.v), free(p.out), free(p.lse);
  attn_kernel_destroy(k);
}

/* Query, key and value in the [B, S, H, D] layout of a fused projection
   (strides, no copy), dynamic sizes, key padding and a boolean mask. */
static void testStridedDynamicMasked(attn_context *ctx) {
  attn_mask masks[2];
  attn_mask_init(&masks[0], ATTN_MASK_KEY_PADDING);
  attn_mask_init(&masks[1], ATTN_MASK_TENSOR);
  masks[1].query_broadcast = 1;
  attn_spec spec;
  attn_spec_init(&spec);
  spec.batch = -1;
  spec.q_len = -1;
  spec.kv_len = -1;
  spec.q_heads = 3;
  spec.kv_heads = 3;
  spec.head_dim = 8;
  spec.v_head_dim = 8;
  spec.num_masks = 2;
  spec.masks = masks;
  attn_kernel *k = NULL;
  EXPECT_OK(attn_kernel_compile(ctx, &spec, NULL, &k));
  if (!k)
    return;
  attn_operand_info oi;
  EXPECT_OK(attn_kernel_operand_info(k, ATTN_OPERAND_QUERY, &oi));
  CHECK(oi.shape[0] == -1 && oi.shape[1] == 3 && oi.shape[2] == -1,
        "dynamic sizes are -1");
  EXPECT_OK(attn_kernel_operand_info(k, ATTN_OPERAND_MASK, &oi));
  CHECK(oi.required && oi.dtype == ATTN_DTYPE_BOOL && oi.shape[1] == 1 &&
            oi.shape[2] == 1,
        "mask operand info");

  for (int trial = 0; trial < 2; ++trial) {
    int64_t B = 2 + trial, S = 5 + 6 * trial, H = 3, D = 8;
    Problem p = {B, H, H, S, S, D, D, 0, 0, 0, 0, 0};
    /* One [B, S, 3, H, D] buffer holding q, k and v like a fused QKV. */
    float *qkv = randomArray(B * S * 3 * H * D, 7 + trial);
    int64_t shape[4] = {B, H, S, D};
    int64_t strides[4] = {S * 3 * H * D, D, 3 * H * D, 1};
    p.q = qkv;
    p.k = qkv + H * D;
    p.v = qkv + 2 * H * D;
    p.out = calloc((size_t)(B * H * S * D), sizeof(float));
    int32_t lens[3] = {(int32_t)S, 2, (int32_t)S - 1};
    unsigned char *mask = malloc((size_t)(B * S));
    for (int64_t i = 0; i < B * S; ++i)
      mask[i] = (unsigned char)(i % 3 != 1);
    attn_args args;
    attn_args_init(&args);
    attn_tensor *qkvt[3] = {&args.query, &args.key, &args.value};
    float *bases[3] = {p.q, p.k, p.v};
    for (int t = 0; t < 3; ++t) {
      qkvt[t]->data = bases[t];
      qkvt[t]->dtype = ATTN_DTYPE_F32;
      qkvt[t]->rank = 4;
      memcpy(qkvt[t]->shape, shape, sizeof(shape));
      memcpy(qkvt[t]->strides, strides, sizeof(strides));
    }
    int64_t lshape[1] = {B}, mshape[4] = {B, 1, 1, S};
    EXPECT_OK(
        attn_tensor_contiguous(&args.kv_lens, lens, ATTN_DTYPE_I32, 1, lshape));
    EXPECT_OK(
        attn_tensor_contiguous(&args.mask, mask, ATTN_DTYPE_BOOL, 4, mshape));
    EXPECT_OK(
        attn_tensor_contiguous(&args.output, p.out, ATTN_DTYPE_F32, 4, shape));
    EXPECT_OK(attn_kernel_run(k, &args));
    int64_t os[4];
    contiguousStrides(shape, os);
    double err =
        maxError(&p, strides, strides, strides, os, 0, lens, mask, NULL);
    CHECK(err <= 2e-5, "strided dynamic B=%lld S=%lld: max abs error %g",
          (long long)B, (long long)S, err);
    /* Negative dynamic sizes once returned ATTN_OK and wrote nothing. */
    attn_args negative = args;
    for (int t = 0; t < 3; ++t)
      ((attn_tensor *[]){&negative.query, &negative.key,
                         &negative.value})[t]->shape[0] = -B;
    negative.output.shape[0] = -B;
    negative.mask.shape[0] = -B;
    negative.kv_lens.shape[0] = -B;
    EXPECT_STATUS(attn_kernel_run(k, &negative), ATTN_ERROR_SHAPE_MISMATCH,
                  "has a size outside 0..2^31-1");
    free(qkv), free(p.out), free(mask);
  }
  attn_kernel_destroy(k);
}

/*===--------------------------------------------------------------------===*
 * Error paths
 *===--------------------------------------------------------------------===*/

static void testContextErrors(const char *scratch) {
  attn_context *ctx = NULL;
  EXPECT_STATUS(attn_context_create(NULL, NULL), ATTN_ERROR_INVALID_ARGUMENT,
                "'out' is NULL");
  attn_context_options o;
  attn_context_options_init(&o);
  o.struct_size = 3;
  EXPECT_STATUS(attn_context_create(&o, &ctx), ATTN_ERROR_INVALID_ARGUMENT,
                "struct_size is 3");
  attn_context_options_init(&o);
  o.target = (attn_target)7;
  EXPECT_STATUS(attn_context_create(&o, &ctx), ATTN_ERROR_INVALID_ARGUMENT,
                "unknown target value 7");
  CHECK(ctx == NULL, "context written on failure");

  /* Refused cache directories. */
  char path[4096];
  attn_context_options_init(&o);
  snprintf(path, sizeof(path), "%s/open", scratch);
  mkdir(path, 0700);
  chmod(path, 0777);
  o.cache_dir = path;
  EXPECT_STATUS(attn_context_create(&o, &ctx), ATTN_ERROR_CACHE,
                "is world-writable (mode 0777): refusing to use it");
  if (geteuid() == 0) {
    snprintf(path, sizeof(path), "%s/foreign", scratch);
    mkdir(path, 0700);
    CHECK(chown(path, 65534, 65534) == 0, "chown");
  } else {
    snprintf(path, sizeof(path), "/");
  }
  o.cache_dir = path;
  EXPECT_STATUS(attn_context_create(&o, &ctx), ATTN_ERROR_CACHE,
                "not by this user");
  snprintf(path, sizeof(path), "%s/file", scratch);
  FILE *f = fopen(path, "w");
  if (f)
    fclose(f);
  snprintf(path, sizeof(path), "%s/file/sub", scratch);
  o.cache_dir = path;
  EXPECT_STATUS(attn_context_create(&o, &ctx), ATTN_ERROR_CACHE,
                "cannot create directory");
  CHECK(ctx == NULL, "context written on failure");

  /* NULL handles and outputs. */
  uint32_t n;
  EXPECT_STATUS(attn_context_num_threads(NULL, &n), ATTN_ERROR_INVALID_ARGUMENT,
                "'context' is NULL");
  attn_cache_stats st;
  EXPECT_STATUS(attn_context_cache_stats(NULL, &st),
                ATTN_ERROR_INVALID_ARGUMENT, "'context' is NULL");
  attn_context_destroy(NULL);
  attn_kernel_destroy(NULL);
}

static void testCompileErrors(attn_context *ctx) {
  attn_kernel *k = NULL;
  EXPECT_STATUS(attn_kernel_compile_json(NULL, kSmallSpec, NULL, &k),
                ATTN_ERROR_INVALID_ARGUMENT, "'context' is NULL");
  EXPECT_STATUS(attn_kernel_compile_json(ctx, NULL, NULL, &k),
                ATTN_ERROR_INVALID_ARGUMENT, "'spec_json' is NULL");
  EXPECT_STATUS(attn_kernel_compile_json(ctx, kSmallSpec, NULL, NULL),
                ATTN_ERROR_INVALID_ARGUMENT, "'out' is NULL");
  EXPECT_STATUS(attn_kernel_compile_json(ctx, "{\"batch\": 1,", NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "spec: not valid JSON");
  EXPECT_STATUS(
      attn_kernel_compile_json(ctx,
                               "{\"batch\": 1, \"q_heads\": 2, \"q_len\": 1, "
                               "\"kv_len\": 1, \"head_dim\": 8, \"colour\": 1}",
                               NULL, &k),
      ATTN_ERROR_INVALID_SPEC, "'colour'");
  EXPECT_STATUS(attn_kernel_compile_json(
                    ctx,
                    "{\"batch\": 1, \"q_heads\": 3, \"kv_heads\": 2, "
                    "\"q_len\": 1, \"kv_len\": 1, \"head_dim\": 8}",
                    NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "kv_heads");

  attn_compile_options co;
  attn_compile_options_init(&co);
  co.tile_sizes[0] = 1;
  co.tile_sizes[1] = 1;
  co.tile_sizes[2] = -4;
  co.tile_sizes[3] = 16;
  EXPECT_STATUS(attn_kernel_compile_json(ctx, kSmallSpec, &co, &k),
                ATTN_ERROR_INVALID_ARGUMENT,
                "options: tile sizes must be 4 positive");
  co.struct_size = 1;
  EXPECT_STATUS(attn_kernel_compile_json(ctx, kSmallSpec, &co, &k),
                ATTN_ERROR_INVALID_ARGUMENT, "options->struct_size is 1");

  attn_spec spec;
  attn_spec_init(&spec);
  EXPECT_STATUS(attn_kernel_compile(NULL, &spec, NULL, &k),
                ATTN_ERROR_INVALID_ARGUMENT, "'context' is NULL");
  EXPECT_STATUS(attn_kernel_compile(ctx, NULL, NULL, &k),
                ATTN_ERROR_INVALID_ARGUMENT, "'spec' is NULL");
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, NULL),
                ATTN_ERROR_INVALID_ARGUMENT, "'out' is NULL");
  spec.struct_size = 5;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_ARGUMENT, "spec->struct_size is 5");
  attn_spec_init(&spec);
  spec.head_dim = 0;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "spec: sizes must be positive");
  attn_spec_init(&spec);
  spec.dtype = (attn_dtype)42;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "unknown dtype value 42");
  attn_spec_init(&spec);
  spec.dtype = ATTN_DTYPE_I32;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "dtype");
  attn_spec_init(&spec);
  spec.num_masks = 1;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "but masks is NULL");
  attn_mask m;
  attn_mask_init(&m, (attn_mask_kind)9);
  spec.masks = &m;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "masks[0]: unknown kind value 9");
  attn_mask_init(&m, ATTN_MASK_KEY_PADDING);
  m.dtype = ATTN_DTYPE_F32;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC,
                "'mask.dtype' of key_padding must be i32 or i64");
  attn_mask_init(&m, ATTN_MASK_TENSOR);
  m.dtype = ATTN_DTYPE_I64;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC,
                "'mask.dtype' of a tensor mask must be bool");
  attn_mask_init(&m, ATTN_MASK_SLIDING_WINDOW);
  m.left = -2;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "left");
  /* The JSON limits hold for structs too (a window of 2^32 once gave a
     wrong mask through this path). */
  m.left = (int64_t)1 << 32;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "below 2^31");
  spec.num_masks = 0;
  spec.q_heads = spec.kv_heads = (int64_t)1 << 31;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "sizes must be below 2^31");
  attn_spec_init(&spec);
  CHECK(isnan(spec.scale), "attn_spec_init: scale is not ATTN_SCALE_DEFAULT");
  spec.scale = 1.0 / 0.0;
  EXPECT_STATUS(attn_kernel_compile(ctx, &spec, NULL, &k),
                ATTN_ERROR_INVALID_SPEC, "'scale' must be a finite");
  /* Zero and negative scales mean what they say, as in JSON, Python and
     torch (-0.5 became the default 0.25 for head_dim 16). */
  {
    attn_spec s2;
    attn_spec_init(&s2);
    s2.head_dim = s2.v_head_dim = 16;
    s2.scale = -0.5;
    attn_kernel *neg = NULL;
    CHECK(attn_kernel_compile(ctx, &s2, NULL, &neg) == ATTN_OK, "negative scale");
    char json[1024];
    CHECK(attn_kernel_spec_json(neg, json, sizeof json, NULL) == ATTN_OK,
          "spec json");
    CHECK(strstr(json, "\"scale\":-0.5") != NULL, "negative scale kept");
    attn_kernel_destroy(neg);
    s2.scale = 0.0;
    CHECK(attn_kernel_compile(ctx, &s2, NULL, &neg) == ATTN_OK, "zero scale");
    CHECK(attn_kernel_spec_json(neg, json, sizeof json, NULL) == ATTN_OK,
          "spec json");
    CHECK(strstr(json, "\"scale\":0") != NULL, "zero scale kept");
    attn_kernel_destroy(neg);
  }
  CHECK(k == NULL, "kernel written on failure");

  /* The CUDA target: unavailable without the CUDA path or a device. */
  attn_context_options o;
  attn_context_options_init(&o);
  o.target = ATTN_TARGET_CUDA;
  o.cache_dir = "";
  attn_context *cuda = NULL;
  EXPECT_OK(attn_context_create(&o, &cuda));
  if (cuda) {
    attn_status s = attn_kernel_compile_json(cuda, kSmallSpec, NULL, &k);
    CHECK(s == ATTN_OK || s == ATTN_ERROR_UNAVAILABLE,
          "cuda compile returned %s (%s)", attn_status_string(s),
          attn_last_error());
    if (s == ATTN_ERROR_UNAVAILABLE)
      CHECK(strstr(attn_last_error(), "cuda") != NULL, "message %s",
            attn_last_error());
    if (s == ATTN_OK)
      attn_kernel_destroy(k);
    attn_context_destroy(cuda);
  }
}

/* A document mask_mod from JSON: its captures are queried by name and
   passed through attn_args.captures; dynamic lengths; a query of no key's
   document sees no key. Then the capture errors. */
/* Allocates p's contiguous f32 query, key and value (random from `seed`,
   seed + 1, seed + 2) and zeroed output and lse, of p's sizes. */
static void allocateContiguous(Problem *p, unsigned seed) {
  p->q = randomArray(p->b * p->hq * p->sq * p->d, seed);
  p->k = randomArray(p->b * p->hkv * p->sk * p->d, seed + 1);
  p->v = randomArray(p->b * p->hkv * p->sk * p->dv, seed + 2);
  p->out = calloc((size_t)(p->b * p->hq * p->sq * p->dv), sizeof(float));
  p->lse = calloc((size_t)(p->b * p->hq * p->sq), sizeof(float));
}

static void freeProblem(Problem *p) {
  free(p->q);
  free(p->k);
  free(p->v);
  free(p->out);
  free(p->lse);
}

/* Binds p's f32 query, key, value, output and lse as contiguous tensors of
   the given shapes (query and output [B, Hq, Sq, D], key and value
   [B, Hkv, Sk, D], lse [B, Hq, Sq]). */
static void bindContiguous(attn_args *a, const Problem *p,
                           const int64_t *qshape, const int64_t *kshape,
                           const int64_t *lshape) {
  attn_tensor_contiguous(&a->query, p->q, ATTN_DTYPE_F32, 4, qshape);
  attn_tensor_contiguous(&a->key, p->k, ATTN_DTYPE_F32, 4, kshape);
  attn_tensor_contiguous(&a->value, p->v, ATTN_DTYPE_F32, 4, kshape);
  attn_tensor_contiguous(&a->output, p->out, ATTN_DTYPE_F32, 4, qshape);
  attn_tensor_contiguous(&a->lse, p->lse, ATTN_DTYPE_F32, 3, lshape);
}

/* Checks that `k` reads `count` captures, capture `index` being `name` of
   `dtype` and shape [B, S] with both sizes dynamic (-1). */
static void checkRunTimeCapture(const attn_kernel *k, int32_t count,
                                int32_t index, const char *name,
                                attn_dtype dtype) {
  int32_t n = 0;
  EXPECT_OK(attn_kernel_num_captures(k, &n));
  CHECK(n == count, "%d captures, expected %d", n, count);
  attn_capture_info ci;
  EXPECT_OK(attn_kernel_capture_info(k, index, &ci));
  CHECK(strcmp(ci.name, name) == 0 && ci.dtype == dtype && ci.rank == 2 &&
            ci.shape[0] == -1 && ci.shape[1] == -1,
        "capture %d: %s dtype %d rank %d", index, ci.name, (int)ci.dtype,
        ci.rank);
}

static void testMaskModCaptures(attn_context *ctx) {
  attn_kernel *k = NULL;
  EXPECT_OK(attn_kernel_compile_json(
      ctx,
      "{\"batch\": null, \"q_heads\": 2, \"kv_heads\": 1, \"q_len\": null, "
      "\"kv_len\": null, \"head_dim\": 16, \"lse\": true, "
      "\"mask\": {\"kind\": \"causal\"}, "
      "\"mask_mod\": {\"kind\": \"document\"}}",
      NULL, &k));
  if (!k)
    return;
  checkRunTimeCapture(k, 2, 0, "q_document_ids", ATTN_DTYPE_I32);
  checkRunTimeCapture(k, 2, 1, "kv_document_ids", ATTN_DTYPE_I32);
  attn_capture_info ci;
  EXPECT_STATUS(attn_kernel_capture_info(k, 2, &ci),
                ATTN_ERROR_INVALID_ARGUMENT, "index 2 is outside 0..1");

  enum { B = 2, HQ = 2, HKV = 1, S = 37, D = 16 };
  Problem p = {B, HQ, HKV, S, S, D, D, 0, 0, 0, 0, 0};
  int64_t qshape[4] = {B, HQ, S, D}, kshape[4] = {B, HKV, S, D},
          lshape[3] = {B, HQ, S}, ishape[2] = {B, S};
  allocateContiguous(&p, 11);
  int32_t ids[B * S];
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < S; ++t) /* documents of 5 + b tokens */
      ids[b * S + t] = t / (5 + b);
  int32_t queryIds[B * S];
  memcpy(queryIds, ids, sizeof(ids));
  queryIds[S + 4] = 99; /* batch 1, row 4: no key has document 99 */
  attn_args a;
  attn_args_init(&a);
  attn_tensor caps[2];
  bindContiguous(&a, &p, qshape, kshape, lshape);
  attn_tensor_contiguous(&caps[0], queryIds, ATTN_DTYPE_I32, 2, ishape);
  attn_tensor_contiguous(&caps[1], ids, ATTN_DTYPE_I32, 2, ishape);
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "captures: 0 given, but the spec's mask_mod reads 2");
  a.num_captures = 2;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_INVALID_ARGUMENT,
                "num_captures is 2 with captures NULL");
  a.captures = caps;
  EXPECT_OK(attn_kernel_run(k, &a));
  int64_t qs[4], ks[4];
  contiguousStrides(qshape, qs);
  contiguousStrides(kshape, ks);
  qDocs = queryIds;
  kvDocs = ids;
  double lseErr = 0;
  double err = maxError(&p, qs, ks, ks, qs, 1, NULL, NULL, &lseErr);
  qDocs = kvDocs = NULL;
  CHECK(err <= 2e-5, "document mask_mod: max abs error %g", err);
  CHECK(lseErr <= 2e-5, "document mask_mod: LSE error %g", lseErr);
  CHECK(p.lse[(1 * HQ + 0) * S + 4] == -INFINITY,
        "a row of no key's document: LSE %g", p.lse[(1 * HQ + 0) * S + 4]);

  int64_t shortShape[2] = {B, S - 1};
  attn_tensor_contiguous(&caps[1], ids, ATTN_DTYPE_I32, 2, shortShape);
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "kv_document_ids: shape [2, 36] does not match [2, 37]");
  attn_tensor_contiguous(&caps[1], ids, ATTN_DTYPE_I64, 2, ishape);
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "kv_document_ids: dtype i64");
  a.num_captures = -1;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_INVALID_ARGUMENT,
                "num_captures is -1, outside 0..64");
  freeProblem(&p);
  attn_kernel_destroy(k);
}

/* A user-defined mask_mod (kind "mlir"): the document test on int64 ids,
   under causal; its capture's info and a run against the C reference. */
static void testUserMaskMod(attn_context *ctx) {
  attn_kernel *k = NULL;
  EXPECT_OK(attn_kernel_compile_json(
      ctx,
      "{\"batch\": null, \"q_heads\": 2, \"kv_heads\": 1, \"q_len\": null, "
      "\"kv_len\": null, \"head_dim\": 16, \"lse\": true, "
      "\"mask\": {\"kind\": \"causal\"}, \"mask_mod\": {\"kind\": \"mlir\", "
      "\"func\": \"func.func @m(%b: index, %h: index, %q: index, %kv: index, "
      "%ids: tensor<?x?xi64>) -> i1 {\\n"
      "  %x = tensor.extract %ids[%b, %q] : tensor<?x?xi64>\\n"
      "  %y = tensor.extract %ids[%b, %kv] : tensor<?x?xi64>\\n"
      "  %same = arith.cmpi eq, %x, %y : i64\\n"
      "  return %same : i1\\n}\", "
      "\"captures\": [{\"name\": \"ids\", \"shape\": [\"batch\", "
      "\"q_len\"]}]}}",
      NULL, &k));
  if (!k)
    return;
  checkRunTimeCapture(k, 1, 0, "ids", ATTN_DTYPE_I64);

  enum { B = 2, HQ = 2, HKV = 1, S = 29, D = 16 };
  Problem p = {B, HQ, HKV, S, S, D, D, 0, 0, 0, 0, 0};
  int64_t qshape[4] = {B, HQ, S, D}, kshape[4] = {B, HKV, S, D},
          lshape[3] = {B, HQ, S}, ishape[2] = {B, S};
  allocateContiguous(&p, 21);
  int32_t ids[B * S];
  int64_t wide[B * S];
  for (int i = 0; i < B * S; ++i) {
    ids[i] = (i % S) / (4 + i / S); /* documents of 4 + b tokens */
    wide[i] = ids[i];
  }
  attn_args a;
  attn_args_init(&a);
  attn_tensor cap;
  bindContiguous(&a, &p, qshape, kshape, lshape);
  attn_tensor_contiguous(&cap, ids, ATTN_DTYPE_I32, 2, ishape);
  a.num_captures = 1;
  a.captures = &cap;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "ids: dtype i32 does not match the spec's i64");
  attn_tensor_contiguous(&cap, wide, ATTN_DTYPE_I64, 2, ishape);
  EXPECT_OK(attn_kernel_run(k, &a));
  int64_t qs[4], ks[4];
  contiguousStrides(qshape, qs);
  contiguousStrides(kshape, ks);
  qDocs = kvDocs = ids;
  double lseErr = 0;
  double err = maxError(&p, qs, ks, ks, qs, 1, NULL, NULL, &lseErr);
  qDocs = kvDocs = NULL;
  CHECK(err <= 2e-5, "user mask_mod: max abs error %g", err);
  CHECK(lseErr <= 2e-5, "user mask_mod: LSE error %g", lseErr);
  freeProblem(&p);
  attn_kernel_destroy(k);
}

static void testRunErrors(attn_context *ctx) {
  attn_kernel *k = NULL;
  EXPECT_OK(attn_kernel_compile_json(ctx, kSmallSpec, NULL, &k));
  if (!k)
    return;
  float q[2 * 4 * 7 * 16], kv[2 * 2 * 9 * 16], out[2 * 4 * 7 * 16],
      lse[2 * 4 * 7];
  memset(q, 0, sizeof(q)), memset(kv, 0, sizeof(kv));
  int64_t qshape[4] = {2, 4, 7, 16}, kshape[4] = {2, 2, 9, 16},
          bad[4] = {2, 2, 8, 16}, lshape[3] = {2, 4, 7};
  attn_args good;
  attn_args_init(&good);
  attn_tensor_contiguous(&good.query, q, ATTN_DTYPE_F32, 4, qshape);
  attn_tensor_contiguous(&good.key, kv, ATTN_DTYPE_F32, 4, kshape);
  attn_tensor_contiguous(&good.value, kv, ATTN_DTYPE_F32, 4, kshape);
  attn_tensor_contiguous(&good.output, out, ATTN_DTYPE_F32, 4, qshape);
  attn_tensor_contiguous(&good.lse, lse, ATTN_DTYPE_F32, 3, lshape);
  EXPECT_OK(attn_kernel_validate(k, &good));

  attn_args a;
  EXPECT_STATUS(attn_kernel_run(NULL, &good), ATTN_ERROR_INVALID_ARGUMENT,
                "'kernel' is NULL");
  EXPECT_STATUS(attn_kernel_run(k, NULL), ATTN_ERROR_INVALID_ARGUMENT,
                "'args' is NULL");
  a = good;
  a.struct_size = 0;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_INVALID_ARGUMENT,
                "call attn_args_init");
  a = good;
  a.key.shape[2] = 8;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "key: shape [2, 2, 8, 16] does not match [2, 2, 9, 16]");
  attn_tensor_contiguous(&a.key, kv, ATTN_DTYPE_F32, 4, bad);
  EXPECT_STATUS(attn_kernel_validate(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "key: shape");
  a = good;
  a.value.dtype = ATTN_DTYPE_F16;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "value: dtype f16 does not match the spec's f32");
  a = good;
  a.value.dtype = (attn_dtype)99;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_INVALID_ARGUMENT,
                "value: unknown dtype value 99");
  a = good;
  a.query.rank = 5;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_INVALID_ARGUMENT,
                "query: rank 5 is outside 0..4");
  a = good;
  a.output.data = NULL;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "must be given");
  a = good;
  a.lse.data = NULL;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "lse: missing");
  a = good;
  a.mask = good.lse;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "mask: given, but the spec has no tensor mask");
  a = good;
  a.kv_lens = good.lse;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "kv_lens: given, but the spec has no key_padding mask");
  a = good;
  a.query.strides[3] = 2;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "query: the innermost stride must be 1, got 2");
  a = good;
  a.key.strides[1] = -16;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "key: negative strides are not supported");
  a = good;
  a.output.data = kv;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "output: shares memory with");
  /* An output that overlaps itself (a zero stride: every query row at one
     address) was accepted and the threads raced. */
  a = good;
  a.output.strides[2] = 0;
  EXPECT_STATUS(attn_kernel_run(k, &a), ATTN_ERROR_SHAPE_MISMATCH,
                "output: overlaps itself");

  attn_operand_info oi;
  EXPECT_STATUS(attn_kernel_operand_info(k, (attn_operand)12, &oi),
                ATTN_ERROR_INVALID_ARGUMENT, "unknown operand value 12");
  EXPECT_STATUS(attn_kernel_operand_info(NULL, ATTN_OPERAND_QUERY, &oi),
                ATTN_ERROR_INVALID_ARGUMENT, "'kernel' is NULL");
  EXPECT_STATUS(attn_kernel_operand_info(k, ATTN_OPERAND_QUERY, NULL),
                ATTN_ERROR_INVALID_ARGUMENT, "'out' is NULL");
  attn_kernel_info ki;
  EXPECT_STATUS(attn_kernel_get_info(NULL, &ki), ATTN_ERROR_INVALID_ARGUMENT,
                "'kernel' is NULL");
  size_t ws;
  EXPECT_STATUS(attn_kernel_workspace_bytes(k, -1, 1, 1, &ws),
                ATTN_ERROR_INVALID_ARGUMENT, "negative size");
  double fl;
  EXPECT_STATUS(attn_kernel_flops(k, 1, -1, 1, &fl),
                ATTN_ERROR_INVALID_ARGUMENT, "negative size");
  EXPECT_STATUS(attn_kernel_spec_json(NULL, NULL, 0, NULL),
                ATTN_ERROR_INVALID_ARGUMENT, "'kernel' is NULL");
  attn_tensor t;
  EXPECT_STATUS(attn_tensor_contiguous(&t, q, ATTN_DTYPE_F32, 0, qshape),
                ATTN_ERROR_INVALID_ARGUMENT, "rank 0 is outside 1..4");
  EXPECT_STATUS(attn_tensor_contiguous(&t, NULL, ATTN_DTYPE_F32, 4, qshape),
                ATTN_ERROR_INVALID_ARGUMENT, "'data' is NULL");
  EXPECT_STATUS(attn_tensor_contiguous(&t, q, (attn_dtype)-1, 4, qshape),
                ATTN_ERROR_INVALID_ARGUMENT, "unknown dtype value -1");
  CHECK(attn_dtype_size(ATTN_DTYPE_BF16) == 2 &&
            attn_dtype_size((attn_dtype)77) == 0,
        "attn_dtype_size");
  attn_kernel_destroy(k);
}

/* The last error is per thread. */
static void *failInThread(void *arg) {
  (void)arg;
  attn_kernel *k;
  attn_kernel_compile_json(NULL, "{}", NULL, &k);
  static int ok = 1;
  return strstr(attn_last_error(), "'context' is NULL") != NULL ? &ok : NULL;
}

static void testThreadLocalError(void) {
  attn_tensor t;
  attn_tensor_contiguous(&t, NULL, ATTN_DTYPE_F32, 1, NULL);
  pthread_t th;
  void *ok = NULL;
  CHECK(pthread_create(&th, NULL, failInThread, NULL) == 0, "pthread_create");
  pthread_join(th, &ok);
  CHECK(ok != NULL, "the other thread saw its own error");
  CHECK(strstr(attn_last_error(), "'data' is NULL") != NULL,
        "this thread's error was overwritten: %s", attn_last_error());
}

/* A second context (as a second process would) loads the kernel from the
   disk cache without compiling. */
static void testDiskCache(const char *scratch) {
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s/cache/kernels", scratch);
  attn_context_options o;
  attn_context_options_init(&o);
  o.cache_dir = dir;
  o.num_threads = 2;
  for (int round = 0; round < 2; ++round) {
    attn_context *ctx = NULL;
    EXPECT_OK(attn_context_create(&o, &ctx));
    if (!ctx)
      return;
    uint32_t threads = 0;
    EXPECT_OK(attn_context_num_threads(ctx, &threads));
    CHECK(threads == 2, "threads %u", threads);
    attn_kernel *k = NULL;
    EXPECT_OK(attn_kernel_compile_json(ctx, kSmallSpec, NULL, &k));
    attn_cache_stats st;
    EXPECT_OK(attn_context_cache_stats(ctx, &st));
    attn_kernel_info info;
    if (k)
      EXPECT_OK(attn_kernel_get_info(k, &info));
    if (round == 0) {
      CHECK(st.compiles == 1 && st.disk_misses == 1 && st.disk_writes == 1,
            "cold: compiles %llu misses %llu writes %llu",
            (unsigned long long)st.compiles, (unsigned long long)st.disk_misses,
            (unsigned long long)st.disk_writes);
      CHECK(k && !info.from_disk_cache && info.compile_ms > 0, "cold info");
    } else {
      CHECK(st.compiles == 0 && st.disk_hits == 1,
            "warm: compiles %llu hits %llu", (unsigned long long)st.compiles,
            (unsigned long long)st.disk_hits);
      CHECK(k && info.from_disk_cache && info.compile_ms == 0, "warm info");
    }
    /* The kernel outlives its context. */
    attn_context_destroy(ctx);
    if (k) {
      float q[2 * 4 * 7 * 16] = {0}, kv[2 * 2 * 9 * 16] = {0},
                          out[2 * 4 * 7 * 16], lse[2 * 4 * 7];
      int64_t qshape[4] = {2, 4, 7, 16}, kshape[4] = {2, 2, 9, 16},
              lshape[3] = {2, 4, 7};
      attn_args a;
      attn_args_init(&a);
      attn_tensor_contiguous(&a.query, q, ATTN_DTYPE_F32, 4, qshape);
      attn_tensor_contiguous(&a.key, kv, ATTN_DTYPE_F32, 4, kshape);
      attn_tensor_contiguous(&a.value, kv, ATTN_DTYPE_F32, 4, kshape);
      attn_tensor_contiguous(&a.output, out, ATTN_DTYPE_F32, 4, qshape);
      attn_tensor_contiguous(&a.lse, lse, ATTN_DTYPE_F32, 3, lshape);
      EXPECT_OK(attn_kernel_run(k, &a));
      CHECK(out[0] == 0.0f, "zero value rows give 0, got %g", out[0]);
      attn_kernel_destroy(k);
    }
  }
  struct stat sb;
  CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700,
        "cache directory mode %o", (unsigned)(sb.st_mode & 0777));
}

int main(int argc, char **argv) {
  char scratch[4096];
  if (argc > 1) {
    snprintf(scratch, sizeof(scratch), "%s", argv[1]);
    mkdir(scratch, 0700);
  } else {
    snprintf(scratch, sizeof(scratch), "/tmp/attn-capi-test-XXXXXX");
    if (!mkdtemp(scratch)) {
      perror("mkdtemp");
      return 1;
    }
  }
  printf("attn C API %d, %s\n", ATTN_C_API_VERSION, attn_version());
  CHECK(strcmp(attn_last_error(), "") == 0, "initial error \"%s\"",
        attn_last_error());
  CHECK(strcmp(attn_status_string(ATTN_ERROR_CACHE), "ATTN_ERROR_CACHE") == 0,
        "status string");

  attn_context_options o;
  attn_context_options_init(&o);
  o.cache_dir = ""; /* no disk cache for these */
  attn_context *ctx = NULL;
  EXPECT_OK(attn_context_create(&o, &ctx));
  if (!ctx)
    return 1;
  testContiguousRun(ctx);
  testStridedDynamicMasked(ctx);
  testContextErrors(scratch);
  testCompileErrors(ctx);
  testRunErrors(ctx);
  testMaskModCaptures(ctx);
  testUserMaskMod(ctx);
  testThreadLocalError();
  attn_context_destroy(ctx);
  testDiskCache(scratch);

  char cmd[4200];
  if (argc <= 1) {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", scratch);
  }
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
