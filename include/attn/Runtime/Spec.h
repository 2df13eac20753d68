//===- Spec.h - attention problem specification -----------------*- C++ -*-===//
//
// The attention problem a kernel is compiled for: sizes, element type,
// scale and masks. It is what the JSON spec of attn-run describes
// (docs/design.md section 6) and the key of the kernel cache.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_RUNTIME_SPEC_H
#define ATTN_RUNTIME_SPEC_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attn {

/// Element types that cross the runtime boundary.
enum class DType { F32, F16, BF16, Bool, I32, I64 };

/// Size of one element in bytes.
int64_t dtypeSize(DType dtype);
/// "f32", "f16", "bf16", "bool", "i32", "i64".
const char *dtypeName(DType dtype);
/// Parses the names above; nullopt when unknown.
std::optional<DType> parseDType(const std::string &name);
/// A shape as the runtime's messages write it: "[1, 2, 64, 8]".
std::string formatShape(llvm::ArrayRef<int64_t> shape);

/// One mask of the spec; a spec's masks combine by intersection.
struct MaskSpec {
  enum class Kind {
    /// j <= i (+ kv_len - q_len with bottom-right alignment).
    Causal,
    /// i - left <= j <= i + right (+ the same shift).
    SlidingWindow,
    /// A tensor passed at run time: bool (true keeps) or float (additive
    /// bias), shape [B|1, Hq|1, Sq|1, Sk].
    Tensor,
    /// kv_lens [B] (i32 or i64) passed at run time: keys j >= kv_lens[b] are
    /// hidden.
    KeyPadding,
  };
  Kind kind = Kind::Causal;
  bool bottomRight = false;       // Causal, SlidingWindow
  int64_t left = 0, right = 0;    // SlidingWindow
  DType dtype = DType::Bool;      // Tensor: Bool, F32, F16, BF16; KeyPadding: I32, I64
  bool batchBroadcast = false;    // Tensor: batch dim is 1
  bool headBroadcast = true;      // Tensor: head dim is 1
  bool queryBroadcast = false;    // Tensor: query dim is 1

  bool operator==(const MaskSpec &o) const;
};

/// A run-time input that the spec's score_mod or mask_mod reads (the
/// attention op's captures): its name, element type and shape in the
/// problem's sizes.
struct CaptureSpec {
  /// A size of the shape: the problem's batch, q_len or kv_len (which may be
  /// run-time values), or a fixed count (q_heads, a number of buckets).
  struct Dim {
    enum Kind { Batch, QLen, KvLen, Fixed };
    Kind kind = Fixed;
    int64_t size = 0; // Fixed
    Dim(Kind kind, int64_t size = 0) : kind(kind), size(size) {}
    bool operator==(const Dim &o) const {
      return kind == o.kind && size == o.size;
    }
  };
  std::string name;
  DType dtype = DType::I32;
  std::vector<Dim> shape;
  /// The shape at concrete sizes.
  std::vector<int64_t> shapeAt(int64_t batch, int64_t qLen,
                               int64_t kvLen) const;
  bool operator==(const CaptureSpec &o) const {
    return name == o.name && dtype == o.dtype && shape == o.shape;
  }
};

/// A user-defined score_mod or mask_mod (kind "mlir"): the MLIR text of one
/// func.func, which the kernel builder clones into the attention op's
/// region (func.return becoming attn.yield), and the captures its trailing
/// arguments receive.
///   score_mod: (f32 score, index b, index h, index q_idx, index kv_idx,
///               captures...) -> f32
///   mask_mod:  (index b, index h, index q_idx, index kv_idx, captures...)
///               -> i1 (true keeps the key)
/// b, h, q_idx and kv_idx are absolute (batch, query head, query row, key),
/// as for the named kinds. The body is one block of arith and math ops and
/// tensor.extract of a capture argument (the rule the dialect's verifier
/// applies to the regions: mlir::attn::verifyModBody). Capture argument n is
/// a ranked tensor of f32, i32 or i64 whose rank is that of captures[n]
/// and whose sizes are `?` or captures[n]'s fixed size; its element type is
/// captures[n].dtype. The runtime clamps every index of a capture read into
/// the capture's bounds, so that no function reads outside its inputs.
struct ModFuncSpec {
  /// The func.func (canonical after resolveModFunc: MLIR's printed form).
  std::string func;
  std::vector<CaptureSpec> captures;
  bool operator==(const ModFuncSpec &o) const;
};

/// Checks a user-defined score_mod (`isScoreMod`) or mask_mod function: it
/// parses, has the signature above for `mod.captures` and only the allowed
/// ops. Returns it with `func` in canonical form (so that two spellings of
/// one function are one kernel) and each capture's dtype set from its
/// argument's element type. Errors are one line naming the key
/// ("spec: 'score_mod.func': 2:8: ...", with the line and column in `func`).
llvm::Expected<ModFuncSpec> resolveModFunc(const ModFuncSpec &mod,
                                           bool isScoreMod);

