//===- NumericsTest.cpp - compiled kernels against the f64 reference ------===//
//
// docs/design.md section 7 through the public runtime API: one kernel with
// dynamic sizes per configuration, run over many (q_len, kv_len) pairs and
// compared with reference::attention (output and log-sum-exp).
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "attn/Runtime/Float16.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <sstream>

using namespace attn;
using namespace attn::test;

namespace {

using Shapes = std::vector<std::pair<int64_t, int64_t>>;

const int64_t kSizes[] = {1, 3, 17, 64, 113, 127, 257, 1000};

/// Every (Sq, Sk) of the sweep.
Shapes fullGrid() {
  Shapes s;
  for (int64_t sq : kSizes)
    for (int64_t sk : kSizes)
      s.push_back({sq, sk});
  return s;
}

/// A reduced set: still 1, 3, 113 and 1000, in both orders.
Shapes reducedGrid() {
  return {{1, 1},     {1, 1000},  {1000, 1},  {3, 3},   {3, 113},
          {113, 3},   {17, 257},  {257, 17},  {64, 127}, {127, 64},
          {113, 1000}, {1000, 113}};
}

uint32_t seedFor(int64_t sq, int64_t sk, int64_t salt = 0) {
  return static_cast<uint32_t>(1000003 * sq + 7919 * sk + 31 * salt + 17);
}

std::string shapeTrace(const Problem &p) {
  std::ostringstream os;
  os << "B=" << p.in.batch << " Sq=" << p.in.qLen << " Sk=" << p.in.kvLen;
  if (!p.in.kvLens.empty()) {
    os << " kv_lens=[";
    for (size_t i = 0; i < p.in.kvLens.size(); ++i)
      os << (i ? "," : "") << p.in.kvLens[i];
    os << "]";
  }
  return os.str();
}

int64_t countLseNegInf(const Problem &p) {
  int64_t n = 0;
  for (double x : p.lseValues())
    n += std::isinf(x) && x < 0;
  return n;
}

bool anyNaN(const std::vector<double> &v) {
  for (double x : v)
    if (std::isnan(x))
      return true;
  return false;
}

bool allFinite(const std::vector<double> &v) {
  for (double x : v)
    if (!std::isfinite(x))
      return false;
  return true;
}

//===----------------------------------------------------------------------===//
// The oracle itself, on hand-computed cases (no kernel)
//===----------------------------------------------------------------------===//

TEST(ReferenceSelfTest, HandComputedSoftmax) {
  AttentionSpec spec = dynamicSpec(1, 1, 1, 2);
  spec.scale = 1.0;
  reference::Inputs in;
  in.qLen = 1;
  in.kvLen = 2;
  in.query = {1.0};
  in.key = {0.0, std::log(3.0)}; // weights 1/4, 3/4
  in.value = {1.0, 2.0, 0.0, 4.0};
  reference::Outputs r = reference::attention(spec, in);
  ASSERT_EQ(r.output.size(), 2u);
  EXPECT_NEAR(r.output[0], 0.25, 1e-15);
  EXPECT_NEAR(r.output[1], 0.5 + 3.0, 1e-15);
  ASSERT_EQ(r.lse.size(), 1u);
  EXPECT_NEAR(r.lse[0], std::log(4.0), 1e-15);
  // An additive bias of ln(3) on key 0 evens the weights out.
  spec.masks = {tensorMask(DType::F32, true, true, true)};
  in.mask = {std::log(3.0), 0.0};
  r = reference::attention(spec, in);
  EXPECT_NEAR(r.output[0], 0.5, 1e-15);
  EXPECT_NEAR(r.output[1], 3.0, 1e-15);
  EXPECT_NEAR(r.lse[0], std::log(6.0), 1e-15);
  // A -inf bias hides key 1 without reading it.
  in.mask = {0.0, -std::numeric_limits<double>::infinity()};
  in.key[1] = std::numeric_limits<double>::quiet_NaN();
  r = reference::attention(spec, in);
  EXPECT_EQ(r.output[0], 1.0);
  EXPECT_EQ(r.output[1], 2.0);
  EXPECT_EQ(r.lse[0], 0.0);
}

TEST(ReferenceSelfTest, MaskPredicates) {
  reference::Inputs in;
  in.batch = 2;
  in.qLen = 3;
  in.kvLen = 5;
  AttentionSpec tl = dynamicSpec(1, 1, 4, 4, {causalMask(false)});
  EXPECT_TRUE(reference::keeps(tl, in, 0, 0, 1, 1));
  EXPECT_FALSE(reference::keeps(tl, in, 0, 0, 1, 2));
  AttentionSpec br = dynamicSpec(1, 1, 4, 4, {causalMask(true)}); // shift 2
  EXPECT_TRUE(reference::keeps(br, in, 0, 0, 0, 2));
  EXPECT_FALSE(reference::keeps(br, in, 0, 0, 0, 3));
  EXPECT_TRUE(reference::keeps(br, in, 0, 0, 2, 4));
  AttentionSpec win = dynamicSpec(1, 1, 4, 4, {windowMask(1, 0, true)});
  EXPECT_FALSE(reference::keeps(win, in, 0, 0, 1, 1)); // window [2, 3]
  EXPECT_TRUE(reference::keeps(win, in, 0, 0, 1, 2));
  EXPECT_TRUE(reference::keeps(win, in, 0, 0, 1, 3));
  EXPECT_FALSE(reference::keeps(win, in, 0, 0, 1, 4));
  AttentionSpec pad = dynamicSpec(1, 1, 4, 4, {keyPaddingMask()});
  in.kvLens = {-2, 100}; // clamped to 0 and 5
  EXPECT_FALSE(reference::keeps(pad, in, 0, 0, 0, 0));
  EXPECT_TRUE(reference::keeps(pad, in, 1, 0, 0, 4));
  in.kvLens = {2, 3};
  EXPECT_TRUE(reference::keeps(pad, in, 0, 0, 2, 1));
  EXPECT_FALSE(reference::keeps(pad, in, 0, 0, 2, 2));
  // A bool mask [B, 1, 1, Sk] broadcast over heads and queries, intersected
  // with causal.
  AttentionSpec both = dynamicSpec(
      2, 1, 4, 4, {causalMask(false), tensorMask(DType::Bool, false, true, true)});
  in.mask = {1, 0, 1, 1, 1, /*b=1*/ 0, 1, 1, 1, 1};
  EXPECT_FALSE(reference::keeps(both, in, 0, 1, 2, 1));
  EXPECT_TRUE(reference::keeps(both, in, 0, 1, 2, 2));
  EXPECT_FALSE(reference::keeps(both, in, 0, 1, 2, 3)); // causal
  EXPECT_FALSE(reference::keeps(both, in, 1, 0, 2, 0));
  EXPECT_TRUE(reference::keeps(both, in, 1, 0, 2, 1));
}

TEST(ReferenceSelfTest, GroupedHeadsAndEmptyRows) {
  // Hq 4, Hkv 2: heads 0, 1 read kv head 0; heads 2, 3 read kv head 1.
  AttentionSpec spec = dynamicSpec(4, 2, 8, 8, {causalMask(true)});
  Problem p(spec, 1, 6, 4); // bottom-right, Sq > Sk: rows 0, 1 are empty
  p.randomize(5);
  for (int64_t h = 0; h < 4; ++h) // the same query in every head
    for (int64_t x = 0; x < 6 * 8; ++x)
      p.in.query[h * 6 * 8 + x] = p.in.query[x];
  reference::Outputs r = p.reference();
  const int64_t head = 6 * 8;
  for (int64_t x = 0; x < head; ++x) {
    EXPECT_EQ(r.output[x], r.output[head + x]);
    EXPECT_EQ(r.output[2 * head + x], r.output[3 * head + x]);
  }
  EXPECT_NE(r.output[head + 2 * 8], r.output[2 * head + 2 * 8]);
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i = 0; i < 6; ++i) {
      double lse = r.lse[h * 6 + i];
      EXPECT_EQ(std::isinf(lse), i < 2) << "h " << h << " i " << i;
      if (i < 2)
        for (int64_t d = 0; d < 8; ++d)
          EXPECT_EQ(r.output[(h * 6 + i) * 8 + d], 0.0);
    }
}

