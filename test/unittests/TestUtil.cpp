//===- TestUtil.cpp - shared helpers of the runtime unit tests ------------===//

#include "TestUtil.h"

#include "attn/Runtime/Float16.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

using namespace attn;
using namespace attn::test;

std::string test::errorText(llvm::Error err) {
  if (!err)
    return "";
  return llvm::toString(std::move(err));
}

//===----------------------------------------------------------------------===//
// Buffer
//===----------------------------------------------------------------------===//

void Buffer::store(DType type, std::vector<double> &values) {
  dtype = type;
  int64_t n = values.size();
  bytes.assign(n * dtypeSize(type), 0);
  for (int64_t i = 0; i < n; ++i) {
    double x = values[i];
    char *dst = bytes.data() + i * dtypeSize(type);
    switch (type) {
    case DType::F32: {
      float f = static_cast<float>(x);
      std::memcpy(dst, &f, 4);
      break;
    }
    case DType::F16: {
      uint16_t h = floatToF16(static_cast<float>(x));
      std::memcpy(dst, &h, 2);
      break;
    }
    case DType::BF16: {
      uint16_t h = floatToBF16(static_cast<float>(x));
      std::memcpy(dst, &h, 2);
      break;
    }
    case DType::Bool:
      *dst = x != 0.0 ? 1 : 0;
      break;
    case DType::I32: {
      int32_t v = static_cast<int32_t>(x);
      std::memcpy(dst, &v, 4);
      break;
    }
    case DType::I64: {
      int64_t v = static_cast<int64_t>(x);
      std::memcpy(dst, &v, 8);
      break;
    }
    }
    values[i] = at(i);
  }
}

void Buffer::allocate(DType type, int64_t n) {
  dtype = type;
  bytes.assign(n * dtypeSize(type), 0x5a);
  for (int64_t i = 0; i < n; ++i) {
    char *dst = bytes.data() + i * dtypeSize(type);
    if (type == DType::F32) {
      float f = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(dst, &f, 4);
    } else if (type == DType::F16 || type == DType::BF16) {
      uint16_t h = type == DType::F16 ? 0x7e00 : 0x7fc0;
      std::memcpy(dst, &h, 2);
    }
  }
}

double Buffer::at(int64_t i) const {
  const char *src = bytes.data() + i * dtypeSize(dtype);
  switch (dtype) {
  case DType::F32: {
    float f;
    std::memcpy(&f, src, 4);
    return f;
  }
  case DType::F16: {
    uint16_t h;
    std::memcpy(&h, src, 2);
    return f16ToFloat(h);
  }
  case DType::BF16: {
    uint16_t h;
    std::memcpy(&h, src, 2);
    return bf16ToFloat(h);
  }
  case DType::Bool:
    return *src ? 1.0 : 0.0;
  case DType::I32: {
    int32_t v;
    std::memcpy(&v, src, 4);
    return v;
  }
  case DType::I64: {
    int64_t v;
    std::memcpy(&v, src, 8);
    return static_cast<double>(v);
  }
  }
  return 0;
}

std::vector<double> Buffer::toDoubles() const {
  std::vector<double> r(size());
  for (int64_t i = 0; i < size(); ++i)
    r[i] = at(i);
  return r;
}

//===----------------------------------------------------------------------===//
// Problem
//===----------------------------------------------------------------------===//

Problem::Problem(AttentionSpec s, int64_t batch, int64_t qLen, int64_t kvLen)
    : spec(std::move(s)) {
  in.batch = batch;
  in.qLen = qLen;
  in.kvLen = kvLen;
  in.query.assign(reference::queryElements(spec, in), 0.0);
  in.key.assign(reference::keyElements(spec, in), 0.0);
  in.value.assign(reference::valueElements(spec, in), 0.0);
  if (spec.findMask(MaskSpec::Kind::Tensor))
    in.mask.assign(reference::maskElements(spec, in), 1.0);
  if (spec.findMask(MaskSpec::Kind::KeyPadding))
    in.kvLens.assign(batch, kvLen);
}

