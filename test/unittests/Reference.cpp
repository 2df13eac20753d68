//===- Reference.cpp - f64 reference attention for the unit tests ---------===//

#include "Reference.h"

#include "attn/Runtime/Float16.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

using namespace attn;
using namespace attn::reference;

static const double kInf = std::numeric_limits<double>::infinity();

std::array<int64_t, 4> reference::maskShape(const AttentionSpec &spec,
                                            int64_t batch, int64_t qLen,
                                            int64_t kvLen) {
  const MaskSpec *m = spec.findMask(MaskSpec::Kind::Tensor);
  if (!m)
    return {0, 0, 0, 0};
  return {m->batchBroadcast ? 1 : batch, m->headBroadcast ? 1 : spec.qHeads,
          m->queryBroadcast ? 1 : qLen, kvLen};
}

int64_t reference::queryElements(const AttentionSpec &spec, const Inputs &in) {
  return in.batch * spec.qHeads * in.qLen * spec.headDim;
}
int64_t reference::keyElements(const AttentionSpec &spec, const Inputs &in) {
  return in.batch * spec.kvHeads * in.kvLen * spec.headDim;
}
int64_t reference::valueElements(const AttentionSpec &spec, const Inputs &in) {
  return in.batch * spec.kvHeads * in.kvLen * spec.vHeadDim;
}
int64_t reference::outputElements(const AttentionSpec &spec,
                                  const Inputs &in) {
  return in.batch * spec.qHeads * in.qLen * spec.vHeadDim;
}
int64_t reference::lseElements(const AttentionSpec &spec, const Inputs &in) {
  return in.batch * spec.qHeads * in.qLen;
}
int64_t reference::maskElements(const AttentionSpec &spec, const Inputs &in) {
  auto s = maskShape(spec, in.batch, in.qLen, in.kvLen);
  return s[0] * s[1] * s[2] * s[3];
}

/// The tensor-mask entry of (b, h, i, j); requires a tensor mask.
static double maskValue(const AttentionSpec &spec, const Inputs &in,
                        const MaskSpec &m, int64_t b, int64_t h, int64_t i,
                        int64_t j) {
  auto shape = maskShape(spec, in.batch, in.qLen, in.kvLen);
  int64_t mb = m.batchBroadcast ? 0 : b;
  int64_t mh = m.headBroadcast ? 0 : h;
  int64_t mi = m.queryBroadcast ? 0 : i;
  int64_t idx = ((mb * shape[1] + mh) * shape[2] + mi) * shape[3] + j;
  assert(idx >= 0 && idx < static_cast<int64_t>(in.mask.size()));
  return in.mask[idx];
}

bool reference::keeps(const AttentionSpec &spec, const Inputs &in, int64_t b,
                      int64_t h, int64_t i, int64_t j) {
  for (const MaskSpec &m : spec.masks) {
    int64_t shift = m.bottomRight ? in.kvLen - in.qLen : 0;
    switch (m.kind) {
    case MaskSpec::Kind::Causal:
      if (j > i + shift)
        return false;
      break;
    case MaskSpec::Kind::SlidingWindow:
      if (j < i + shift - m.left || j > i + shift + m.right)
        return false;
      break;
    case MaskSpec::Kind::Tensor: {
      double v = maskValue(spec, in, m, b, h, i, j);
      if (m.dtype == DType::Bool ? v == 0.0 : v == -kInf)
        return false;
      break;
    }
    case MaskSpec::Kind::KeyPadding: {
      int64_t len = std::clamp<int64_t>(in.kvLens.at(b), 0, in.kvLen);
      if (j >= len)
        return false;
      break;
    }
    }
  }
  if (spec.maskMod) {
    switch (spec.maskMod->kind) {
    case MaskModSpec::Kind::Document:
      return in.qDocumentIds.at(b * in.qLen + i) ==
             in.kvDocumentIds.at(b * in.kvLen + j);
    case MaskModSpec::Kind::PrefixLM:
      return j <= i || j < in.prefixLens.at(b);
    case MaskModSpec::Kind::DilatedSlidingWindow: {
      const MaskModSpec &m = *spec.maskMod;
      return std::abs(i - j) <= m.window * m.dilation &&
             (i - j) % m.dilation == 0;
    }
    case MaskModSpec::Kind::Strided: {
      int64_t stride = spec.maskMod->stride;
      return j <= i && (i - j < stride || (i - j) % stride == 0);
    }
    case MaskModSpec::Kind::Fixed: {
      int64_t stride = spec.maskMod->stride;
      return j <= i && (j / stride == i / stride ||
                        j % stride >= stride - spec.maskMod->summary);
    }
    case MaskModSpec::Kind::Longformer:
      return std::abs(i - j) <= spec.maskMod->window ||
             in.qGlobal.at(b * in.qLen + i) != 0 ||
             in.kvGlobal.at(b * in.kvLen + j) != 0;
    case MaskModSpec::Kind::Mlir:
      return in.userMaskMod(in, b, h, i, j);
    }
  }
  return true;
}