TEST(ReferenceSelfTest, SamePrecisionIsCloseButNotExact) {
  for (DType dt : {DType::F16, DType::BF16}) {
    AttentionSpec spec = dynamicSpec(1, 1, 32, 32, {}, dt);
    Problem p(spec, 1, 9, 40);
    p.randomize(6);
    for (double x : p.in.query) // inputs are rounded to the dtype
      ASSERT_EQ(x, reference::roundTo(dt, x));
    std::vector<double> same = reference::samePrecisionAttention(spec, p.in);
    double err = maxAbsError(same, p.reference().output);
    EXPECT_GT(err, 0.0) << dtypeName(dt);
    EXPECT_LT(err, dt == DType::F16 ? 2e-3 : 1.6e-2) << dtypeName(dt);
  }
}

//===----------------------------------------------------------------------===//
// The sweep
//===----------------------------------------------------------------------===//

struct SweepCase {
  std::string name;
  int64_t batch, qHeads, kvHeads, headDim, vHeadDim;
  std::vector<MaskSpec> masks;
  Shapes shapes;
  std::optional<ScoreModSpec> scoreMod = std::nullopt;
  std::optional<MaskModSpec> maskMod = std::nullopt;
};

ScoreModSpec alibi() { return {ScoreModSpec::Kind::Alibi, 0}; }
ScoreModSpec softcap(double cap) { return {ScoreModSpec::Kind::Softcap, cap}; }
ScoreModSpec t5Bias(int64_t buckets, int64_t distance, bool bidirectional) {
  ScoreModSpec m{ScoreModSpec::Kind::T5Bias, 0};
  m.numBuckets = buckets;
  m.maxDistance = distance;
  m.bidirectional = bidirectional;
  return m;
}
MaskModSpec documentMask() { return {MaskModSpec::Kind::Document}; }
MaskModSpec prefixLM() { return {MaskModSpec::Kind::PrefixLM}; }
MaskModSpec dilated(int64_t window, int64_t dilation) {
  MaskModSpec m{MaskModSpec::Kind::DilatedSlidingWindow};
  m.window = window;
  m.dilation = dilation;
  return m;
}
MaskModSpec strided(int64_t stride) {
  MaskModSpec m{MaskModSpec::Kind::Strided};
  m.stride = stride;
  return m;
}
MaskModSpec fixedPattern(int64_t stride, int64_t summary) {
  MaskModSpec m{MaskModSpec::Kind::Fixed};
  m.stride = stride;
  m.summary = summary;
  return m;
}
MaskModSpec longformer(int64_t window) {
  MaskModSpec m{MaskModSpec::Kind::Longformer};
  m.window = window;
  return m;
}

/// The tests' user-defined functions (kind "mlir"), each registered with
/// its C++ reference under its canonical text (userReferences finds it):
/// relScore: s + rel[h, |i - j|] with rel [Hq, 8] f32: distances beyond 7
/// read rel[h, 7] (the runtime clamps the index). tempScore: s * temp[]
/// (a rank-0 capture). idsMask: i % 5 != 3 (rows 3, 8, ... see no key) and
/// kv_ids[b, j + 3] <= i % 4 with kv_ids [B, Sk] i64: keys j + 3 beyond
/// Sk - 1 read kv_ids[b, Sk - 1] (clamped against a run-time kv_len).
/// userWindowMask: |i - j| <= 9 and (i + 2 j) % 3 != 1, whose window the
/// compiler finds (the tiles outside it are skipped).
using UserScore = std::function<double(const reference::Inputs &, int64_t,
                                       int64_t, int64_t, int64_t, double)>;
using UserMask = std::function<bool(const reference::Inputs &, int64_t, int64_t,
                                    int64_t, int64_t)>;
std::map<std::string, UserScore> &userScores() {
  static std::map<std::string, UserScore> m;
  return m;
}
std::map<std::string, UserMask> &userMasks() {
  static std::map<std::string, UserMask> m;
  return m;
}
ModFuncSpec userFunc(const char *text, std::vector<CaptureSpec> captures,
                     bool isScoreMod) {
  llvm::Expected<ModFuncSpec> f =
      resolveModFunc({text, std::move(captures)}, isScoreMod);
  if (!f) {
    ADD_FAILURE() << llvm::toString(f.takeError());
    return {};
  }
  return *f;
}
ScoreModSpec userScore(const char *text, std::vector<CaptureSpec> captures,
                       UserScore ref) {
  ScoreModSpec m{ScoreModSpec::Kind::Mlir, 0};
  m.func = userFunc(text, std::move(captures), true);
  userScores()[m.func.func] = std::move(ref);
  return m;
}
MaskModSpec userMask(const char *text, std::vector<CaptureSpec> captures,
                     UserMask ref) {
  MaskModSpec m{MaskModSpec::Kind::Mlir};
  m.func = userFunc(text, std::move(captures), false);
  userMasks()[m.func.func] = std::move(ref);
  return m;
}
using Dim = CaptureSpec::Dim;
ScoreModSpec relScore(int64_t qHeads) {
  return userScore(
      R"mlir(
    func.func @rel(%s: f32, %b: index, %h: index, %q: index, %kv: index,
                   %rel: tensor<?x8xf32>) -> f32 {
      %zero = arith.constant 0 : index
      %d = arith.subi %q, %kv : index
      %nd = arith.subi %zero, %d : index
      %ad = arith.maxsi %d, %nd : index
      %r = tensor.extract %rel[%h, %ad] : tensor<?x8xf32>
      %y = arith.addf %s, %r : f32
      return %y : f32
    })mlir",
      {{"rel", DType::F32, {Dim(Dim::Fixed, qHeads), Dim(Dim::Fixed, 8)}}},
      [](const reference::Inputs &in, int64_t, int64_t h, int64_t i, int64_t j,
         double s) {
        return s + in.userCaptures.at("rel").at(
                       h * 8 + std::min<int64_t>(std::abs(i - j), 7));
      });
}
ScoreModSpec tempScore() {
  return userScore(
      R"mlir(
    func.func @temp(%s: f32, %b: index, %h: index, %q: index, %kv: index,
                    %temp: tensor<f32>) -> f32 {
      %t = tensor.extract %temp[] : tensor<f32>
      %y = arith.mulf %s, %t : f32
      return %y : f32
    })mlir",
      {{"temp", DType::F32, {}}},
      [](const reference::Inputs &in, int64_t, int64_t, int64_t, int64_t,
         double s) { return s * in.userCaptures.at("temp").at(0); });
}
MaskModSpec idsMask() {
  return userMask(
      R"mlir(
    func.func @ids(%b: index, %h: index, %q: index, %kv: index,
                   %ids: tensor<?x?xi64>) -> i1 {
      %c3 = arith.constant 3 : index
      %c4 = arith.constant 4 : index
      %c5 = arith.constant 5 : index
      %k3 = arith.addi %kv, %c3 : index
      %id = tensor.extract %ids[%b, %k3] : tensor<?x?xi64>
      %qm = arith.remui %q, %c4 : index
      %qm64 = arith.index_cast %qm : index to i64
      %le = arith.cmpi sle, %id, %qm64 : i64
      %q5 = arith.remui %q, %c5 : index
      %row = arith.cmpi ne, %q5, %c3 : index
      %keep = arith.andi %le, %row : i1
      return %keep : i1
    })mlir",
      {{"kv_ids", DType::I64, {Dim::Batch, Dim::KvLen}}},
      [](const reference::Inputs &in, int64_t b, int64_t, int64_t i,
         int64_t j) {
        double id = in.userCaptures.at("kv_ids").at(
            b * in.kvLen + std::min<int64_t>(j + 3, in.kvLen - 1));
        return i % 5 != 3 && id <= static_cast<double>(i % 4);
      });
}
MaskModSpec userWindowMask() {
  return userMask(
      R"mlir(
    func.func @window(%b: index, %h: index, %q: index, %kv: index) -> i1 {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c3 = arith.constant 3 : index
      %c9 = arith.constant 9 : index
      %d = arith.subi %q, %kv : index
      %nd = arith.subi %c0, %d : index
      %ad = arith.maxsi %d, %nd : index
      %near = arith.cmpi sle, %ad, %c9 : index
      %k2 = arith.muli %kv, %c2 : index
      %sum = arith.addi %q, %k2 : index
      %r = arith.remui %sum, %c3 : index
      %odd = arith.cmpi ne, %r, %c1 : index
      %keep = arith.andi %near, %odd : i1
      return %keep : i1
    })mlir",
      {},
      [](const reference::Inputs &, int64_t, int64_t, int64_t i, int64_t j) {
        return std::abs(i - j) <= 9 && (i + 2 * j) % 3 != 1;
      });
}
/// Sets the C++ references of the problem's user functions.
void userReferences(Problem &p) {
  if (p.spec.scoreMod && p.spec.scoreMod->kind == ScoreModSpec::Kind::Mlir) {
    ASSERT_TRUE(userScores().count(p.spec.scoreMod->func.func));
    p.in.userScoreMod = userScores().at(p.spec.scoreMod->func.func);
  }
  if (p.spec.maskMod && p.spec.maskMod->kind == MaskModSpec::Kind::Mlir) {
    ASSERT_TRUE(userMasks().count(p.spec.maskMod->func.func));
    p.in.userMaskMod = userMasks().at(p.spec.maskMod->func.func);
  }
}