void Problem::randomize(uint32_t seed, int variant) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (auto *vec : {&in.query, &in.key, &in.value})
    for (double &x : *vec)
      x = uniform(rng);
  const double inf = std::numeric_limits<double>::infinity();
  if (const MaskSpec *m = spec.findMask(MaskSpec::Kind::Tensor)) {
    auto shape = reference::maskShape(spec, in.batch, in.qLen, in.kvLen);
    int64_t rows = shape[0] * shape[1] * shape[2], cols = shape[3];
    std::bernoulli_distribution keep(0.75);
    std::normal_distribution<double> normal(0.0, 1.5);
    for (int64_t r = 0; r < rows; ++r) {
      // Some rows hide every key.
      bool allMasked = r % 7 == (3 + variant) % 7;
      for (int64_t j = 0; j < cols; ++j) {
        double &x = in.mask[r * cols + j];
        if (m->dtype == DType::Bool)
          x = !allMasked && keep(rng) ? 1.0 : 0.0;
        else
          x = allMasked || !keep(rng) ? -inf : normal(rng);
      }
    }
  }
  if (spec.findMask(MaskSpec::Kind::KeyPadding)) {
    const int64_t sk = in.kvLen;
    const int64_t choices[] = {0, 1, sk / 2, sk, sk + 5, std::max<int64_t>(sk - 3, 0)};
    for (int64_t b = 0; b < in.batch; ++b)
      in.kvLens[b] = choices[(b + variant) % 6];
  }
  if (spec.maskMod && spec.maskMod->kind == MaskModSpec::Kind::Document) {
    // Each batch is packed with documents of random lengths (1..9 tokens,
    // ids rising from b); the queries are the last q_len tokens of the keys'
    // sequence (bottom-right, as in decoding) where q_len <= kv_len, else
    // documents of their own. With an odd variant the first query's id is
    // one no key has: that row sees no key.
    std::uniform_int_distribution<int64_t> docLen(1, 9);
    auto pack = [&](int64_t len, int64_t first) {
      std::vector<int64_t> ids(len);
      int64_t id = first, left = docLen(rng);
      for (int64_t t = 0; t < len; ++t, --left) {
        if (left == 0) {
          ++id;
          left = docLen(rng);
        }
        ids[t] = id;
      }
      return ids;
    };
    in.qDocumentIds.clear();
    in.kvDocumentIds.clear();
    for (int64_t b = 0; b < in.batch; ++b) {
      std::vector<int64_t> kv = pack(in.kvLen, b);
      std::vector<int64_t> q =
          in.qLen <= in.kvLen
              ? std::vector<int64_t>(kv.end() - in.qLen, kv.end())
              : pack(in.qLen, b);
      if (variant % 2 == 1 && !q.empty())
        q[0] = -1;
      in.qDocumentIds.insert(in.qDocumentIds.end(), q.begin(), q.end());
      in.kvDocumentIds.insert(in.kvDocumentIds.end(), kv.begin(), kv.end());
    }
  }
  if (spec.scoreMod && spec.scoreMod->kind == ScoreModSpec::Kind::T5Bias) {
    // A learned table: N(0, 1) biases, comparable with the scores.
    std::normal_distribution<double> normal(0.0, 1.0);
    in.relativeAttentionBias.resize(spec.scoreMod->numBuckets * spec.qHeads);
    for (double &x : in.relativeAttentionBias)
      x = normal(rng);
  }
  if (spec.maskMod && spec.maskMod->kind == MaskModSpec::Kind::Longformer) {
    // About one token in eleven is global (flags of any nonzero value).
    std::uniform_int_distribution<int> flag(0, 10);
    auto flags = [&](int64_t n) {
      std::vector<int64_t> f(n);
      for (int64_t &x : f)
        x = flag(rng) == 0 ? 1 + variant : 0;
      return f;
    };
    in.qGlobal = flags(in.batch * in.qLen);
    in.kvGlobal = flags(in.batch * in.kvLen);
  }
  // A user function's captures: integers in [0, 4), floats in [-1, 1].
  std::vector<CaptureSpec> userCaptures;
  if (spec.scoreMod && spec.scoreMod->kind == ScoreModSpec::Kind::Mlir)
    userCaptures = spec.scoreMod->func.captures;
  if (spec.maskMod && spec.maskMod->kind == MaskModSpec::Kind::Mlir)
    llvm::append_range(userCaptures, spec.maskMod->func.captures);
  in.userCaptures.clear();
  for (const CaptureSpec &c : userCaptures) {
    std::vector<int64_t> shape = c.shapeAt(in.batch, in.qLen, in.kvLen);
    int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t(1),
                                std::multiplies<int64_t>());
    std::vector<double> &values = in.userCaptures[c.name];
    values.resize(n);
    std::uniform_int_distribution<int> small(0, 3);
    for (double &x : values)
      x = c.dtype == DType::F32 ? uniform(rng) : small(rng);
  }
  if (spec.maskMod && spec.maskMod->kind == MaskModSpec::Kind::PrefixLM) {
    const int64_t sk = in.kvLen;
    const int64_t choices[] = {sk / 2, 0, 1, sk, sk + 5, -3};
    in.prefixLens.assign(in.batch, 0);
    for (int64_t b = 0; b < in.batch; ++b)
      in.prefixLens[b] = choices[(b + variant) % 6];
  }
  materialize();
}