/// The band (causal or sliding_window, top-left) that keeps every key the
/// user's mask_mod function keeps, where its structure bounds kv_idx -
/// q_idx (mlir::attn::impliedKeyBand: e.g. `kv_idx <= q_idx` and ... is
/// causal, |q_idx - kv_idx| <= w a window of w each side); sides it does
/// not bound, or bound beyond 2^31 - 1, are unbounded; none when neither
/// side is bounded. For impliedBand.
std::optional<MaskSpec> modFuncBand(const ModFuncSpec &mod);

/// A named score modification (FlexAttention's score_mod, He et al. 2024),
/// applied to the score s = scale * q.k (+ bias) of query row i and key j
/// of query head h, before masking:
///   alibi     s + slope(h) * (j - i), slope(h) the ALiBi paper's geometric
///             slopes for q_heads heads (Press et al. 2022, "Train Short,
///             Test Long": 2^(-8 (h + 1) / H) for H a power of two, else
///             those of the power of two below H followed by every other
///             slope of twice that);
///   softcap   cap * tanh(s / cap) (Gemma 2's logit soft-capping);
///   t5_bias   s + relative_attention_bias[bucket(j - i), h]: T5's learned
///             relative position bias (Raffel et al. 2020), bucket() T5's
///             _relative_position_bucket(j - i, bidirectional, num_buckets,
///             max_distance) as Hugging Face's T5Attention computes it (its
///             logarithmic buckets in f32, truncated); the table
///             [num_buckets, q_heads] f32 is a run-time input (a capture);
///   mlir      the user's function `func` (ModFuncSpec).
/// i and j are absolute positions: with a bottom-right mask the query row i
/// is still the row index, not its diagonal.
struct ScoreModSpec {
  enum class Kind { Alibi, Softcap, T5Bias, Mlir };
  Kind kind = Kind::Alibi;
  double cap = 0; // Softcap: > 0
  /// T5Bias: buckets (2 .. 1024; even and >= 4 when bidirectional), the
  /// distance where the logarithmic buckets end (> the exact buckets, below
  /// 2^31), and whether keys after the query have buckets of their own.
  int64_t numBuckets = 32, maxDistance = 128;
  bool bidirectional = true;
  ModFuncSpec func = {}; // Mlir
  bool operator==(const ScoreModSpec &o) const;
};

/// T5's relative position bucket of `relativePosition` = j - i
/// (ScoreModSpec::T5Bias), in [0, numBuckets).
int64_t t5RelativeBucket(int64_t relativePosition, bool bidirectional,
                         int64_t numBuckets, int64_t maxDistance);

/// The smallest distances n at which T5's logarithmic buckets start: for
/// each bucket b in (exact, buckets - 1] of the one-sided range (buckets =
/// numBuckets, halved when bidirectional; exact = buckets / 2), the least n
/// with bucket(n) >= b. bucket(n) = n below `exact`, else exact + the
/// number of thresholds <= n.
std::vector<int64_t> t5BucketThresholds(bool bidirectional, int64_t numBuckets,
                                        int64_t maxDistance);

/// The ALiBi slope of query head h of q_heads heads (ScoreModSpec::Alibi).
double alibiSlope(int64_t h, int64_t qHeads);

/// A named mask modification (FlexAttention's mask_mod): query row i of
/// batch b keeps key j only where it says so, in addition to (intersected
/// with) every mask of the spec. i and j are absolute positions, as for
/// ScoreModSpec; d = i - j.
///   document    q_document_ids[b, i] == kv_document_ids[b, j]: packed
///               sequences (documents) attend only within themselves;
///               captures q_document_ids [B, Sq] and kv_document_ids
///               [B, Sk], i32 (for self-attention both are the same ids);
///   prefix_lm   j <= i or j < prefix_lens[b]: a bidirectional prefix of
///               prefix_lens[b] keys, causal (top-left) after it (Raffel et
///               al. 2020, T5's prefix LM); captures prefix_lens [B], i32;
///   dilated_sliding_window
///               |d| <= window * dilation and d % dilation == 0: `window`
///               keys on each side, every `dilation`-th (Beltagy et al.
///               2020, Longformer's dilated window);
///   strided     0 <= d and (d < stride or d % stride == 0): the Sparse
///               Transformer's strided pattern, its two heads' union
///               (Child et al. 2019);
///   fixed       j <= i and (j / stride == i / stride or
///               j % stride >= stride - summary): the Sparse Transformer's
///               fixed pattern, the block and its last `summary` keys;
///   longformer  |d| <= window or q_global[b, i] != 0 or kv_global[b, j] !=
///               0: a sliding window plus global tokens that see and are
///               seen by every token (Beltagy et al. 2020); captures
///               q_global [B, Sq] and kv_global [B, Sk], i32;
///   mlir        the user's function `func` (ModFuncSpec).
/// A named kind's capture values are only compared, never used as
/// addresses: any value is safe (a query whose document id no key has sees no
/// key: output 0).
struct MaskModSpec {
  enum class Kind {
    Document,
    PrefixLM,
    DilatedSlidingWindow,
    Strided,
    Fixed,
    Longformer,
    Mlir
  };
  Kind kind = Kind::Document;
  /// DilatedSlidingWindow, Longformer: keys on each side, 0 .. 2^31-1.
  int64_t window = 0;
  /// DilatedSlidingWindow: 1 .. 2^31-1.
  int64_t dilation = 1;
  /// Strided, Fixed: 1 .. 2^31-1.
  int64_t stride = 1;
  /// Fixed: 1 .. stride.
  int64_t summary = 1;
  ModFuncSpec func = {}; // Mlir
  bool operator==(const MaskModSpec &o) const {
    return kind == o.kind && window == o.window && dilation == o.dilation &&
           stride == o.stride && summary == o.summary && func == o.func;
  }
};