double reference::bias(const AttentionSpec &spec, const Inputs &in, int64_t b,
                       int64_t h, int64_t i, int64_t j) {
  const MaskSpec *m = spec.findMask(MaskSpec::Kind::Tensor);
  if (!m || m->dtype == DType::Bool)
    return 0.0;
  return maskValue(spec, in, *m, b, h, i, j);
}

/// ALiBi's slopes for n heads as the paper's code lists them (Press et al.
/// 2022, get_slopes): a power of two n gives start^(i + 1) with
/// start = 2^(-8 / n); otherwise the slopes of the power of two below n,
/// then every other slope of twice that.
static std::vector<double> alibiSlopes(int64_t n) {
  auto powerOf2 = [](int64_t p) {
    std::vector<double> r;
    double start = std::pow(2.0, -std::pow(2.0, -(std::log2(p) - 3)));
    for (int64_t i = 0; i < p; ++i)
      r.push_back(start * std::pow(start, static_cast<double>(i)));
    return r;
  };
  int64_t closest = 1;
  while (closest * 2 <= n)
    closest *= 2;
  if (closest == n)
    return powerOf2(n);
  std::vector<double> r = powerOf2(closest);
  std::vector<double> twice = alibiSlopes(2 * closest);
  for (int64_t k = 0; static_cast<int64_t>(r.size()) < n; k += 2)
    r.push_back(twice[k]);
  return r;
}

/// T5Attention._relative_position_bucket (Hugging Face transformers) of
/// one relative position, its float32 arithmetic as torch does it.
static int64_t t5Bucket(int64_t relativePosition, bool bidirectional,
                        int64_t numBuckets, int64_t maxDistance) {
  int64_t relativeBuckets = 0;
  if (bidirectional) {
    numBuckets /= 2;
    relativeBuckets += relativePosition > 0 ? numBuckets : 0;
    relativePosition = std::abs(relativePosition);
  } else {
    relativePosition = -std::min<int64_t>(relativePosition, 0);
  }
  int64_t maxExact = numBuckets / 2;
  if (relativePosition < maxExact)
    return relativeBuckets + relativePosition;
  float large = std::log(static_cast<float>(relativePosition) /
                         static_cast<float>(maxExact)) /
                static_cast<float>(std::log(static_cast<double>(maxDistance) /
                                            static_cast<double>(maxExact))) *
                static_cast<float>(numBuckets - maxExact);
  return relativeBuckets +
         std::min<int64_t>(maxExact + static_cast<int64_t>(large),
                           numBuckets - 1);
}

double reference::scoreMod(const AttentionSpec &spec, const Inputs &in,
                           int64_t b, int64_t h, int64_t i, int64_t j,
                           double s) {
  if (!spec.scoreMod)
    return s;
  switch (spec.scoreMod->kind) {
  case ScoreModSpec::Kind::Alibi:
  {
    thread_local int64_t heads = 0;
    thread_local std::vector<double> slopes;
    if (heads != spec.qHeads) {
      heads = spec.qHeads;
      slopes = alibiSlopes(heads);
    }
    return s + slopes[h] * static_cast<double>(j - i);
  }
  case ScoreModSpec::Kind::Softcap:
    return spec.scoreMod->cap * std::tanh(s / spec.scoreMod->cap);
  case ScoreModSpec::Kind::T5Bias: {
    const ScoreModSpec &m = *spec.scoreMod;
    int64_t bucket =
        t5Bucket(j - i, m.bidirectional, m.numBuckets, m.maxDistance);
    return s + in.relativeAttentionBias.at(bucket * spec.qHeads + h);
  }
  case ScoreModSpec::Kind::Mlir:
    return in.userScoreMod(in, b, h, i, j, s);
  }
  return s;
}

double reference::roundTo(DType dtype, double x) {
  float f = static_cast<float>(x);
  switch (dtype) {
  case DType::F16:
    return f16ToFloat(floatToF16(f));
  case DType::BF16:
    return bf16ToFloat(floatToBF16(f));
  default:
    return f;
  }
}

namespace {
/// Sizes and addressing shared by both references.
struct Geometry {
  int64_t B, Hq, Hkv, D, Dv, Sq, Sk, group;
  Geometry(const AttentionSpec &spec, const Inputs &in)
      : B(in.batch), Hq(spec.qHeads), Hkv(spec.kvHeads), D(spec.headDim),
        Dv(spec.vHeadDim), Sq(in.qLen), Sk(in.kvLen),
        group(spec.qHeads / spec.kvHeads) {
    assert(static_cast<int64_t>(in.query.size()) == B * Hq * Sq * D);
    assert(static_cast<int64_t>(in.key.size()) == B * Hkv * Sk * D);
    assert(static_cast<int64_t>(in.value.size()) == B * Hkv * Sk * Dv);
  }
  int64_t q(int64_t b, int64_t h, int64_t i) const {
    return ((b * Hq + h) * Sq + i) * D;
  }
  int64_t k(int64_t b, int64_t h, int64_t j) const {
    return ((b * Hkv + h / group) * Sk + j) * D;
  }
  int64_t v(int64_t b, int64_t h, int64_t j) const {
    return ((b * Hkv + h / group) * Sk + j) * Dv;
  }
  int64_t o(int64_t b, int64_t h, int64_t i) const {
    return ((b * Hq + h) * Sq + i) * Dv;
  }
  int64_t row(int64_t b, int64_t h, int64_t i) const {
    return (b * Hq + h) * Sq + i;
  }
};
} // namespace