void Problem::materialize() {
  q.store(spec.dtype, in.query);
  k.store(spec.dtype, in.key);
  v.store(spec.dtype, in.value);
  if (const MaskSpec *m = spec.findMask(MaskSpec::Kind::Tensor))
    mask.store(m->dtype, in.mask);
  if (const MaskSpec *m = spec.findMask(MaskSpec::Kind::KeyPadding)) {
    std::vector<double> lens(in.kvLens.begin(), in.kvLens.end());
    kvLens.store(m->dtype, lens);
  }
  captures.clear();
  for (const CaptureSpec &c : spec.captures()) {
    if (auto it = in.userCaptures.find(c.name); it != in.userCaptures.end()) {
      captures.emplace_back().store(c.dtype, it->second);
      continue;
    }
    if (c.name == "relative_attention_bias") {
      captures.emplace_back().store(c.dtype, in.relativeAttentionBias);
      continue;
    }
    std::vector<int64_t> &values = c.name == "q_document_ids" ? in.qDocumentIds
                                   : c.name == "kv_document_ids"
                                       ? in.kvDocumentIds
                                   : c.name == "q_global"  ? in.qGlobal
                                   : c.name == "kv_global" ? in.kvGlobal
                                                           : in.prefixLens;
    std::vector<double> asDoubles(values.begin(), values.end());
    captures.emplace_back().store(c.dtype, asDoubles);
  }
  out.allocate(spec.dtype, reference::outputElements(spec, in));
  if (spec.returnLse)
    lse.allocate(DType::F32, reference::lseElements(spec, in));
}

AttentionArgs Problem::args() {
  const int64_t B = in.batch, Sq = in.qLen, Sk = in.kvLen;
  AttentionArgs a;
  a.query = TensorRef::contiguous(q.bytes.data(), spec.dtype,
                                  {B, spec.qHeads, Sq, spec.headDim});
  a.key = TensorRef::contiguous(k.bytes.data(), spec.dtype,
                                {B, spec.kvHeads, Sk, spec.headDim});
  a.value = TensorRef::contiguous(v.bytes.data(), spec.dtype,
                                  {B, spec.kvHeads, Sk, spec.vHeadDim});
  a.output = TensorRef::contiguous(out.bytes.data(), spec.dtype,
                                   {B, spec.qHeads, Sq, spec.vHeadDim});
  if (spec.findMask(MaskSpec::Kind::Tensor)) {
    auto s = reference::maskShape(spec, B, Sq, Sk);
    a.mask = TensorRef::contiguous(mask.bytes.data(), mask.dtype,
                                   {s[0], s[1], s[2], s[3]});
  }
  if (spec.findMask(MaskSpec::Kind::KeyPadding))
    a.kvLens = TensorRef::contiguous(kvLens.bytes.data(), kvLens.dtype, {B});
  if (spec.returnLse)
    a.lse = TensorRef::contiguous(lse.bytes.data(), DType::F32,
                                  {B, spec.qHeads, Sq});
  for (auto [c, buffer] : llvm::zip(spec.captures(), captures)) {
    std::vector<int64_t> shape = c.shapeAt(B, Sq, Sk);
    a.captures.push_back(TensorRef::contiguous(buffer.bytes.data(), c.dtype,
                                               static_cast<int>(shape.size()),
                                               shape.data()));
  }
  return a;
}