/// The band mask (causal or sliding_window, top-left) that keeps every key
/// `mod` keeps, where there is one: strided and fixed keep only j <= i
/// (causal), a dilated window only |i - j| <= window * dilation, a user
/// function what modFuncBand derives; none for the others (or a band wider
/// than 2^31 - 1). The kernel builder adds it to
/// the attention so that the tiling skips the tiles outside it; the region
/// still decides inside.
std::optional<MaskSpec> impliedBand(const MaskModSpec &mod);

/// The JSON name of a mask_mod kind ("document", "prefix_lm", ...).
const char *maskModKindName(MaskModSpec::Kind kind);

/// An attention problem. Sizes marked optional may be dynamic (nullopt):
/// one compiled kernel then serves every value.
struct AttentionSpec {
  std::optional<int64_t> batch = 1;
  int64_t qHeads = 1, kvHeads = 1;
  std::optional<int64_t> qLen = 1, kvLen = 1;
  int64_t headDim = 64, vHeadDim = 64;
  /// Element type of query, key, value and output (f32, f16 or bf16);
  /// softmax and accumulation are f32 whatever it is.
  DType dtype = DType::F32;
  /// Defaults to 1/sqrt(headDim).
  std::optional<double> scale;
  std::vector<MaskSpec> masks;
  /// A score modification, or none.
  std::optional<ScoreModSpec> scoreMod;
  /// A mask modification, or none.
  std::optional<MaskModSpec> maskMod;
  /// Also return the log-sum-exp [B, Hq, Sq] (f32, natural log).
  bool returnLse = false;

  /// Parses the JSON text of docs/design.md section 6. Errors name the
  /// offending key, e.g. "spec: 'head_dim' must be a positive integer".
  static llvm::Expected<AttentionSpec> fromJSON(const std::string &text);
  /// The JSON form (canonical: stable key order, every field explicit).
  std::string toJSON() const;
  /// Checks consistency (positive sizes, q_heads % kv_heads, mask fields,
  /// size limits); fromJSON calls it.
  llvm::Error validate() const;

  double scaleValue() const;
  const MaskSpec *findMask(MaskSpec::Kind kind) const;
  /// Whether the kernel carries score_mod / mask_mod regions.
  bool hasModRegions() const { return scoreMod || maskMod; }
  /// The run-time inputs score_mod and mask_mod read, in the order of
  /// AttentionArgs::captures and of the kernel's operands; their names are
  /// those of attn-run's --capture and of the C API.
  std::vector<CaptureSpec> captures() const;
  /// The score_mod's captures, then the mask_mod's: captures() is the two
  /// in this order.
  std::vector<CaptureSpec> scoreModCaptures() const;
  std::vector<CaptureSpec> maskModCaptures() const;
  bool isCausalLike() const;

  /// Same kernel: every field equal, the scale compared by value
  /// (scaleValue), so that a spec and its canonical form (toJSON, which
  /// writes the default 1/sqrt(head_dim) out) compare equal, as the kernel
  /// caches keyed by toJSON treat them.
  bool operator==(const AttentionSpec &o) const;
};

/// Floating-point operations of one run of `spec` at the given sizes:
/// 2 * B * Hq * (D + Dv) * (number of visible score entries), i.e.
/// 4 * B * Hq * Sq * Sk * D without masks when Dv = D (docs/design.md
/// section 8). Tensor and key-padding masks and a mask_mod count as
/// unmasked.
double attentionFlops(const AttentionSpec &spec, int64_t batch, int64_t qLen,
                      int64_t kvLen);

} // namespace attn

#endif // ATTN_RUNTIME_SPEC_H