Outputs reference::attention(const AttentionSpec &spec, const Inputs &in) {
  Geometry g(spec, in);
  const double scale = spec.scaleValue();
  Outputs res;
  res.output.assign(g.B * g.Hq * g.Sq * g.Dv, 0.0);
  res.lse.assign(g.B * g.Hq * g.Sq, -kInf);
  std::vector<int64_t> kept;
  std::vector<double> scores, acc(g.Dv);
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t h = 0; h < g.Hq; ++h)
      for (int64_t i = 0; i < g.Sq; ++i) {
        kept.clear();
        scores.clear();
        const double *q = &in.query[g.q(b, h, i)];
        bool nan = false;
        double m = -kInf;
        for (int64_t j = 0; j < g.Sk; ++j) {
          if (!keeps(spec, in, b, h, i, j))
            continue; // never read a masked key
          const double *k = &in.key[g.k(b, h, j)];
          double dot = 0;
          for (int64_t d = 0; d < g.D; ++d)
            dot += q[d] * k[d];
          double s = scoreMod(spec, in, b, h, i, j,
                              scale * dot + bias(spec, in, b, h, i, j));
          kept.push_back(j);
          scores.push_back(s);
          if (std::isnan(s))
            nan = true;
          else if (s > m)
            m = s;
        }
        if (kept.empty())
          continue; // output 0, lse -inf
        if (nan)
          m = std::numeric_limits<double>::quiet_NaN();
        std::fill(acc.begin(), acc.end(), 0.0);
        double sum = 0;
        for (size_t t = 0; t < kept.size(); ++t) {
          double p = std::exp(scores[t] - m);
          sum += p;
          const double *v = &in.value[g.v(b, h, kept[t])];
          for (int64_t d = 0; d < g.Dv; ++d)
            acc[d] += p * v[d];
        }
        double *o = &res.output[g.o(b, h, i)];
        for (int64_t d = 0; d < g.Dv; ++d)
          o[d] = acc[d] / sum;
        res.lse[g.row(b, h, i)] = m + std::log(sum);
      }
  return res;
}

std::vector<double> reference::samePrecisionAttention(const AttentionSpec &spec,
                                                      const Inputs &in) {
  Geometry g(spec, in);
  const DType dt = spec.dtype;
  const float scale = static_cast<float>(spec.scaleValue());
  auto rnd = [dt](float x) { return static_cast<float>(roundTo(dt, x)); };
  std::vector<double> out(g.B * g.Hq * g.Sq * g.Dv, 0.0);
  std::vector<int64_t> kept;
  std::vector<float> s, acc(g.Dv);
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t h = 0; h < g.Hq; ++h)
      for (int64_t i = 0; i < g.Sq; ++i) {
        kept.clear();
        s.clear();
        const double *q = &in.query[g.q(b, h, i)];
        for (int64_t j = 0; j < g.Sk; ++j) {
          if (!keeps(spec, in, b, h, i, j))
            continue;
          const double *k = &in.key[g.k(b, h, j)];
          float dot = 0;
          for (int64_t d = 0; d < g.D; ++d)
            dot += static_cast<float>(q[d]) * static_cast<float>(k[d]);
          kept.push_back(j);
          s.push_back(rnd(static_cast<float>(scoreMod(
              spec, in, b, h, i, j,
              scale * dot + static_cast<float>(bias(spec, in, b, h, i, j))))));
        }
        if (kept.empty())
          continue;
        float m = -std::numeric_limits<float>::infinity();
        for (float x : s)
          m = std::isnan(x) || std::isnan(m) ? NAN : std::max(m, x);
        float sum = 0;
        for (float &x : s) {
          x = std::exp(x - m);
          sum += x;
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (size_t t = 0; t < kept.size(); ++t) {
          float p = rnd(s[t] / sum);
          const double *v = &in.value[g.v(b, h, kept[t])];
          for (int64_t d = 0; d < g.Dv; ++d)
            acc[d] += p * static_cast<float>(v[d]);
        }
        double *o = &out[g.o(b, h, i)];
        for (int64_t d = 0; d < g.Dv; ++d)
          o[d] = rnd(acc[d]);
      }
  return out;
}