void Problem::poisonKey(int64_t b, int64_t j, double keyValue,
                        double valueValue) {
  for (int64_t kvh = 0; kvh < spec.kvHeads; ++kvh) {
    for (int64_t d = 0; d < spec.headDim; ++d)
      in.key[keyIndex(b, kvh, j, d)] = keyValue;
    for (int64_t d = 0; d < spec.vHeadDim; ++d)
      in.value[valueIndex(b, kvh, j, d)] = valueValue;
  }
}

//===----------------------------------------------------------------------===//
// Comparison
//===----------------------------------------------------------------------===//

namespace {
std::string where(const Problem &p, int64_t idx, int64_t inner) {
  int64_t d = idx % inner;
  int64_t row = idx / inner;
  int64_t i = row % p.in.qLen;
  int64_t h = (row / p.in.qLen) % p.spec.qHeads;
  int64_t b = row / p.in.qLen / p.spec.qHeads;
  std::ostringstream os;
  os << "[b=" << b << ", h=" << h << ", i=" << i;
  if (inner > 1)
    os << ", d=" << d;
  os << "]";
  return os.str();
}

/// Checks one result tensor; `masked(row)` says the reference row has no
/// kept key.
::testing::AssertionResult
compareTensor(const Problem &p, const char *name, const std::vector<double> &got,
              const std::vector<double> &ref, int64_t inner, double rtol,
              const std::vector<double> &refLse, bool isLse) {
  if (got.size() != ref.size())
    return ::testing::AssertionFailure()
           << name << ": " << got.size() << " elements, expected "
           << ref.size();
  double maxRef = 0;
  for (double r : ref)
    if (std::isfinite(r))
      maxRef = std::max(maxRef, std::fabs(r));
  const double tol = rtol * (1.0 + maxRef);
  double maxErr = 0;
  int64_t worst = -1;
  for (size_t idx = 0; idx < got.size(); ++idx) {
    double g = got[idx], r = ref[idx];
    bool rowMasked = std::isinf(refLse[idx / inner]) && refLse[idx / inner] < 0;
    if (std::isnan(r)) {
      if (!std::isnan(g))
        return ::testing::AssertionFailure()
               << name << where(p, idx, inner) << " = " << g
               << ", expected NaN (the reference propagates a NaN)";
      continue;
    }
    if (rowMasked) {
      bool ok = isLse ? (std::isinf(g) && g < 0) : g == 0.0;
      if (!ok)
        return ::testing::AssertionFailure()
               << name << where(p, idx, inner) << " = " << g
               << " on a row without a kept key, expected exactly "
               << (isLse ? "-inf" : "0");
      continue;
    }
    if (std::isnan(g) || std::isinf(g))
      return ::testing::AssertionFailure()
             << name << where(p, idx, inner) << " = " << g << ", expected "
             << r;
    double err = std::fabs(g - r);
    if (err > maxErr) {
      maxErr = err;
      worst = idx;
    }
  }
  if (maxErr > tol)
    return ::testing::AssertionFailure()
           << name << ": max |err| " << maxErr << " > " << tol << " at "
           << where(p, worst, inner) << " (got " << got[worst] << ", expected "
           << ref[worst] << "; max |ref| " << maxRef << ")";
  return ::testing::AssertionSuccess();
}
} // namespace

