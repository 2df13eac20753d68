/* Causal attention of one head (8 queries, 8 keys, head_dim 16) through the
   installed C API, checked against a direct computation in double. Prints
   the maximum absolute error and exits 1 when it exceeds 1e-5. */
#include <attn-c/attn.h>

#include <math.h>
#include <stdio.h>

#define S 8
#define D 16

int main(void) {
  static float q[S * D], k[S * D], v[S * D], out[S * D];
  for (int i = 0; i < S * D; ++i) {
    q[i] = (float)sin(0.37 * i);
    k[i] = (float)cos(0.21 * i);
    v[i] = (float)sin(0.13 * i + 1.0);
  }
  attn_context *ctx = NULL;
  attn_kernel *kernel = NULL;
  if (attn_context_create(NULL, &ctx) != ATTN_OK ||   /* CPU, all cores, default disk cache */
      attn_kernel_compile_json(ctx,
                               "{\"batch\": 1, \"q_heads\": 1, \"q_len\": 8, "
                               "\"kv_len\": 8, \"head_dim\": 16, "
                               "\"mask\": {\"kind\": \"causal\"}}",
                               NULL, &kernel) != ATTN_OK) {
    fprintf(stderr, "attn-capi-example: %s\n", attn_last_error());
    return 1;
  }
  const int64_t shape[4] = {1, 1, S, D};                /* [B, H, S, D]; strides may be set freely */
  attn_args args;
  attn_args_init(&args);
  attn_tensor_contiguous(&args.query, q, ATTN_DTYPE_F32, 4, shape);
  attn_tensor_contiguous(&args.key, k, ATTN_DTYPE_F32, 4, shape);
  attn_tensor_contiguous(&args.value, v, ATTN_DTYPE_F32, 4, shape);
  attn_tensor_contiguous(&args.output, out, ATTN_DTYPE_F32, 4, shape);
  if (attn_kernel_run(kernel, &args) != ATTN_OK) {      /* ATTN_OK, or a status and attn_last_error() */
    fprintf(stderr, "attn-capi-example: %s\n", attn_last_error());
    return 1;
  }
  double maxErr = 0;
  for (int i = 0; i < S; ++i) {
    double s[S], m = -INFINITY, l = 0;
    for (int j = 0; j <= i; ++j) {
      s[j] = 0;
      for (int d = 0; d < D; ++d)
        s[j] += (double)q[i * D + d] * k[j * D + d];
      s[j] /= sqrt((double)D);
      m = s[j] > m ? s[j] : m;
    }
    for (int j = 0; j <= i; ++j)
      l += exp(s[j] - m);
    for (int d = 0; d < D; ++d) {
      double o = 0;
      for (int j = 0; j <= i; ++j)
        o += exp(s[j] - m) / l * v[j * D + d];
      double err = fabs(o - out[i * D + d]);
      maxErr = err > maxErr ? err : maxErr;
    }
  }
  printf("%s: causal 8x8x16 max abs error %.3g\n", attn_version(),
         maxErr);
  attn_kernel_destroy(kernel);
  attn_context_destroy(ctx);
  return maxErr <= 1e-5 ? 0 : 1;
}
