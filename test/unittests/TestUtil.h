//===- TestUtil.h - shared helpers of the runtime unit tests ----*- C++ -*-===//
//
// A `Problem` holds one attention problem twice: as doubles (what the f64
// reference reads, already rounded to the kernel's input types) and as the
// typed byte buffers the kernel reads and writes.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TEST_UNITTESTS_TESTUTIL_H
#define ATTN_TEST_UNITTESTS_TESTUTIL_H

#include "Reference.h"

#include "attn/Runtime/Runtime.h"

#include "gtest/gtest.h"

#include <cstdint>
#include <string>
#include <vector>

/// Asserts that an llvm::Error is success, printing it otherwise.
#define ASSERT_NO_LLVM_ERROR(expr)                                             \
  do {                                                                         \
    llvm::Error attnErr_ = (expr);                                             \
    ASSERT_FALSE(static_cast<bool>(attnErr_))                                  \
        << llvm::toString(std::move(attnErr_));                                \
  } while (0)

/// Skips the running test, naming the missing feature, when this CPU cannot
/// run the CPU target level `level`.
#define SKIP_UNLESS_CPU_TARGET(level)                                          \
  do {                                                                         \
    std::string attnWhy_ = ::attn::test::cpuTargetUnavailable(level);          \
    if (!attnWhy_.empty())                                                     \
      GTEST_SKIP() << attnWhy_;                                                \
  } while (0)

/// `auto var = *expr` for an llvm::Expected, asserting success.
#define ASSERT_EXPECTED(var, expr)                                             \
  auto var##OrErr_ = (expr);                                                   \
  ASSERT_TRUE(static_cast<bool>(var##OrErr_))                                  \
      << llvm::toString(var##OrErr_.takeError());                              \
  auto var = std::move(*var##OrErr_)

namespace attn {
namespace test {

/// The message of an error ("" for success); consumes it.
std::string errorText(llvm::Error err);

/// A typed, C-contiguous host buffer.
struct Buffer {
  DType dtype = DType::F32;
  std::vector<char> bytes;

  int64_t size() const { return bytes.size() / dtypeSize(dtype); }
  /// Stores `values` converted to `dtype` (round to nearest even), and
  /// rewrites `values` with what was stored.
  void store(DType dtype, std::vector<double> &values);
  /// Allocates `n` elements filled with a NaN (floats) or 0x5a bytes.
  void allocate(DType dtype, int64_t n);
  /// Element `i` converted to double.
  double at(int64_t i) const;
  std::vector<double> toDoubles() const;
};

/// One attention problem at concrete sizes.
class Problem {
public:
  Problem(AttentionSpec spec, int64_t batch, int64_t qLen, int64_t kvLen);

  /// Fills query, key and value with uniform values in [-1, 1], the tensor
  /// mask, kv_lens and the mask_mod's captures (if the spec has them) with a
  /// pattern that `variant` shifts, then materializes.
  void randomize(uint32_t seed, int variant = 0);
  /// Converts `in` to the typed buffers (rounding `in` in place) and
  /// allocates the outputs (filled with NaN).
  void materialize();
  /// Contiguous TensorRefs over the buffers.
  AttentionArgs args();

  std::vector<double> output() const { return out.toDoubles(); }
  std::vector<double> lseValues() const { return lse.toDoubles(); }
  reference::Outputs reference() const {
    return reference::attention(spec, in);
  }

  /// Index helpers into `in`.
  int64_t keyIndex(int64_t b, int64_t kvh, int64_t j, int64_t d) const {
    return ((b * spec.kvHeads + kvh) * in.kvLen + j) * spec.headDim + d;
  }
  int64_t valueIndex(int64_t b, int64_t kvh, int64_t j, int64_t d) const {
    return ((b * spec.kvHeads + kvh) * in.kvLen + j) * spec.vHeadDim + d;
  }
  /// Sets every element of key and value row j of batch b (all kv heads).
  void poisonKey(int64_t b, int64_t j, double keyValue, double valueValue);

  AttentionSpec spec;
  reference::Inputs in;
  Buffer q, k, v, mask, kvLens, out, lse;
  /// The spec's captures, in AttentionSpec::captures() order.
  std::vector<Buffer> captures;
};

/// Compares a run's output (and LSE when the spec returns it) with the
/// reference: NaN exactly where the reference has NaN, max |err| <= rtol *
/// (1 + max |ref|) over finite entries, exact 0 output and -inf LSE on rows
/// without a kept key.
::testing::AssertionResult matchesReference(const Problem &problem,
                                            const reference::Outputs &ref,
                                            double rtol = 2e-5);

/// max |a - b| over entries (NaN counts as infinite error).
double maxAbsError(const std::vector<double> &a, const std::vector<double> &b);

/// The process-wide runtime of the tests (every core).
Runtime &sharedRuntime();

/// A spec with dynamic batch, q_len and kv_len.
AttentionSpec dynamicSpec(int64_t qHeads, int64_t kvHeads, int64_t headDim,
                          int64_t vHeadDim, std::vector<MaskSpec> masks = {},
                          DType dtype = DType::F32, bool returnLse = true);

/// The CPU target levels (CompileOptions::cpuTarget) numerics tests compile
/// `dtype` kernels for: those whose lowering of `dtype` differs. f32 and f16:
/// x86-64-v3 and x86-64-v4 (the AVX512-BF16 and AMX levels change only bf16
/// code); bf16: every level. Levels this CPU cannot run are included: the
/// tests skip them (SKIP_UNLESS_CPU_TARGET), so a host sees what it missed.
std::vector<std::string> numericsCPUTargets(DType dtype);

/// "" when this CPU can run `level`, else why not ("options: cpu_target
/// 'x86-64-v4-amx' needs amx-tile, which this CPU (...) lacks").
std::string cpuTargetUnavailable(const std::string &level);

/// A gtest parameter name for a level ("x86-64-v4" -> "x86_64_v4").
std::string cpuTargetTestName(const std::string &level);

/// Mask constructors.
MaskSpec causalMask(bool bottomRight);
MaskSpec windowMask(int64_t left, int64_t right, bool bottomRight);
MaskSpec tensorMask(DType dtype, bool batchBroadcast, bool headBroadcast,
                    bool queryBroadcast);
MaskSpec keyPaddingMask(DType dtype = DType::I32);

} // namespace test
} // namespace attn

namespace mlir {
namespace attn {
/// gtest's printer for tile sizes in failure messages.
inline void PrintTo(const AttentionTileSizes &t, std::ostream *os) {
  *os << t.batch << "," << t.heads << "," << t.query << "," << t.key;
}
} // namespace attn
} // namespace mlir

#endif // ATTN_TEST_UNITTESTS_TESTUTIL_H
