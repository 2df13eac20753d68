//===- Reference.h - f64 reference attention for the unit tests -*- C++ -*-===//
//
// Plain-loop attention written independently of the compiler: the oracle of
// the numerical tests. Semantics follow docs/design.md sections 3 and 4:
//
//   O = softmax(score_mod(scale * Q K^T + bias), masked) V,
//   LSE = log sum exp(...)
//
// - GQA: query head h reads kv head h / (Hq / Hkv);
// - causal keeps j <= i + shift, sliding_window keeps
//   i + shift - left <= j <= i + shift + right, shift = 0 (top_left) or
//   kv_len - q_len (bottom_right);
// - key_padding hides j >= kv_lens[b] (clamped to [0, kv_len]);
// - the document mask_mod keeps q_document_ids[b, i] == kv_document_ids[b, j],
//   prefix_lm keeps j <= i or j < prefix_lens[b]; the index patterns
//   (dilated_sliding_window, strided, fixed, longformer) as Spec.h defines
//   them; a user-defined ("mlir") one is the test's C++ function
//   (Inputs::userScoreMod / userMaskMod);
// - a bool tensor mask keeps where true; a float tensor mask is an additive
//   bias, a -inf bias hides the key; masks intersect;
// - a row without a kept key gives output 0 and LSE -inf;
// - masked keys are never read (NaN there cannot leak); NaN in kept inputs
//   propagates.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TEST_UNITTESTS_REFERENCE_H
#define ATTN_TEST_UNITTESTS_REFERENCE_H

#include "attn/Runtime/Spec.h"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace attn {
namespace reference {

/// The inputs of one attention problem in double, C-order [B, H, S, D].
struct Inputs {
  int64_t batch = 1, qLen = 1, kvLen = 1;
  std::vector<double> query; // [B, Hq, Sq, D]
  std::vector<double> key;   // [B, Hkv, Sk, D]
  std::vector<double> value; // [B, Hkv, Sk, Dv]
  /// The tensor mask in its broadcast shape (maskShape()): for a bool mask
  /// non-zero keeps; for a float mask the additive bias. Empty without one.
  std::vector<double> mask;
  /// kv_lens [B]; empty without a key_padding mask.
  std::vector<int64_t> kvLens;
  /// The document mask_mod's ids, q [B, Sq] and kv [B, Sk]; empty without.
  std::vector<int64_t> qDocumentIds, kvDocumentIds;
  /// The prefix_lm mask_mod's prefix lengths [B]; empty without.
  std::vector<int64_t> prefixLens;
  /// The longformer mask_mod's global flags, q [B, Sq] and kv [B, Sk].
  std::vector<int64_t> qGlobal, kvGlobal;
  /// The t5_bias score_mod's table [num_buckets, Hq]; empty without.
  std::vector<double> relativeAttentionBias;
  /// The captures of a user-defined (kind "mlir") score_mod / mask_mod by
  /// name, C-order in the capture's shape.
  std::map<std::string, std::vector<double>> userCaptures;
  /// That score_mod (in, b, h, i, j, s) -> s' and mask_mod (in, b, h, i, j)
  /// -> keep, written in C++ by the test apart from the MLIR function the
  /// kernel runs.
  std::function<double(const Inputs &, int64_t, int64_t, int64_t, int64_t,
                       double)>
      userScoreMod;
  std::function<bool(const Inputs &, int64_t, int64_t, int64_t, int64_t)>
      userMaskMod;
};

struct Outputs {
  std::vector<double> output; // [B, Hq, Sq, Dv]
  std::vector<double> lse;    // [B, Hq, Sq]
};

/// The shape [B|1, Hq|1, Sq|1, Sk] of the spec's tensor mask.
std::array<int64_t, 4> maskShape(const AttentionSpec &spec, int64_t batch,
                                 int64_t qLen, int64_t kvLen);

/// Element counts of the operands.
int64_t queryElements(const AttentionSpec &spec, const Inputs &in);
int64_t keyElements(const AttentionSpec &spec, const Inputs &in);
int64_t valueElements(const AttentionSpec &spec, const Inputs &in);
int64_t outputElements(const AttentionSpec &spec, const Inputs &in);
int64_t lseElements(const AttentionSpec &spec, const Inputs &in);
int64_t maskElements(const AttentionSpec &spec, const Inputs &in);

/// Whether query row i of (b, h) keeps key j under every mask of the spec
/// (the bias of a float tensor mask hides the key only when it is -inf).
bool keeps(const AttentionSpec &spec, const Inputs &in, int64_t b, int64_t h,
           int64_t i, int64_t j);

/// The spec's score modification (ScoreModSpec) of score s of query head h,
/// row i, key j; s itself without one. ALiBi's slopes are computed here as
/// the paper's code lists them, apart from the runtime's closed form; T5's
/// buckets by Hugging Face's formula per position, apart from the
/// runtime's thresholds.
double scoreMod(const AttentionSpec &spec, const Inputs &in, int64_t b,
                int64_t h, int64_t i, int64_t j, double s);

/// The additive bias of (b, h, i, j): 0 without a float tensor mask.
double bias(const AttentionSpec &spec, const Inputs &in, int64_t b, int64_t h,
            int64_t i, int64_t j);

/// f64 attention. Computes in double whatever spec.dtype says: the inputs
/// are taken as given (callers round them to the kernel's input type).
Outputs attention(const AttentionSpec &spec, const Inputs &in);

/// FlashAttention's "same precision" unfused reference for f16 / bf16
/// (spec.dtype): S = scale * Q K^T (+ bias) with f32 accumulation, rounded
/// to the dtype; P = softmax(S) in f32, rounded to the dtype; O = P V with
/// f32 accumulation, rounded to the dtype. The inputs must already be
/// representable in the dtype. Returns the output [B, Hq, Sq, Dv].
std::vector<double> samePrecisionAttention(const AttentionSpec &spec,
                                           const Inputs &in);

/// Rounds `x` to f32, f16 or bf16 (round to nearest even) and back.
double roundTo(DType dtype, double x);

} // namespace reference
} // namespace attn

#endif // ATTN_TEST_UNITTESTS_REFERENCE_H