void PrintTo(const SweepCase &c, std::ostream *os) { *os << c.name; }

/// Each case on each CPU target level numericsCPUTargets names.
class Sweep
    : public ::testing::TestWithParam<std::tuple<SweepCase, std::string>> {};

TEST_P(Sweep, MatchesReference) {
  const SweepCase &c = std::get<0>(GetParam());
  SKIP_UNLESS_CPU_TARGET(std::get<1>(GetParam()));
  CompileOptions options;
  options.cpuTarget = std::get<1>(GetParam());
  AttentionSpec spec =
      dynamicSpec(c.qHeads, c.kvHeads, c.headDim, c.vHeadDim, c.masks);
  spec.scoreMod = c.scoreMod;
  spec.maskMod = c.maskMod;
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec, Target::CPU, options));
  int failures = 0;
  int variant = 0;
  for (auto [sq, sk] : c.shapes) {
    Problem p(spec, c.batch, sq, sk);
    p.randomize(seedFor(sq, sk, c.headDim), variant++);
    userReferences(p);
    SCOPED_TRACE(shapeTrace(p));
    ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
    auto res = matchesReference(p, p.reference());
    EXPECT_TRUE(res);
    if (!res && ++failures >= 3)
      FAIL() << "stopping after 3 failing shapes";
  }
}

std::vector<SweepCase> sweepCases() {
  std::vector<SweepCase> cases;
  const MaskSpec causalTL = causalMask(false), causalBR = causalMask(true);
  // The full (Sq, Sk) grid for D in {16, 64, 128}, none and bottom-right
  // causal.
  struct Full {
    int64_t d, b, hq, hkv;
  };
  for (Full f : {Full{16, 2, 2, 1}, Full{64, 1, 2, 2}, Full{128, 1, 2, 1}}) {
    std::string d = std::to_string(f.d);
    cases.push_back({"D" + d + "_none_full", f.b, f.hq, f.hkv, f.d, f.d, {},
                     fullGrid()});
    cases.push_back({"D" + d + "_causalBR_full", f.b, f.hq, f.hkv, f.d, f.d,
                     {causalBR}, fullGrid()});
  }
  // The other head dims, reduced grid.
  for (int64_t d : {32, 80, 256}) {
    std::string n = std::to_string(d);
    cases.push_back({"D" + n + "_none", 1, 2, 2, d, d, {}, reducedGrid()});
    cases.push_back(
        {"D" + n + "_causalBR", 1, 2, 1, d, d, {causalBR}, reducedGrid()});
  }
  // MLA: D = 576, Dv = 512.
  cases.push_back({"MLA_D576_Dv512_none", 1, 2, 1, 576, 512, {},
                   reducedGrid()});
  cases.push_back({"MLA_D576_Dv512_causalBR", 1, 2, 1, 576, 512, {causalBR},
                   reducedGrid()});
  // GQA / MQA.
  cases.push_back(
      {"GQA_Hq4_Hkv2_D64_none", 1, 4, 2, 64, 64, {}, reducedGrid()});
  cases.push_back({"GQA_Hq4_Hkv2_D64_causalTL", 2, 4, 2, 64, 64, {causalTL},
                   reducedGrid()});
  cases.push_back({"MQA_Hq4_Hkv1_D32_causalBR", 1, 4, 1, 32, 32, {causalBR},
                   reducedGrid()});
  cases.push_back({"MQA_Hq3_Hkv1_D16_none", 2, 3, 1, 16, 16, {},
                   reducedGrid()});
  // Causal, top-left.
  cases.push_back(
      {"D64_causalTL", 2, 2, 2, 64, 64, {causalTL}, reducedGrid()});
  // Sliding windows, both alignments.
  for (bool br : {false, true}) {
    std::string a = br ? "BR" : "TL";
    cases.push_back({"window_L16_R0_" + a, 1, 2, 1, 32, 32,
                     {windowMask(16, 0, br)}, reducedGrid()});
    cases.push_back({"window_L5_R7_" + a, 1, 2, 1, 32, 32,
                     {windowMask(5, 7, br)}, reducedGrid()});
  }
  // Tensor masks (bool keeps; float is an additive bias), with broadcasts.
  cases.push_back({"tensorBool_headBcast", 2, 2, 1, 32, 32,
                   {tensorMask(DType::Bool, false, true, false)},
                   reducedGrid()});
  cases.push_back({"tensorBool_noBcast_GQA", 2, 4, 2, 32, 32,
                   {tensorMask(DType::Bool, false, false, false)},
                   reducedGrid()});
  cases.push_back({"tensorBool_batchQueryBcast", 2, 2, 2, 16, 16,
                   {tensorMask(DType::Bool, true, false, true)},
                   reducedGrid()});
  cases.push_back({"tensorBiasF32_headBcast", 2, 2, 1, 32, 32,
                   {tensorMask(DType::F32, false, true, false)},
                   reducedGrid()});
  cases.push_back({"tensorBiasF32_noBcast", 1, 2, 2, 64, 64,
                   {tensorMask(DType::F32, false, false, false)},
                   reducedGrid()});
  cases.push_back({"tensorBiasF16_queryBcast", 2, 2, 1, 16, 16,
                   {tensorMask(DType::F16, true, true, true)},
                   reducedGrid()});
  // Key padding (lengths 0, 1, Sk/2, Sk, Sk + 5, Sk - 3 over the shapes).
  cases.push_back({"keyPaddingI32", 3, 2, 1, 32, 32,
                   {keyPaddingMask(DType::I32)}, reducedGrid()});
  cases.push_back({"keyPaddingI64", 3, 2, 2, 64, 64,
                   {keyPaddingMask(DType::I64)}, reducedGrid()});
  // Combinations.
  cases.push_back({"causalBR_keyPadding", 3, 2, 1, 32, 32,
                   {causalBR, keyPaddingMask(DType::I32)}, reducedGrid()});
  cases.push_back({"causalTL_keyPadding", 2, 2, 1, 32, 32,
                   {causalTL, keyPaddingMask(DType::I32)}, reducedGrid()});
  cases.push_back({"causalTL_tensorBool", 2, 2, 1, 32, 32,
                   {causalTL, tensorMask(DType::Bool, false, true, false)},
                   reducedGrid()});
  cases.push_back({"windowBR_L5_R7_bias_keyPadding", 2, 2, 1, 16, 16,
                   {windowMask(5, 7, true),
                    tensorMask(DType::F32, false, true, false),
                    keyPaddingMask(DType::I64)},
                   reducedGrid()});
  // Named score modifications (score_mod regions built by the runtime):
  // ALiBi with power-of-two and other head counts, under GQA / MQA and
  // both causal alignments (the region's query row is the row, not its
  // diagonal); softcapping with tensor bias and key padding (rows with no
  // visible key at length 0).
  cases.push_back({"alibi_GQA_Hq4_Hkv2_D64_causalBR", 2, 4, 2, 64, 64,
                   {causalBR}, reducedGrid(), alibi()});
  cases.push_back({"alibi_MQA_Hq6_Hkv1_D32_none", 1, 6, 1, 32, 32, {},
                   reducedGrid(), alibi()});
  cases.push_back({"alibi_Hq2_D16_causalTL_full", 1, 2, 2, 16, 16,
                   {causalTL}, fullGrid(), alibi()});
  cases.push_back({"softcap5_D64_causalTL_keyPadding", 3, 2, 1, 64, 64,
                   {causalTL, keyPaddingMask(DType::I32)}, reducedGrid(),
                   softcap(5.0)});
  cases.push_back({"softcap2_D32_windowBR_bias", 2, 2, 1, 32, 32,
                   {windowMask(5, 7, true),
                    tensorMask(DType::F32, false, true, false)},
                   reducedGrid(), softcap(2.0)});
  // Named mask modifications (mask_mod regions reading run-time captures):
  // documents packed per batch (queries bottom-right in the keys' sequence,
  // a query of no key's document on odd variants: an empty row), alone,
  // under causal with GQA, with ALiBi; prefix-LM with prefixes of 0, 1,
  // Sk / 2, Sk, beyond Sk and negative, alone and with key padding. Then
  // the index patterns: dilated windows (alone, under causal or a window),
  // the Sparse Transformer's strided and fixed patterns, Longformer's window
  // with global tokens (with key padding).
  // clang-format off
  const std::optional<ScoreModSpec> none = std::nullopt;
  cases.push_back({"document_D32_none", 2, 2, 1, 32, 32, {}, reducedGrid(),
                   none, documentMask()});
  cases.push_back({"document_GQA_Hq4_Hkv2_D64_causalBR", 2, 4, 2, 64, 64,
                   {causalBR}, reducedGrid(), none, documentMask()});
  cases.push_back({"document_alibi_D16_causalTL_full", 1, 2, 2, 16, 16,
                   {causalTL}, fullGrid(), alibi(), documentMask()});
  cases.push_back({"prefixLM_D64", 3, 2, 1, 64, 64, {}, reducedGrid(), none,
                   prefixLM()});
  cases.push_back({"prefixLM_D32_keyPadding_softcap", 3, 2, 2, 32, 32,
                   {keyPaddingMask(DType::I64)}, reducedGrid(), softcap(4.0),
                   prefixLM()});
  cases.push_back({"dilated_W3_D2_D32", 1, 2, 1, 32, 32, {}, reducedGrid(),
                   none, dilated(3, 2)});
  cases.push_back({"dilated_W5_D3_D16_causalBR_full", 1, 2, 2, 16, 16,
                   {causalBR}, fullGrid(), none, dilated(5, 3)});
  cases.push_back({"strided_S7_GQA_Hq4_Hkv2_D64", 2, 4, 2, 64, 64, {},
                   reducedGrid(), none, strided(7)});
  // The band a mask_mod implies intersected with the spec's top-left band
  // (the tiles outside it are skipped; the region decides inside).
  cases.push_back({"dilated_W4_D3_D32_windowTL_L40_R2", 1, 2, 1, 32, 32,
                   {windowMask(40, 2, false)}, reducedGrid(), none,
                   dilated(4, 3)});
  cases.push_back({"strided_S5_D16_causalTL_full", 1, 2, 1, 16, 16,
                   {causalTL}, fullGrid(), none, strided(5)});
  cases.push_back({"fixed_S16_C3_D32_alibi", 1, 2, 1, 32, 32, {},
                   reducedGrid(), alibi(), fixedPattern(16, 3)});
  cases.push_back({"longformer_W4_D64_keyPadding", 3, 2, 1, 64, 64,
                   {keyPaddingMask(DType::I32)}, reducedGrid(), none,
                   longformer(4)});
  // T5's relative position bias (a [buckets, Hq] table capture): T5's
  // defaults both ways (distances up to 999 reach every bucket), one way
  // under causal with other sizes, and with a document mask_mod (captures
  // of both regions).
  cases.push_back({"t5_32_128_bidirectional_GQA_D64", 2, 4, 2, 64, 64, {},
                   reducedGrid(), t5Bias(32, 128, true)});
  cases.push_back({"t5_16_40_causalTL_D32_full", 1, 2, 1, 32, 32,
                   {causalTL}, fullGrid(), t5Bias(16, 40, false)});
  cases.push_back({"t5_document_D16", 2, 2, 2, 16, 16, {}, reducedGrid(),
                   t5Bias(8, 20, true), documentMask()});
  // User-defined functions (kind "mlir"; userReferences): a table
  // score_mod read at a clamped index, under GQA and bottom-right causal;
  // an i64 mask_mod with empty rows and reads clamped against the run-time
  // kv_len, with key padding; both, with T5's named score_mod's captures
  // absent (the mask_mod's are the only ones) and a top-left causal mask.
  cases.push_back({"mlirScore_rel_GQA_Hq4_Hkv2_D64_causalBR", 2, 4, 2, 64, 64,
                   {causalBR}, reducedGrid(), relScore(4)});
  cases.push_back({"mlirMask_ids_D32_keyPadding", 3, 2, 1, 32, 32,
                   {keyPaddingMask(DType::I32)}, reducedGrid(), none,
                   idsMask()});
  cases.push_back({"mlirBoth_D16_causalTL_full", 1, 2, 2, 16, 16,
                   {causalTL}, fullGrid(), relScore(2), idsMask()});
  cases.push_back({"mlirMask_alibi_D32", 2, 2, 1, 32, 32, {}, reducedGrid(),
                   alibi(), idsMask()});
  cases.push_back({"mlirScore_temp_rank0_D64_windowBR", 2, 2, 1, 64, 64,
                   {windowMask(5, 7, true)}, reducedGrid(), tempScore()});
  // A user mask_mod whose window the compiler derives (tiles outside it
  // skipped), alone and intersected with causal.
  cases.push_back({"mlirMask_window9_D32", 2, 2, 1, 32, 32, {}, reducedGrid(),
                   none, userWindowMask()});
  cases.push_back({"mlirMask_window9_D16_causalTL_full", 1, 2, 2, 16, 16,
                   {causalTL}, fullGrid(), none, userWindowMask()});
  // clang-format on
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    Numerics, Sweep,
    ::testing::Combine(::testing::ValuesIn(sweepCases()),
                       ::testing::ValuesIn(numericsCPUTargets(DType::F32))),
    [](const ::testing::TestParamInfo<std::tuple<SweepCase, std::string>>
           &info) {
      return std::get<0>(info.param).name + "_" +
             cpuTargetTestName(std::get<1>(info.param));
    });