::testing::AssertionResult test::matchesReference(const Problem &p,
                                                  const reference::Outputs &ref,
                                                  double rtol) {
  auto res = compareTensor(p, "output", p.output(), ref.output,
                           p.spec.vHeadDim, rtol, ref.lse, false);
  if (!res || !p.spec.returnLse)
    return res;
  return compareTensor(p, "lse", p.lseValues(), ref.lse, 1, rtol, ref.lse,
                       true);
}

double test::maxAbsError(const std::vector<double> &a,
                         const std::vector<double> &b) {
  if (a.size() != b.size())
    return std::numeric_limits<double>::infinity();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double e = std::fabs(a[i] - b[i]);
    if (std::isnan(e))
      return std::numeric_limits<double>::infinity();
    m = std::max(m, e);
  }
  return m;
}

//===----------------------------------------------------------------------===//
// Specs
//===----------------------------------------------------------------------===//

Runtime &test::sharedRuntime() {
  // Deliberately never destroyed: destroying a Runtime that holds compiled
  // kernels during exit-time static destruction crashes or hangs
  // intermittently (see RuntimeLifetime.StaticRuntimeDestroyedAtExit).
  static Runtime *runtime = new Runtime();
  return *runtime;
}

AttentionSpec test::dynamicSpec(int64_t qHeads, int64_t kvHeads,
                                int64_t headDim, int64_t vHeadDim,
                                std::vector<MaskSpec> masks, DType dtype,
                                bool returnLse) {
  AttentionSpec spec;
  spec.batch = std::nullopt;
  spec.qLen = std::nullopt;
  spec.kvLen = std::nullopt;
  spec.qHeads = qHeads;
  spec.kvHeads = kvHeads;
  spec.headDim = headDim;
  spec.vHeadDim = vHeadDim;
  spec.masks = std::move(masks);
  spec.dtype = dtype;
  spec.returnLse = returnLse;
  return spec;
}

MaskSpec test::causalMask(bool bottomRight) {
  MaskSpec m;
  m.kind = MaskSpec::Kind::Causal;
  m.bottomRight = bottomRight;
  return m;
}

MaskSpec test::windowMask(int64_t left, int64_t right, bool bottomRight) {
  MaskSpec m;
  m.kind = MaskSpec::Kind::SlidingWindow;
  m.left = left;
  m.right = right;
  m.bottomRight = bottomRight;
  return m;
}

MaskSpec test::tensorMask(DType dtype, bool batchBroadcast, bool headBroadcast,
                          bool queryBroadcast) {
  MaskSpec m;
  m.kind = MaskSpec::Kind::Tensor;
  m.dtype = dtype;
  m.batchBroadcast = batchBroadcast;
  m.headBroadcast = headBroadcast;
  m.queryBroadcast = queryBroadcast;
  return m;
}

MaskSpec test::keyPaddingMask(DType dtype) {
  MaskSpec m;
  m.kind = MaskSpec::Kind::KeyPadding;
  m.dtype = dtype;
  return m;
}

std::vector<std::string> test::numericsCPUTargets(DType dtype) {
  std::vector<std::string> levels;
  for (const mlir::attn::CPUTargetInfo &level :
       mlir::attn::CPUTargetInfo::levels())
    if (dtype == DType::BF16 || (!level.avx512bf16 && !level.amxBf16))
      levels.push_back(level.name.str());
  return levels;
}

std::string test::cpuTargetUnavailable(const std::string &level) {
  AttentionSpec spec;
  CompileOptions options;
  options.cpuTarget = level;
  return errorText(validateCompileOptions(spec, Target::CPU, options));
}

std::string test::cpuTargetTestName(const std::string &level) {
  std::string name = level;
  for (char &c : name)
    if (c == '-')
      c = '_';
  return name;
}