//===----------------------------------------------------------------------===//
// Static sizes with few query rows (decoding): the CPU lowering puts the keys
// on the vector lanes for tiles of up to 4 rows.
//===----------------------------------------------------------------------===//

struct DecodeCase {
  std::string name;
  int64_t batch, qHeads, kvHeads, qLen, kvLen, headDim;
  std::vector<MaskSpec> masks;
  std::optional<ScoreModSpec> scoreMod = std::nullopt;
  std::optional<MaskModSpec> maskMod = std::nullopt;
};

void PrintTo(const DecodeCase &c, std::ostream *os) { *os << c.name; }

class StaticDecode : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(StaticDecode, MatchesReference) {
  const DecodeCase &c = GetParam();
  AttentionSpec spec = dynamicSpec(c.qHeads, c.kvHeads, c.headDim, c.headDim,
                                   c.masks);
  spec.batch = c.batch;
  spec.qLen = c.qLen;
  spec.kvLen = c.kvLen;
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  Problem p(spec, c.batch, c.qLen, c.kvLen);
  p.randomize(seedFor(c.qLen, c.kvLen, c.headDim));
  SCOPED_TRACE(shapeTrace(p));
  ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
  EXPECT_TRUE(matchesReference(p, p.reference()));
}

std::vector<DecodeCase> decodeCases() {
  const MaskSpec causalBR = causalMask(true), causalTL = causalMask(false);
  return {
      {"Sq1_Sk1000_D128_GQA4", 1, 8, 2, 1, 1000, 128, {}},
      {"Sq1_Sk1_D64", 2, 2, 2, 1, 1, 64, {}},
      {"Sq1_Sk17_D16_MQA", 2, 4, 1, 1, 17, 16, {}},
      {"Sq2_Sk113_D64_causalBR", 1, 4, 2, 2, 113, 64, {causalBR}},
      {"Sq3_Sk257_D32_causalTL", 2, 2, 1, 3, 257, 32, {causalTL}},
      {"Sq4_Sk64_D128_windowBR", 1, 2, 2, 4, 64, 128, {windowMask(9, 0, true)}},
      {"Sq1_Sk300_D64_keyPadding", 3, 2, 1, 1, 300, 64, {keyPaddingMask()}},
      {"Sq3_Sk100_D32_tensorBool", 2, 2, 2, 3, 100, 32,
       {tensorMask(DType::Bool, false, false, false)}},
      {"Sq2_Sk50_D16_bias", 1, 2, 1, 2, 50, 16,
       {tensorMask(DType::F32, false, true, false)}},
      {"Sq4_Sk3_D64_causalBR_fullyMasked", 1, 2, 1, 4, 3, 64, {causalBR}},
      {"Sq1_Sk1000_D576_MLA_causalBR", 1, 2, 1, 1, 1000, 576, {causalBR}},
  };
}

INSTANTIATE_TEST_SUITE_P(
    Numerics, StaticDecode, ::testing::ValuesIn(decodeCases()),
    [](const ::testing::TestParamInfo<DecodeCase> &info) {
      return info.param.name;
    });

//===----------------------------------------------------------------------===//
// Split-KV (flash-decoding): partial states over key ranges merged through
// their log-sum-exp, including splits that see no key at all.
//===----------------------------------------------------------------------===//

class SplitKV : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(SplitKV, MatchesReference) {
  const DecodeCase &c = GetParam();
  AttentionSpec spec = dynamicSpec(c.qHeads, c.kvHeads, c.headDim, c.headDim,
                                   c.masks);
  spec.batch = c.batch;
  spec.qLen = c.qLen;
  spec.scoreMod = c.scoreMod;
  spec.maskMod = c.maskMod;
  // Static key length for even cases, dynamic for odd ones.
  if (c.kvLen % 2 == 0)
    spec.kvLen = c.kvLen;
  for (int64_t splits : {2, 3, 7}) {
    SCOPED_TRACE("splits " + std::to_string(splits));
    CompileOptions options;
    options.kvSplits = splits;
    ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec, Target::CPU, options));
    EXPECT_EQ(kernel->info().kvSplits, splits);
    Problem p(spec, c.batch, c.qLen, c.kvLen);
    p.randomize(seedFor(c.qLen, c.kvLen, c.headDim), static_cast<int>(splits));
    userReferences(p);
    SCOPED_TRACE(shapeTrace(p));
    ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
    EXPECT_TRUE(matchesReference(p, p.reference()));
  }
}

std::vector<DecodeCase> splitCases() {
  const MaskSpec causalBR = causalMask(true);
  return {
      {"Sq1_Sk1000_D64_MQA", 1, 4, 1, 1, 1000, 64, {}},
      {"Sq1_Sk999_D32_causalBR", 2, 2, 2, 1, 999, 32, {causalBR}},
      {"Sq4_Sk300_D64_windowBR",
       1,
       2,
       1,
       4,
       300,
       64,
       {windowMask(40, 0, true)}},
      {"Sq1_Sk700_D16_keyPadding", 3, 2, 1, 1, 700, 16, {keyPaddingMask()}},
      {"Sq16_Sk513_D64_tensorBool",
       1,
       2,
       2,
       16,
       513,
       64,
       {tensorMask(DType::Bool, false, true, false)}},
      {"Sq2_Sk64_D128_causalBR_lse", 1, 8, 2, 2, 64, 128, {causalBR}},
      // Padded query tiles (q_len not a multiple of the 16-row tile) with
      // split-KV: the partial states of the padding rows once came from an
      // uninitialised workspace (issue: ~1e28 / NaN outputs).
      {"Sq5_Sk1100_D16_paddedTile", 1, 2, 2, 5, 1100, 16, {}},
      {"Sq7_Sk1024_D64_paddedTile_causalBR", 1, 4, 2, 7, 1024, 64, {causalBR}},
      {"Sq15_Sk1101_D32_paddedTile_keyPadding",
       2,
       2,
       1,
       15,
       1101,
       32,
       {keyPaddingMask()}},
      {"Sq9_Sk1500_D80_paddedTile_windowBR",
       1,
       2,
       2,
       9,
       1500,
       80,
       {windowMask(300, 0, true)}},
      // score_mod / mask_mod regions see each split's keys at their
      // absolute positions and the query rows unshifted (bottom-right
      // masks fold a shift into q_offset that the regions take back out;
      // with a dynamic kv_len the shift is a capture).
      {"Sq1_Sk1000_D64_alibi_causalBR",
       1,
       4,
       2,
       1,
       1000,
       64,
       {causalBR},
       alibi()},
      {"Sq3_Sk999_D32_t5_causalBR",
       2,
       2,
       1,
       3,
       999,
       32,
       {causalBR},
       t5Bias(32, 128, true)},
      {"Sq2_Sk700_D16_document_keyPadding",
       2,
       2,
       2,
       2,
       700,
       16,
       {keyPaddingMask()},
       std::nullopt,
       documentMask()},
      {"Sq5_Sk1101_D32_softcap_longformer_paddedTile",
       1,
       2,
       1,
       5,
       1101,
       32,
       {},
       softcap(3.0),
       longformer(64)},
      {"Sq3_Sk901_D32_mlirBoth_causalBR",
       2,
       2,
       1,
       3,
       901,
       32,
       {causalBR},
       relScore(2),
       idsMask()},
  };
}

INSTANTIATE_TEST_SUITE_P(
    Numerics, SplitKV, ::testing::ValuesIn(splitCases()),
    [](const ::testing::TestParamInfo<DecodeCase> &info) {
      return info.param.name;
    });

TEST(SplitKV, ChosenForPaddedQueryTile) {
  // The reproducer of the padded-tile defect: q [1, 2, 5, 16] against 1100
  // keys takes the compiler's split-KV choice, with a 16-row query tile.
  AttentionSpec spec = dynamicSpec(2, 2, 16, 16);
  spec.batch = 1;
  spec.qLen = 5;
  spec.kvLen = 1100;
  for (int64_t kvLen : {1100, 2048}) {
    spec.kvLen = kvLen;
    ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
    EXPECT_GT(kernel->info().kvSplits, 1);
    ASSERT_TRUE(kernel->info().tileSizes.has_value());
    EXPECT_EQ(kernel->info().tileSizes->query, 16);
    Problem p(spec, 1, 5, kvLen);
    p.randomize(11);
    SCOPED_TRACE(shapeTrace(p));
    ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
    EXPECT_TRUE(matchesReference(p, p.reference()));
  }
}

TEST(SplitKV, ChosenForFewWorkgroups) {
  // One query row, one key/value head: a single workgroup, so the compiler
  // splits the keys to use every thread.
  AttentionSpec spec = dynamicSpec(1, 1, 64, 64);
  spec.batch = 1;
  spec.qLen = 1;
  spec.kvLen = 8192;
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  EXPECT_GT(kernel->info().kvSplits, 1);
  Problem p(spec, 1, 1, 8192);
  p.randomize(5);
  ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
  EXPECT_TRUE(matchesReference(p, p.reference()));
}

//===----------------------------------------------------------------------===//
// Rows without a kept key: output exactly 0, LSE -inf, no NaN
//===----------------------------------------------------------------------===//

/// Runs `p` and checks the rows whose reference LSE is -inf, expecting
/// `expectMasked` of them.
void checkFullyMasked(Kernel &kernel, Problem &p, int64_t expectMasked) {
  ASSERT_NO_LLVM_ERROR(kernel.run(p.args()));
  reference::Outputs ref = p.reference();
  int64_t refMasked = 0;
  for (double x : ref.lse)
    refMasked += std::isinf(x);
  ASSERT_EQ(refMasked, expectMasked) << "test setup: reference rows";
  EXPECT_EQ(countLseNegInf(p), expectMasked);
  EXPECT_FALSE(anyNaN(p.output()));
  EXPECT_FALSE(anyNaN(p.lseValues()));
  std::vector<double> out = p.output(), lse = p.lseValues();
  const int64_t dv = p.spec.vHeadDim;
  for (size_t row = 0; row < ref.lse.size(); ++row) {
    if (!std::isinf(ref.lse[row]))
      continue;
    EXPECT_TRUE(std::isinf(lse[row]) && lse[row] < 0)
        << "lse row " << row << " = " << lse[row];
    for (int64_t d = 0; d < dv; ++d)
      ASSERT_EQ(out[row * dv + d], 0.0) << "output row " << row << " d " << d;
  }
  EXPECT_TRUE(matchesReference(p, ref));
}

TEST(FullyMasked, CausalBottomRightMoreQueriesThanKeys) {
  AttentionSpec spec = dynamicSpec(2, 1, 32, 32, {causalMask(true)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  // Sq = 10 > Sk = 4: shift = -6, rows 0..5 see no key.
  Problem p(spec, 2, 10, 4);
  p.randomize(11);
  checkFullyMasked(*kernel, p, /*rows=*/2 * 2 * 6);
  // Sq = 1000 > Sk = 17: 983 leading rows per head are empty.
  Problem p2(spec, 1, 1000, 17);
  p2.randomize(12);
  checkFullyMasked(*kernel, p2, 2 * 983);
}

TEST(FullyMasked, KeyPaddingZeroLength) {
  AttentionSpec spec = dynamicSpec(2, 2, 16, 16, {keyPaddingMask()});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  Problem p(spec, 3, 17, 64);
  p.randomize(13);
  p.in.kvLens = {0, 7, 0};
  p.materialize();
  checkFullyMasked(*kernel, p, 2 * 2 * 17);
}

TEST(FullyMasked, TensorMaskAllFalseRow) {
  AttentionSpec spec =
      dynamicSpec(2, 2, 16, 16, {tensorMask(DType::Bool, false, false, false)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  Problem p(spec, 1, 5, 70);
  p.randomize(14);
  // Every key kept, except rows (h=0, i=1) and (h=1, i=4): none kept.
  std::fill(p.in.mask.begin(), p.in.mask.end(), 1.0);
  for (int64_t j = 0; j < 70; ++j) {
    p.in.mask[(0 * 5 + 1) * 70 + j] = 0.0;
    p.in.mask[(1 * 5 + 4) * 70 + j] = 0.0;
  }
  p.materialize();
  checkFullyMasked(*kernel, p, 2);
}

TEST(FullyMasked, TensorBiasAllNegInfRow) {
  AttentionSpec spec =
      dynamicSpec(1, 1, 16, 16, {tensorMask(DType::F32, false, false, false)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  Problem p(spec, 1, 3, 40);
  p.randomize(15);
  for (double &x : p.in.mask)
    x = 0.25;
  for (int64_t j = 0; j < 40; ++j)
    p.in.mask[1 * 40 + j] = -std::numeric_limits<double>::infinity();
  p.materialize();
  checkFullyMasked(*kernel, p, 1);
}

//===----------------------------------------------------------------------===//
// Logits near +-1e4
//===----------------------------------------------------------------------===//

class LargeLogits : public ::testing::TestWithParam<bool> {};

TEST_P(LargeLogits, ExactScoresMatchReference) {
  std::vector<MaskSpec> masks;
  if (GetParam())
    masks.push_back(causalMask(false));
  AttentionSpec spec = dynamicSpec(2, 1, 16, 16, masks);
  spec.scale = 1.0;
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  for (auto [sq, sk] : Shapes{{17, 64}, {64, 1000}, {1, 3}, {113, 113}}) {
    Problem p(spec, 1, sq, sk);
    p.randomize(seedFor(sq, sk, 99));
    std::mt19937 rng(seedFor(sq, sk, 100));
    std::uniform_int_distribution<int> pick(24, 26);
    std::bernoulli_distribution flip(0.5);
    // Every query row / key row has one sign, so |score| is in
    // [16 * 24^2, 16 * 26^2] = [9216, 10816], exact in f32.
    const int64_t d = spec.headDim;
    for (size_t r = 0; r < p.in.query.size() / d; ++r) {
      double sign = flip(rng) ? -1.0 : 1.0;
      for (int64_t x = 0; x < d; ++x)
        p.in.query[r * d + x] = sign * pick(rng);
    }
    for (size_t r = 0; r < p.in.key.size() / d; ++r) {
      double sign = flip(rng) ? -1.0 : 1.0;
      for (int64_t x = 0; x < d; ++x)
        p.in.key[r * d + x] = sign * pick(rng);
    }
    p.materialize();
    SCOPED_TRACE(shapeTrace(p));
    ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
    reference::Outputs ref = p.reference();
    double maxLse = 0;
    for (double x : ref.lse)
      maxLse = std::max(maxLse, std::fabs(x));
    ASSERT_GT(maxLse, 9000.0) << "test setup: logits are not near 1e4";
    EXPECT_TRUE(allFinite(p.output()));
    EXPECT_TRUE(allFinite(p.lseValues()));
    EXPECT_TRUE(matchesReference(p, ref));
  }
}

INSTANTIATE_TEST_SUITE_P(Numerics, LargeLogits, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "causalTL" : "none";
                         });

//===----------------------------------------------------------------------===//
// scale = 0 (PyTorch's SDPA accepts it): every visible key weighs the same
//===----------------------------------------------------------------------===//

class ZeroScale : public ::testing::TestWithParam<DType> {};

TEST_P(ZeroScale, EqualWeightsOverVisibleKeys) {
  // Decode rows (keys on the lanes), split-KV, padded tiles, causal.
  AttentionSpec spec =
      dynamicSpec(4, 2, 32, 32, {causalMask(true)}, GetParam());
  spec.scale = 0.0;
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  for (auto [sq, sk] : Shapes{{1, 1}, {1, 700}, {3, 3000}, {17, 64}, {70, 130}}) {
    Problem p(spec, 2, sq, sk);
    p.randomize(seedFor(sq, sk, 7));
    SCOPED_TRACE(shapeTrace(p));
    ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
    // bf16: the output is rounded to 8 significant bits (and P to bf16 for
    // P V); f32: the flash path's usual bound.
    EXPECT_TRUE(matchesReference(p, p.reference(),
                                 GetParam() == DType::BF16 ? 8e-3 : 2e-5));
  }
}

INSTANTIATE_TEST_SUITE_P(Numerics, ZeroScale,
                         ::testing::Values(DType::F32, DType::BF16),
                         [](const ::testing::TestParamInfo<DType> &info) {
                           return info.param == DType::F32 ? "f32" : "bf16";
                         });

//===----------------------------------------------------------------------===//
// NaN / Inf in masked keys never reaches the output; in kept keys it does
//===----------------------------------------------------------------------===//

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

/// What a poisoned key/value row holds.
enum class Poison { KeyNaN, ValueNaN, KeyInfValueInf };
const Poison kPoisons[] = {Poison::KeyNaN, Poison::ValueNaN,
                           Poison::KeyInfValueInf};

const char *poisonName(Poison p) {
  switch (p) {
  case Poison::KeyNaN:
    return "NaN in the key rows";
  case Poison::ValueNaN:
    return "NaN in the value rows";
  case Poison::KeyInfValueInf:
    return "+Inf in the key rows, -Inf in the value rows";
  }
  return "";
}

/// Poisons key/value row j of batch b (every kv head); the other tensor of
/// the pair keeps its finite values.
void poison(Problem &p, int64_t b, int64_t j, Poison mode) {
  for (int64_t kvh = 0; kvh < p.spec.kvHeads; ++kvh) {
    if (mode != Poison::ValueNaN)
      for (int64_t d = 0; d < p.spec.headDim; ++d)
        p.in.key[p.keyIndex(b, kvh, j, d)] =
            mode == Poison::KeyNaN ? kNaN : kInf;
    if (mode != Poison::KeyNaN)
      for (int64_t d = 0; d < p.spec.vHeadDim; ++d)
        p.in.value[p.valueIndex(b, kvh, j, d)] =
            mode == Poison::ValueNaN ? kNaN : -kInf;
  }
}

/// For every poison mode: builds the problem with `make`, poisons the
/// (b, j) keys of `keys` (each masked for every query row), runs it and
/// expects a finite result that matches the reference.
void expectNoLeak(Kernel &kernel, const std::function<Problem()> &make,
                  const std::vector<std::pair<int64_t, int64_t>> &keys) {
  ASSERT_FALSE(keys.empty()) << "test setup";
  for (Poison mode : kPoisons) {
    SCOPED_TRACE(poisonName(mode));
    Problem p = make();
    // Setup check: the poisoned keys are hidden from every row.
    for (auto [b, j] : keys)
      for (int64_t h = 0; h < p.spec.qHeads; ++h)
        for (int64_t i = 0; i < p.in.qLen; ++i)
          ASSERT_FALSE(reference::keeps(p.spec, p.in, b, h, i, j))
              << "test setup: key " << j << " is kept by row " << i;
    for (auto [b, j] : keys)
      poison(p, b, j, mode);
    p.materialize();
    ASSERT_NO_LLVM_ERROR(kernel.run(p.args()));
    reference::Outputs ref = p.reference();
    ASSERT_TRUE(allFinite(ref.output)) << "test setup: reference";
    std::vector<double> out = p.output();
    int64_t bad = 0;
    for (double x : out)
      bad += !std::isfinite(x);
    EXPECT_EQ(bad, 0) << "of " << out.size()
                      << " outputs are NaN/Inf: a masked NaN/Inf leaked";
    EXPECT_FALSE(anyNaN(p.lseValues()));
    EXPECT_TRUE(matchesReference(p, ref));
  }
}

std::vector<std::pair<int64_t, int64_t>> keyRange(int64_t b, int64_t from,
                                                  int64_t to) {
  std::vector<std::pair<int64_t, int64_t>> keys;
  for (int64_t j = from; j < to; ++j)
    keys.push_back({b, j});
  return keys;
}

TEST(MaskedNaN, BeyondKvLens) {
  AttentionSpec spec = dynamicSpec(2, 1, 32, 32, {keyPaddingMask()});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  const std::vector<int64_t> lens = {5, 64, 99};
  std::vector<std::pair<int64_t, int64_t>> keys;
  for (int64_t b = 0; b < 3; ++b)
    for (auto key : keyRange(b, lens[b], 100))
      keys.push_back(key);
  expectNoLeak(
      *kernel,
      [&] {
        Problem p(spec, 3, 17, 100);
        p.randomize(21);
        p.in.kvLens = lens;
        return p;
      },
      keys);
}

/// Top-left causal, Sk > Sq: keys j >= Sq are right of every row's range.
void causalRightOfEveryRow(const AttentionSpec &spec, int64_t sq, int64_t sk) {
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  expectNoLeak(
      *kernel,
      [&] {
        Problem p(spec, 1, sq, sk);
        p.randomize(22);
        return p;
      },
      keyRange(0, sq, sk));
}

TEST(MaskedNaN, RightOfCausalRange) {
  // Sq = 17 is not a multiple of the query tile.
  causalRightOfEveryRow(dynamicSpec(2, 2, 32, 32, {causalMask(false)}), 17,
                        113);
}

TEST(MaskedNaN, RightOfCausalRangeStaticSizes) {
  AttentionSpec spec = dynamicSpec(2, 2, 32, 32, {causalMask(false)});
  spec.batch = 1;
  spec.qLen = 17;
  spec.kvLen = 113;
  causalRightOfEveryRow(spec, 17, 113);
}

TEST(MaskedNaN, RightOfCausalRangeWholeQueryTiles) {
  // Sq = 64: whole query tiles (the default tile is 64 rows).
  causalRightOfEveryRow(dynamicSpec(2, 2, 32, 32, {causalMask(false)}), 64,
                        200);
}

TEST(MaskedNaN, OutsideEveryWindowTopLeft) {
  // left 5, right 7: rows 0..19 see keys <= 26 only.
  AttentionSpec spec = dynamicSpec(1, 1, 16, 16, {windowMask(5, 7, false)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  expectNoLeak(
      *kernel,
      [&] {
        Problem p(spec, 1, 20, 100);
        p.randomize(23);
        return p;
      },
      keyRange(0, 27, 100));
}

TEST(MaskedNaN, OutsideEveryWindowBottomRight) {
  // left 4, right 0, Sq 3, Sk 64: rows see keys 57..63 only.
  AttentionSpec spec = dynamicSpec(1, 1, 16, 16, {windowMask(4, 0, true)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  expectNoLeak(
      *kernel,
      [&] {
        Problem p(spec, 1, 3, 64);
        p.randomize(24);
        return p;
      },
      keyRange(0, 0, 57));
}

TEST(MaskedNaN, AllFalseTensorMaskColumns) {
  AttentionSpec spec =
      dynamicSpec(2, 1, 16, 16, {tensorMask(DType::Bool, false, true, false)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  std::vector<std::pair<int64_t, int64_t>> keys;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t j = 2; j < 50; j += 5)
      keys.push_back({b, j});
  expectNoLeak(
      *kernel,
      [&] {
        Problem p(spec, 2, 9, 50);
        p.randomize(25);
        for (int64_t b = 0; b < 2; ++b)
          for (int64_t i = 0; i < 9; ++i)
            for (int64_t j = 0; j < 50; ++j)
              p.in.mask[(b * 9 + i) * 50 + j] = j % 5 == 2 ? 0.0 : 1.0;
        return p;
      },
      keys);
}

/// Causal top-left, Sq = Sk = 9: key 4 is kept by rows 4..8 and masked for
/// rows 0..3. `mode` poisons key 4 only.
Problem causalKeyFour(const AttentionSpec &spec, Poison mode) {
  Problem p(spec, 1, 9, 9);
  p.randomize(26);
  poison(p, 0, 4, mode);
  p.materialize();
  return p;
}

TEST(KeptNaN, PropagatesToRowsThatKeepIt) {
  AttentionSpec spec = dynamicSpec(1, 1, 16, 16, {causalMask(false)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  for (Poison mode : {Poison::KeyNaN, Poison::ValueNaN}) {
    SCOPED_TRACE(poisonName(mode));
    Problem p = causalKeyFour(spec, mode);
    ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
    std::vector<double> out = p.output(), lse = p.lseValues();
    for (int64_t i = 4; i < 9; ++i) {
      EXPECT_TRUE(std::isnan(out[i * 16 + 3])) << "row " << i;
      if (mode == Poison::KeyNaN)
        EXPECT_TRUE(std::isnan(lse[i])) << "lse row " << i;
    }
    // Rows 0..3 do not keep key 4: a NaN key must not reach them.
    if (mode == Poison::KeyNaN)
      EXPECT_TRUE(matchesReference(p, p.reference()));
  }
}

TEST(MaskedNaN, ValueOfKeyMaskedForSomeRows) {
  // docs/design.md section 4: NaN in masked-out values does not reach the
  // output. Key 4 is masked for rows 0..3 (but kept by rows 4..8).
  AttentionSpec spec = dynamicSpec(1, 1, 16, 16, {causalMask(false)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  Problem p = causalKeyFour(spec, Poison::ValueNaN);
  ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
  std::vector<double> out = p.output();
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t d = 0; d < 16; ++d)
      ASSERT_TRUE(std::isfinite(out[i * 16 + d]))
          << "row " << i << " d " << d << " = " << out[i * 16 + d];
  EXPECT_TRUE(matchesReference(p, p.reference()));
}

TEST(KeptNaN, UnmaskedNaNKeyPoisonsEveryRow) {
  AttentionSpec spec = dynamicSpec(2, 1, 32, 32);
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  Problem p(spec, 1, 17, 100);
  p.randomize(27);
  p.in.key[p.keyIndex(0, 0, 70, 5)] = kNaN;
  p.materialize();
  ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
  for (double x : p.output())
    ASSERT_TRUE(std::isnan(x));
  for (double x : p.lseValues())
    ASSERT_TRUE(std::isnan(x));
}

//===----------------------------------------------------------------------===//
// Tile-size independence
//===----------------------------------------------------------------------===//

class TileSizes
    : public ::testing::TestWithParam<std::array<int64_t, 4>> {};

TEST_P(TileSizes, MatchReference) {
  // Hq = 4, Hkv = 2: head tiles of 1, 2 (one GQA group) and 4 (two groups).
  // The batch tile stays 1: a dynamic batch needs it.
  AttentionSpec spec = dynamicSpec(4, 2, 32, 32, {causalMask(true)});
  CompileOptions options;
  auto [b, h, q, k] = GetParam();
  options.tileSizes = mlir::attn::AttentionTileSizes{b, h, q, k};
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec, Target::CPU, options));
  EXPECT_EQ(kernel->info().tileSizes, options.tileSizes);
  for (auto [sq, sk] :
       Shapes{{1, 1}, {17, 113}, {113, 17}, {127, 257}, {64, 64}, {3, 1000}}) {
    Problem p(spec, 3, sq, sk);
    p.randomize(seedFor(sq, sk, 5));
    SCOPED_TRACE(shapeTrace(p));
    ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
    EXPECT_TRUE(matchesReference(p, p.reference()));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Numerics, TileSizes,
    ::testing::Values(std::array<int64_t, 4>{1, 1, 16, 16},
                      std::array<int64_t, 4>{1, 1, 32, 64},
                      std::array<int64_t, 4>{1, 2, 64, 32},
                      std::array<int64_t, 4>{1, 4, 8, 128}),
    [](const ::testing::TestParamInfo<std::array<int64_t, 4>> &info) {
      std::string s = "tiles";
      for (int64_t t : info.param)
        s += "_" + std::to_string(t);
      return s;
    });

//===----------------------------------------------------------------------===//
// Bitwise repeatability
//===----------------------------------------------------------------------===//

TEST(Repeatability, RerunIsBitwiseIdentical) {
  AttentionSpec spec = dynamicSpec(2, 1, 64, 64, {causalMask(true)});
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec));
  Problem p(spec, 2, 257, 1000);
  p.randomize(31);
  ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
  std::vector<char> out1 = p.out.bytes, lse1 = p.lse.bytes;
  p.materialize(); // resets the outputs to NaN
  ASSERT_NE(p.out.bytes, out1);
  ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
  EXPECT_TRUE(p.out.bytes == out1);
  EXPECT_TRUE(p.lse.bytes == lse1);
  EXPECT_TRUE(matchesReference(p, p.reference()));
}

TEST(Repeatability, OneAndTwoThreadsAreBitwiseIdentical) {
  AttentionSpec spec = dynamicSpec(2, 2, 32, 32, {causalMask(false)});
  RuntimeOptions one, two;
  one.numThreads = 1;
  two.numThreads = 2;
  Runtime rt1(one), rt2(two);
  ASSERT_EQ(rt1.numThreads(), 1u);
  ASSERT_EQ(rt2.numThreads(), 2u);
  ASSERT_EXPECTED(k1, rt1.getKernel(spec));
  ASSERT_EXPECTED(k2, rt2.getKernel(spec));
  Problem p(spec, 2, 257, 300);
  p.randomize(32);
  ASSERT_NO_LLVM_ERROR(k1->run(p.args()));
  std::vector<char> out1 = p.out.bytes, lse1 = p.lse.bytes;
  EXPECT_TRUE(matchesReference(p, p.reference()));
  p.materialize();
  ASSERT_NO_LLVM_ERROR(k2->run(p.args()));
  EXPECT_TRUE(p.out.bytes == out1);
  EXPECT_TRUE(p.lse.bytes == lse1);
}

//===----------------------------------------------------------------------===//
// f16 / bf16: within 2x the error of the same-precision unfused reference
//===----------------------------------------------------------------------===//

struct HalfCase {
  const char *name;
  DType dtype;
  int64_t headDim;
  std::vector<MaskSpec> masks;
  std::optional<ScoreModSpec> scoreMod = std::nullopt;
  std::optional<MaskModSpec> maskMod = std::nullopt;
};

void PrintTo(const HalfCase &c, std::ostream *os) { *os << c.name; }

/// Each case on each CPU target level numericsCPUTargets names for its
/// element type.
class HalfPrecision
    : public ::testing::TestWithParam<std::tuple<HalfCase, std::string>> {};

/// On hosts with AMX, bf16 tiles of whole 16-row / 32-key blocks run on the
/// tile unit (P rounded to bf16, as the same-precision reference does); the
/// others, and f16, on the vector code. With kv_lens, the keys past each
/// length hold NaN in both key and value rows: a tile product must never
/// see them (0 * NaN = NaN).
TEST_P(HalfPrecision, WithinTwiceSamePrecisionError) {
  const HalfCase c = std::get<0>(GetParam());
  const std::string &level = std::get<1>(GetParam());
  SKIP_UNLESS_CPU_TARGET(level);
  CompileOptions options;
  options.cpuTarget = level;
  AttentionSpec spec = dynamicSpec(2, 1, c.headDim, c.headDim, c.masks, c.dtype);
  spec.scoreMod = c.scoreMod;
  spec.maskMod = c.maskMod;
  bool padded = llvm::any_of(c.masks, [](const MaskSpec &m) {
    return m.kind == MaskSpec::Kind::KeyPadding;
  });
  ASSERT_EXPECTED(kernel, sharedRuntime().getKernel(spec, Target::CPU, options));
  double largestSameErr = 0;
  for (auto [sq, sk] : Shapes{{1, 257}, {64, 64}, {113, 1000}, {257, 127},
                              {17, 3}, {128, 96}}) {
    Problem p(spec, 1, sq, sk);
    p.randomize(seedFor(sq, sk, 7));
    userReferences(p);
    if (padded) {
      p.in.kvLens = {std::max<int64_t>(1, sk - 37)};
      for (int64_t j = p.in.kvLens[0]; j < sk; ++j) {
        poison(p, 0, j, Poison::KeyNaN);
        poison(p, 0, j, Poison::ValueNaN);
      }
      p.materialize();
    }
    SCOPED_TRACE(shapeTrace(p));
    ASSERT_NO_LLVM_ERROR(kernel->run(p.args()));
    reference::Outputs ref = p.reference();
    std::vector<double> same = reference::samePrecisionAttention(spec, p.in);
    std::vector<double> out = p.output();
    ASSERT_FALSE(anyNaN(out)) << "a NaN reached the output";
    double kernelErr = maxAbsError(out, ref.output);
    double sameErr = maxAbsError(same, ref.output);
    largestSameErr = std::max(largestSameErr, sameErr);
    EXPECT_LE(kernelErr, 2.0 * sameErr + 1e-6)
        << "kernel error " << kernelErr << ", same-precision error "
        << sameErr;
    // The log-sum-exp is f32, computed from exact inputs: the f32
    // tolerance applies (-inf rows match exactly).
    std::vector<double> lse = p.lseValues();
    double maxLse = 0;
    for (double x : ref.lse)
      if (std::isfinite(x))
        maxLse = std::max(maxLse, std::fabs(x));
    for (size_t r = 0; r < lse.size(); ++r) {
      if (std::isinf(ref.lse[r])) {
        EXPECT_EQ(lse[r], ref.lse[r]) << "lse row " << r;
        continue;
      }
      EXPECT_NEAR(lse[r], ref.lse[r], 2e-5 * (1 + maxLse)) << "lse row " << r;
    }
  }
  // Rows with one visible key are exact in any precision; not all of them.
  EXPECT_GT(largestSameErr, 0.0) << "test setup: the same-precision "
                                    "reference should differ from f64";
}

std::vector<std::tuple<HalfCase, std::string>> halfPrecisionCases() {
  std::vector<std::tuple<HalfCase, std::string>> cases;
  for (const HalfCase &c :
       {HalfCase{"f16_none", DType::F16, 64, {}},
        HalfCase{"f16_causalBR", DType::F16, 64, {causalMask(true)}},
        HalfCase{"bf16_none", DType::BF16, 64, {}},
        HalfCase{"bf16_causalBR", DType::BF16, 64, {causalMask(true)}},
        HalfCase{"bf16_d128_causalTL", DType::BF16, 128, {causalMask(false)}},
        HalfCase{
            "bf16_d128_windowBR", DType::BF16, 128, {windowMask(45, 3, true)}},
        HalfCase{"bf16_d64_keyPadding", DType::BF16, 64, {keyPaddingMask()}},
        HalfCase{"bf16_d128_causalTL_keyPadding",
                 DType::BF16,
                 128,
                 {causalMask(false), keyPaddingMask()}},
        HalfCase{"bf16_d80_none", DType::BF16, 80, {}},
        HalfCase{"bf16_alibi_causalBR",
                 DType::BF16,
                 64,
                 {causalMask(true)},
                 alibi()},
        // clang-format off
        HalfCase{"bf16_softcap_keyPadding", DType::BF16, 128,
                 {keyPaddingMask()}, softcap(3.0)},
        HalfCase{"f16_softcap_none", DType::F16, 64, {}, softcap(3.0)},
        HalfCase{"bf16_document_causalBR", DType::BF16, 64, {causalMask(true)},
                 std::nullopt, documentMask()},
        HalfCase{"f16_prefixLM", DType::F16, 64, {}, std::nullopt, prefixLM()},
        HalfCase{"bf16_longformer", DType::BF16, 128, {}, std::nullopt,
                 longformer(16)},
        HalfCase{"f16_strided", DType::F16, 64, {}, std::nullopt, strided(9)},
        HalfCase{"bf16_t5", DType::BF16, 64, {causalMask(true)},
                 t5Bias(32, 128, true)},
        HalfCase{"bf16_mlirBoth_causalBR", DType::BF16, 64, {causalMask(true)},
                 relScore(2), idsMask()},
        HalfCase{"f16_mlirScore", DType::F16, 128, {}, relScore(2)}})
    // clang-format on
    for (const std::string &level : numericsCPUTargets(c.dtype))
      cases.push_back({c, level});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    Numerics, HalfPrecision, ::testing::ValuesIn(halfPrecisionCases()),
    [](const ::testing::TestParamInfo<std::tuple<HalfCase, std::string>>
           &info) {
      return std::string(std::get<0>(info.param).name) + "_" +
             cpuTargetTestName(std::get<1>(info.param));
    });

} // namespace
