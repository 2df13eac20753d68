//===- Spec.cpp - attention problem specification -------------------------===//

#include "attn/Runtime/Spec.h"

#include "attn/Support/NestingDepth.h"
#include "dialect/attn/IR/AttnOpDetail.h"
#include "llvm/ADT/bit.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <set>

using namespace attn;
using json = nlohmann::json;

int64_t attn::dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::Bool:
    return 1;
  case DType::I64:
    return 8;
  }
  return 0;
}

std::string attn::formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const char *attn::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::Bool:
    return "bool";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  }
  return "?";
}

std::optional<DType> attn::parseDType(const std::string &name) {
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::Bool, DType::I32,
                  DType::I64})
    if (name == dtypeName(d))
      return d;
  return std::nullopt;
}

bool MaskSpec::operator==(const MaskSpec &o) const {
  return kind == o.kind && bottomRight == o.bottomRight && left == o.left &&
         right == o.right && dtype == o.dtype &&
         batchBroadcast == o.batchBroadcast &&
         headBroadcast == o.headBroadcast && queryBroadcast == o.queryBroadcast;
}

bool ModFuncSpec::operator==(const ModFuncSpec &o) const {
  return func == o.func && captures == o.captures;
}

bool ScoreModSpec::operator==(const ScoreModSpec &o) const {
  return kind == o.kind && cap == o.cap && numBuckets == o.numBuckets &&
         maxDistance == o.maxDistance && bidirectional == o.bidirectional &&
         func == o.func;
}

/// T5's logarithmic bucket of distance n >= exact in a one-sided range of
/// `buckets`, in f32 as Hugging Face's T5Attention computes it:
/// exact + long(log(float(n) / exact) / log(maxDistance / exact) *
/// (buckets - exact)), at most buckets - 1.
static int64_t t5LargeBucket(int64_t n, int64_t buckets, int64_t maxDistance) {
  int64_t exact = buckets / 2;
  float ratio = static_cast<float>(n) / static_cast<float>(exact);
  float scaled = std::log(ratio) /
                 static_cast<float>(std::log(static_cast<double>(maxDistance) /
                                             static_cast<double>(exact))) *
                 static_cast<float>(buckets - exact);
  return std::min<int64_t>(exact + static_cast<int64_t>(scaled), buckets - 1);
}

int64_t attn::t5RelativeBucket(int64_t relativePosition, bool bidirectional,
                               int64_t numBuckets, int64_t maxDistance) {
  int64_t buckets = numBuckets, offset = 0, n = 0;
  if (bidirectional) {
    buckets /= 2;
    offset = relativePosition > 0 ? buckets : 0;
    n = relativePosition < 0 ? -relativePosition : relativePosition;
  } else {
    n = relativePosition < 0 ? -relativePosition : 0;
  }
  int64_t exact = buckets / 2;
  return offset + (n < exact ? n : t5LargeBucket(n, buckets, maxDistance));
}

std::vector<int64_t> attn::t5BucketThresholds(bool bidirectional,
                                              int64_t numBuckets,
                                              int64_t maxDistance) {
  int64_t buckets = bidirectional ? numBuckets / 2 : numBuckets;
  int64_t exact = buckets / 2;
  std::vector<int64_t> thresholds;
  // t5LargeBucket is non-decreasing in n: binary search each start.
  for (int64_t b = exact + 1; b < buckets; ++b) {
    int64_t lo = exact, hi = int64_t(1) << 40;
    if (t5LargeBucket(hi, buckets, maxDistance) < b)
      break; // never reached
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      if (t5LargeBucket(mid, buckets, maxDistance) >= b)
        hi = mid;
      else
        lo = mid + 1;
    }
    thresholds.push_back(lo);
  }
  return thresholds;
}

double attn::alibiSlope(int64_t h, int64_t qHeads) {
  // Press et al.'s get_slopes: for n a power of two, 2^(-8 (h + 1) / n);
  // otherwise the slopes of the power of two c below n, then every other
  // slope of 2c: 2^(-8 (2k + 1) / (2c)).
  int64_t c =
      static_cast<int64_t>(llvm::bit_floor(static_cast<uint64_t>(qHeads)));
  if (h < c)
    return std::exp2(-8.0 * static_cast<double>(h + 1) / c);
  return std::exp2(-8.0 * static_cast<double>(2 * (h - c) + 1) / (2 * c));
}

bool AttentionSpec::operator==(const AttentionSpec &o) const {
  return batch == o.batch && qHeads == o.qHeads && kvHeads == o.kvHeads &&
         qLen == o.qLen && kvLen == o.kvLen && headDim == o.headDim &&
         vHeadDim == o.vHeadDim && dtype == o.dtype &&
         scaleValue() == o.scaleValue() && masks == o.masks &&
         scoreMod == o.scoreMod && maskMod == o.maskMod &&
         returnLse == o.returnLse;
}

std::vector<int64_t> CaptureSpec::shapeAt(int64_t batch, int64_t qLen,
                                          int64_t kvLen) const {
  std::vector<int64_t> sizes;
  for (Dim d : shape)
    sizes.push_back(d.kind == Dim::Batch   ? batch
                    : d.kind == Dim::QLen  ? qLen
                    : d.kind == Dim::KvLen ? kvLen
                                           : d.size);
  return sizes;
}

std::vector<CaptureSpec> AttentionSpec::scoreModCaptures() const {
  using Dim = CaptureSpec::Dim;
  if (scoreMod && scoreMod->kind == ScoreModSpec::Kind::Mlir)
    return scoreMod->func.captures;
  if (scoreMod && scoreMod->kind == ScoreModSpec::Kind::T5Bias)
    return {{"relative_attention_bias",
             DType::F32,
             {Dim(Dim::Fixed, scoreMod->numBuckets), Dim(Dim::Fixed, qHeads)}}};
  return {};
}

std::vector<CaptureSpec> AttentionSpec::maskModCaptures() const {
  using Dim = CaptureSpec::Dim;
  if (!maskMod)
    return {};
  switch (maskMod->kind) {
  case MaskModSpec::Kind::Document:
    return {{"q_document_ids", DType::I32, {Dim::Batch, Dim::QLen}},
            {"kv_document_ids", DType::I32, {Dim::Batch, Dim::KvLen}}};
  case MaskModSpec::Kind::PrefixLM:
    return {{"prefix_lens", DType::I32, {Dim::Batch}}};
  case MaskModSpec::Kind::Longformer:
    return {{"q_global", DType::I32, {Dim::Batch, Dim::QLen}},
            {"kv_global", DType::I32, {Dim::Batch, Dim::KvLen}}};
  case MaskModSpec::Kind::Mlir:
    return maskMod->func.captures;
  case MaskModSpec::Kind::DilatedSlidingWindow:
  case MaskModSpec::Kind::Strided:
  case MaskModSpec::Kind::Fixed:
    return {};
  }
  return {};
}

std::vector<CaptureSpec> AttentionSpec::captures() const {
  std::vector<CaptureSpec> list = scoreModCaptures();
  std::vector<CaptureSpec> mask = maskModCaptures();
  list.insert(list.end(), mask.begin(), mask.end());
  return list;
}

std::optional<MaskSpec> attn::impliedBand(const MaskModSpec &mod) {
  MaskSpec band;
  switch (mod.kind) {
  case MaskModSpec::Kind::Strided:
  case MaskModSpec::Kind::Fixed:
    band.kind = MaskSpec::Kind::Causal;
    return band;
  case MaskModSpec::Kind::DilatedSlidingWindow: {
    int64_t reach = 0;
    if (__builtin_mul_overflow(mod.window, mod.dilation, &reach) ||
        reach > INT32_MAX) // kMaxSize, a window extent's limit
      return std::nullopt;
    band.kind = MaskSpec::Kind::SlidingWindow;
    band.left = band.right = reach;
    return band;
  }
  case MaskModSpec::Kind::Mlir:
    return modFuncBand(mod.func);
  case MaskModSpec::Kind::Document:
  case MaskModSpec::Kind::PrefixLM:
  case MaskModSpec::Kind::Longformer:
    return std::nullopt;
  }
  return std::nullopt;
}

static constexpr MaskModSpec::Kind kMaskModKinds[] = {
    MaskModSpec::Kind::Document,
    MaskModSpec::Kind::PrefixLM,
    MaskModSpec::Kind::DilatedSlidingWindow,
    MaskModSpec::Kind::Strided,
    MaskModSpec::Kind::Fixed,
    MaskModSpec::Kind::Longformer,
    MaskModSpec::Kind::Mlir};

const char *attn::maskModKindName(MaskModSpec::Kind kind) {
  switch (kind) {
  case MaskModSpec::Kind::Document:
    return "document";
  case MaskModSpec::Kind::PrefixLM:
    return "prefix_lm";
  case MaskModSpec::Kind::DilatedSlidingWindow:
    return "dilated_sliding_window";
  case MaskModSpec::Kind::Strided:
    return "strided";
  case MaskModSpec::Kind::Fixed:
    return "fixed";
  case MaskModSpec::Kind::Longformer:
    return "longformer";
  case MaskModSpec::Kind::Mlir:
    return "mlir";
  }
  return "";
}

double AttentionSpec::scaleValue() const {
  return scale ? *scale : 1.0 / std::sqrt(static_cast<double>(headDim));
}

const MaskSpec *AttentionSpec::findMask(MaskSpec::Kind kind) const {
  for (const MaskSpec &m : masks)
    if (m.kind == kind)
      return &m;
  return nullptr;
}

bool AttentionSpec::isCausalLike() const {
  return findMask(MaskSpec::Kind::Causal) != nullptr;
}

static llvm::Error specError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "spec: " + msg);
}

/// The largest value of a size, a window extent or a dynamic length: sizes
/// are int32 in the C API and in kv_lens (2^31 - 1).
static constexpr int64_t kMaxSize = INT32_MAX;
/// Limits of the spec text: a spec is a few hundred bytes; these bound what
/// a hostile one costs before it is rejected.
static constexpr size_t kMaxSpecBytes = 1 << 20;
static constexpr unsigned kMaxSpecDepth = 16;
/// At most this many characters of an offending value are shown in an
/// error.
static constexpr size_t kMaxShown = 64;

/// `text` cut to kMaxShown characters ("..." marks a cut).
static std::string shown(std::string text) {
  if (text.size() > kMaxShown)
    text = text.substr(0, kMaxShown) + "...";
  return text;
}
static std::string shown(const json &value) {
  // Long strings and deep arrays are cut before they are dumped whole.
  if (value.is_string())
    return "\"" + shown(value.get_ref<const std::string &>()) + "\"";
  return shown(value.dump());
}

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

namespace {
/// Reads typed fields of one JSON object and reports unknown keys.
struct ObjectReader {
  const json &obj;
  std::string prefix; // "" or "mask."
  std::set<std::string> seen;

  llvm::Error unknownKeys() {
    for (auto it = obj.begin(); it != obj.end(); ++it)
      if (!seen.count(it.key()))
        return specError("unknown key '" + prefix + shown(it.key()) + "'");
    return llvm::Error::success();
  }
  const json *find(const std::string &key) {
    seen.insert(key);
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }
  /// A positive integer; `nullable` allows null (dynamic size).
  llvm::Error size(const std::string &key, std::optional<int64_t> &out,
                   bool required, bool nullable) {
    const json *v = find(key);
    if (!v) {
      if (required)
        return specError("missing required key '" + prefix + key + "'");
      return llvm::Error::success();
    }
    if (v->is_null() && nullable) {
      out = std::nullopt;
      return llvm::Error::success();
    }
    if (!v->is_number_integer() || v->get<int64_t>() <= 0 ||
        v->get<int64_t>() > kMaxSize)
      return specError("'" + prefix + key + "' must be a positive integer " +
                       (nullable ? "(or null for a dynamic size) " : "") +
                       "below 2^31, got " + shown(*v));
    out = v->get<int64_t>();
    return llvm::Error::success();
  }
  llvm::Error nonNegative(const std::string &key, int64_t &out) {
    const json *v = find(key);
    if (!v)
      return specError("missing required key '" + prefix + key + "'");
    if (!v->is_number_integer() || v->get<int64_t>() < 0 ||
        v->get<int64_t>() > kMaxSize)
      return specError("'" + prefix + key +
                       "' must be a non-negative integer, got " + shown(*v));
    out = v->get<int64_t>();
    return llvm::Error::success();
  }
  llvm::Error boolean(const std::string &key, bool &out) {
    const json *v = find(key);
    if (!v)
      return llvm::Error::success();
    if (!v->is_boolean())
      return specError("'" + prefix + key + "' must be true or false, got " +
                       shown(*v));
    out = v->get<bool>();
    return llvm::Error::success();
  }
  llvm::Error string(const std::string &key, std::optional<std::string> &out) {
    const json *v = find(key);
    if (!v)
      return llvm::Error::success();
    if (!v->is_string())
      return specError("'" + prefix + key + "' must be a string, got " +
                       shown(*v));
    out = v->get<std::string>();
    return llvm::Error::success();
  }
};

llvm::Error parseAlign(ObjectReader &r, MaskSpec &mask) {
  std::optional<std::string> align;
  if (auto err = r.string("align", align))
    return err;
  if (!align || *align == "top_left")
    mask.bottomRight = false;
  else if (*align == "bottom_right")
    mask.bottomRight = true;
  else
    return specError("'mask.align' must be \"top_left\" or \"bottom_right\", "
                     "got " + shown(json(*align)));
  return llvm::Error::success();
}

/// The limits of a user function's captures (ModFuncSpec): at most 16, of
/// rank at most 4, named like identifiers ([A-Za-z_][A-Za-z0-9_]*, at most
/// 64 characters), each name once.
llvm::Error checkCaptureList(const std::vector<CaptureSpec> &captures,
                             const std::string &key) {
  if (captures.size() > 16)
    return specError("'" + key + ".captures' holds at most 16 captures, got " +
                     std::to_string(captures.size()));
  std::set<std::string> names;
  for (const CaptureSpec &c : captures) {
    bool identifier =
        !c.name.empty() && c.name.size() <= 64 && !std::isdigit(c.name[0]) &&
        llvm::all_of(c.name,
                     [](char ch) { return std::isalnum(ch) || ch == '_'; });
    if (!identifier)
      return specError("'" + key +
                       ".captures.name' must be an identifier "
                       "([A-Za-z_][A-Za-z0-9_]*, at most 64 characters), got " +
                       shown(json(c.name)));
    if (!names.insert(c.name).second)
      return specError("'" + key + ".captures' names '" + c.name + "' twice");
    if (c.shape.size() > 4)
      return specError("'" + key + ".captures.shape' of '" + c.name +
                       "' has rank " + std::to_string(c.shape.size()) +
                       ", at most 4");
    for (CaptureSpec::Dim d : c.shape)
      if (d.kind == CaptureSpec::Dim::Fixed &&
          (d.size <= 0 || d.size > kMaxSize))
        return specError("'" + key + ".captures.shape' of '" + c.name +
                         "' must hold positive sizes below 2^31");
  }
  return llvm::Error::success();
}

/// Reads the optional object `key` ("score_mod" or "mask_mod") of `root`
/// into `out`: absent or null leaves `out` unset; otherwise the object's
/// required "kind", the keys `parse` reads for that kind, and no other key.
template <typename Mod>
llvm::Error readModObject(ObjectReader &root, const std::string &key,
                          llvm::Expected<Mod> (*parse)(ObjectReader &,
                                                       const std::string &),
                          std::optional<Mod> &out) {
  const json *obj = root.find(key);
  if (!obj || obj->is_null())
    return llvm::Error::success();
  if (!obj->is_object())
    return specError("'" + key + "' must be an object or null, got " +
                     shown(*obj));
  ObjectReader r{*obj, key + ".", {}};
  std::optional<std::string> kind;
  if (auto err = r.string("kind", kind))
    return err;
  if (!kind)
    return specError("missing required key '" + key + ".kind'");
  llvm::Expected<Mod> mod = parse(r, *kind);
  if (!mod)
    return mod.takeError();
  if (auto err = r.unknownKeys())
    return err;
  out = *mod;
  return llvm::Error::success();
}

/// The "func" and "captures" of a score_mod / mask_mod of kind "mlir"
/// (ModFuncSpec), resolved: checked, canonical, capture dtypes from the
/// function. "captures": [{"name": "slopes", "shape": [8]}, {"name":
/// "doc_ids", "shape": ["batch", "q_len"]}, ...].
llvm::Expected<ModFuncSpec> parseModFunc(ObjectReader &r, bool isScoreMod) {
  std::string key = isScoreMod ? "score_mod" : "mask_mod";
  ModFuncSpec mod;
  // The text, or its lines (JSON strings hold no raw line breaks).
  const json *func = r.find("func");
  if (!func)
    return specError("missing required key '" + key + ".func'");
  auto isString = [](const json &v) { return v.is_string(); };
  if (func->is_string()) {
    mod.func = func->get<std::string>();
  } else if (func->is_array() && llvm::all_of(*func, isString)) {
    for (const json &line : *func)
      mod.func += line.get<std::string>() + "\n";
  } else {
    return specError("'" + key +
                     ".func' must be the MLIR text of a "
                     "func.func: a string or a list of lines, got " +
                     shown(*func));
  }
  if (const json *list = r.find("captures")) {
    if (!list->is_array())
      return specError("'" + key + ".captures' must be a list, got " +
                       shown(*list));
    for (const json &item : *list) {
      if (!item.is_object())
        return specError("'" + key +
                         ".captures' entries must be objects, "
                         "got " +
                         shown(item));
      ObjectReader c{item, key + ".captures.", {}};
      std::optional<std::string> name;
      if (auto err = c.string("name", name))
        return std::move(err);
      if (!name)
        return specError("missing required key '" + key + ".captures.name'");
      const json *shape = c.find("shape");
      if (!shape || !shape->is_array())
        return specError("'" + key + ".captures.shape' of '" + shown(*name) +
                         "' must be a list of sizes (\"batch\", \"q_len\", "
                         "\"kv_len\" or positive integers)");
      CaptureSpec capture{*name, DType::I32, {}};
      for (const json &d : *shape) {
        using Dim = CaptureSpec::Dim;
        if (d == "batch")
          capture.shape.push_back(Dim::Batch);
        else if (d == "q_len")
          capture.shape.push_back(Dim::QLen);
        else if (d == "kv_len")
          capture.shape.push_back(Dim::KvLen);
        else if (d.is_number_integer() && d.get<int64_t>() > 0 &&
                 d.get<int64_t>() <= kMaxSize)
          capture.shape.push_back(Dim(Dim::Fixed, d.get<int64_t>()));
        else
          return specError("'" + key + ".captures.shape' of '" + shown(*name) +
                           "': expected \"batch\", \"q_len\", "
                           "\"kv_len\" or a positive integer below 2^31, "
                           "got " +
                           shown(d));
      }
      if (auto err = c.unknownKeys())
        return std::move(err);
      mod.captures.push_back(std::move(capture));
    }
  }
  if (auto err = checkCaptureList(mod.captures, key))
    return std::move(err);
  return resolveModFunc(mod, isScoreMod);
}

/// The score_mod of `kind`, its other keys read through `r`.
llvm::Expected<ScoreModSpec> parseScoreMod(ObjectReader &r,
                                           const std::string &kind) {
  ScoreModSpec mod;
  if (kind == "alibi") {
    mod.kind = ScoreModSpec::Kind::Alibi;
  } else if (kind == "softcap") {
    mod.kind = ScoreModSpec::Kind::Softcap;
    const json *cap = r.find("cap");
    if (!cap)
      return specError("missing required key 'score_mod.cap'");
    if (!cap->is_number() || !std::isfinite(cap->get<double>()) ||
        cap->get<double>() <= 0)
      return specError("'score_mod.cap' must be a positive finite number, "
                       "got " +
                       shown(*cap));
    mod.cap = cap->get<double>();
  } else if (kind == "t5_bias") {
    mod.kind = ScoreModSpec::Kind::T5Bias;
    std::optional<int64_t> buckets = mod.numBuckets, distance = mod.maxDistance;
    if (auto err = r.size("num_buckets", buckets, false, false))
      return std::move(err);
    if (auto err = r.size("max_distance", distance, false, false))
      return std::move(err);
    if (auto err = r.boolean("bidirectional", mod.bidirectional))
      return std::move(err);
    mod.numBuckets = *buckets;
    mod.maxDistance = *distance;
  } else if (kind == "mlir") {
    mod.kind = ScoreModSpec::Kind::Mlir;
    llvm::Expected<ModFuncSpec> func = parseModFunc(r, /*isScoreMod=*/true);
    if (!func)
      return func.takeError();
    mod.func = std::move(*func);
  } else {
    return specError("'score_mod.kind' must be one of alibi, softcap, "
                     "t5_bias, mlir, got " +
                     shown(json(kind)));
  }
  return mod;
}

/// The mask_mod of `kind`, its other keys read through `r`.
llvm::Expected<MaskModSpec> parseMaskMod(ObjectReader &r,
                                         const std::string &kind) {
  MaskModSpec mod;
  auto known = llvm::find_if(kMaskModKinds, [&](MaskModSpec::Kind k) {
    return kind == maskModKindName(k);
  });
  if (known == std::end(kMaskModKinds))
    return specError("'mask_mod.kind' must be one of document, prefix_lm, "
                     "dilated_sliding_window, strided, fixed, longformer, "
                     "mlir, got " +
                     shown(json(kind)));
  mod.kind = *known;
  std::optional<int64_t> positive;
  switch (mod.kind) {
  case MaskModSpec::Kind::Document:
  case MaskModSpec::Kind::PrefixLM:
    break;
  case MaskModSpec::Kind::DilatedSlidingWindow:
    if (auto err = r.nonNegative("window", mod.window))
      return std::move(err);
    if (auto err = r.size("dilation", positive, true, false))
      return std::move(err);
    mod.dilation = *positive;
    break;
  case MaskModSpec::Kind::Fixed:
    if (auto err = r.size("summary", positive, true, false))
      return std::move(err);
    mod.summary = *positive;
    [[fallthrough]];
  case MaskModSpec::Kind::Strided:
    if (auto err = r.size("stride", positive, true, false))
      return std::move(err);
    mod.stride = *positive;
    break;
  case MaskModSpec::Kind::Longformer:
    if (auto err = r.nonNegative("window", mod.window))
      return std::move(err);
    break;
  case MaskModSpec::Kind::Mlir: {
    llvm::Expected<ModFuncSpec> func = parseModFunc(r, /*isScoreMod=*/false);
    if (!func)
      return func.takeError();
    mod.func = std::move(*func);
    break;
  }
  }
  return mod;
}

/// Parses one mask object; returns nullopt for kind "none".
llvm::Expected<std::optional<MaskSpec>> parseMask(const json &obj) {
  if (!obj.is_object())
    return specError("'mask' must be an object or a list of objects, got " +
                     shown(obj));
  ObjectReader r{obj, "mask.", {}};
  std::optional<std::string> kind;
  if (auto err = r.string("kind", kind))
    return std::move(err);
  if (!kind)
    return specError("missing required key 'mask.kind'");
  MaskSpec mask;
  if (*kind == "none") {
    if (auto err = r.unknownKeys())
      return std::move(err);
    return std::nullopt;
  }
  if (*kind == "causal") {
    mask.kind = MaskSpec::Kind::Causal;
    if (auto err = parseAlign(r, mask))
      return std::move(err);
  } else if (*kind == "sliding_window") {
    mask.kind = MaskSpec::Kind::SlidingWindow;
    if (auto err = r.nonNegative("left", mask.left))
      return std::move(err);
    if (auto err = r.nonNegative("right", mask.right))
      return std::move(err);
    if (auto err = parseAlign(r, mask))
      return std::move(err);
  } else if (*kind == "tensor") {
    mask.kind = MaskSpec::Kind::Tensor;
    std::optional<std::string> dtype;
    if (auto err = r.string("dtype", dtype))
      return std::move(err);
    std::optional<DType> d = parseDType(dtype.value_or("bool"));
    if (!d || !(*d == DType::Bool || *d == DType::F32 || *d == DType::F16 ||
                *d == DType::BF16))
      return specError("'mask.dtype' must be \"bool\" (true keeps the key) or "
                       "\"f32\", \"f16\", \"bf16\" (additive bias), got " +
                       shown(json(dtype.value_or(""))));
    mask.dtype = *d;
    if (auto err = r.boolean("batch_broadcast", mask.batchBroadcast))
      return std::move(err);
    if (auto err = r.boolean("head_broadcast", mask.headBroadcast))
      return std::move(err);
    if (auto err = r.boolean("query_broadcast", mask.queryBroadcast))
      return std::move(err);
  } else if (*kind == "key_padding") {
    mask.kind = MaskSpec::Kind::KeyPadding;
    std::optional<std::string> dtype;
    if (auto err = r.string("dtype", dtype))
      return std::move(err);
    std::optional<DType> d = parseDType(dtype.value_or("i32"));
    if (!d || !(*d == DType::I32 || *d == DType::I64))
      return specError("'mask.dtype' of key_padding must be \"i32\" or "
                       "\"i64\", got " + shown(json(dtype.value_or(""))));
    mask.dtype = *d;
  } else {
    return specError("'mask.kind' must be one of none, causal, "
                     "sliding_window, tensor, key_padding; got " +
                     shown(json(*kind)));
  }
  if (auto err = r.unknownKeys())
    return std::move(err);
  return std::optional<MaskSpec>(mask);
}
} // namespace

/// Rejects what the JSON parser should never see: text over kMaxSpecBytes
/// and nesting deeper than kMaxSpecDepth (a deep document costs the parser
/// and the recursive destructor of nlohmann::json one stack frame a level).
/// The nesting scan is the one attn-opt uses for MLIR (it skips strings);
/// the parser checks the rest.
static llvm::Error checkSpecText(const std::string &text) {
  if (text.size() > kMaxSpecBytes)
    return specError("the spec text is " + llvm::Twine(text.size()) +
                     " bytes, more than the limit of " +
                     llvm::Twine(kMaxSpecBytes));
  if (mlir::attn::findNestingOverflow(text, kMaxSpecDepth))
    return specError("JSON nested deeper than " + llvm::Twine(kMaxSpecDepth) +
                     " levels");
  return llvm::Error::success();
}

llvm::Expected<AttentionSpec> AttentionSpec::fromJSON(const std::string &text) {
  if (auto err = checkSpecText(text))
    return std::move(err);
  // Duplicate keys are an error (nlohmann keeps the last one silently): the
  // parser callback sees every key of every object.
  std::vector<std::set<std::string>> keys;
  std::optional<std::string> duplicate;
  json root = json::parse(
      text,
      [&](int, json::parse_event_t event, json &parsed) {
        if (event == json::parse_event_t::object_start)
          keys.emplace_back();
        else if (event == json::parse_event_t::object_end && !keys.empty())
          keys.pop_back();
        else if (event == json::parse_event_t::key && !keys.empty() &&
                 !keys.back().insert(parsed.get<std::string>()).second &&
                 !duplicate)
          duplicate = parsed.get<std::string>();
        return true;
      },
      /*allow_exceptions=*/false);
  if (root.is_discarded())
    return specError("not valid JSON");
  if (duplicate)
    return specError("duplicate key '" + shown(*duplicate) + "'");
  if (!root.is_object())
    return specError("the top level must be a JSON object");
  AttentionSpec spec;
  ObjectReader r{root, "", {}};
  std::optional<int64_t> qHeads, kvHeads, headDim, vHeadDim;
  if (auto err = r.size("batch", spec.batch, true, true))
    return std::move(err);
  if (auto err = r.size("q_heads", qHeads, true, false))
    return std::move(err);
  if (auto err = r.size("kv_heads", kvHeads, false, false))
    return std::move(err);
  if (auto err = r.size("q_len", spec.qLen, true, true))
    return std::move(err);
  if (auto err = r.size("kv_len", spec.kvLen, true, true))
    return std::move(err);
  if (auto err = r.size("head_dim", headDim, true, false))
    return std::move(err);
  if (auto err = r.size("v_head_dim", vHeadDim, false, false))
    return std::move(err);
  spec.qHeads = *qHeads;
  spec.kvHeads = kvHeads.value_or(*qHeads);
  spec.headDim = *headDim;
  spec.vHeadDim = vHeadDim.value_or(*headDim);

  std::optional<std::string> dtype;
  if (auto err = r.string("dtype", dtype))
    return std::move(err);
  std::optional<DType> d = parseDType(dtype.value_or("f32"));
  if (!d || !(*d == DType::F32 || *d == DType::F16 || *d == DType::BF16))
    return specError("'dtype' must be \"f32\", \"f16\" or \"bf16\", got " +
                     shown(json(dtype.value_or(""))));
  spec.dtype = *d;

  if (const json *s = r.find("scale")) {
    if (!s->is_number() || !std::isfinite(s->get<double>()))
      return specError("'scale' must be a finite number, got " + shown(*s));
    spec.scale = s->get<double>();
  }
  if (auto err = r.boolean("lse", spec.returnLse))
    return std::move(err);
  if (const json *m = r.find("mask")) {
    std::vector<json> list = m->is_array() ? m->get<std::vector<json>>()
                                           : std::vector<json>{*m};
    for (const json &item : list) {
      auto mask = parseMask(item);
      if (!mask)
        return mask.takeError();
      if (*mask)
        spec.masks.push_back(**mask);
    }
  }
  if (auto err = readModObject(r, "score_mod", parseScoreMod, spec.scoreMod))
    return std::move(err);
  if (auto err = readModObject(r, "mask_mod", parseMaskMod, spec.maskMod))
    return std::move(err);
  if (auto err = r.unknownKeys())
    return std::move(err);
  if (auto err = spec.validate())
    return std::move(err);
  return spec;
}

static bool mulOverflows(int64_t &acc, int64_t v) {
  return __builtin_mul_overflow(acc, v, &acc);
}

llvm::Error AttentionSpec::validate() const {
  auto positive = [](std::optional<int64_t> v) { return !v || *v > 0; };
  if (!positive(batch) || !positive(qLen) || !positive(kvLen) || qHeads <= 0 ||
      kvHeads <= 0 || headDim <= 0 || vHeadDim <= 0)
    return specError("sizes must be positive");
  // The limits of the JSON form hold for every way in (C structs, C++).
  auto small = [](std::optional<int64_t> v) { return !v || *v <= kMaxSize; };
  if (!small(batch) || !small(qLen) || !small(kvLen) || qHeads > kMaxSize ||
      kvHeads > kMaxSize || headDim > kMaxSize || vHeadDim > kMaxSize)
    return specError("sizes must be below 2^31");
  // Any finite scale, as PyTorch's SDPA: 0 weighs the visible keys equally.
  if (scale && !std::isfinite(*scale))
    return specError("'scale' must be a finite number");
  if (scoreMod && scoreMod->kind == ScoreModSpec::Kind::Softcap &&
      !(std::isfinite(scoreMod->cap) && scoreMod->cap > 0))
    return specError("'score_mod.cap' must be a positive finite number");
  if (scoreMod && scoreMod->kind == ScoreModSpec::Kind::T5Bias) {
    const ScoreModSpec &m = *scoreMod;
    int64_t least = m.bidirectional ? 4 : 2;
    if (m.numBuckets < least || m.numBuckets > 1024 ||
        (m.bidirectional && m.numBuckets % 2 != 0))
      return specError("'score_mod.num_buckets' must be " +
                       llvm::Twine(m.bidirectional ? "even and in 4" : "in 2") +
                       " .. 1024, got " + llvm::Twine(m.numBuckets));
    int64_t exact = (m.bidirectional ? m.numBuckets / 2 : m.numBuckets) / 2;
    if (m.maxDistance <= exact || m.maxDistance > kMaxSize)
      return specError(
          "'score_mod.max_distance' must be above the " + llvm::Twine(exact) +
          " exact buckets and below 2^31, got " + llvm::Twine(m.maxDistance));
  }
  if (maskMod) {
    const MaskModSpec &m = *maskMod;
    auto within = [](int64_t v, int64_t lo, int64_t hi) {
      return v >= lo && v <= hi;
    };
    if (!within(m.window, 0, kMaxSize))
      return specError("'mask_mod.window' must be a non-negative integer");
    if (!within(m.dilation, 1, kMaxSize) || !within(m.stride, 1, kMaxSize))
      return specError(
          llvm::Twine("'mask_mod.") +
          (within(m.dilation, 1, kMaxSize) ? "stride" : "dilation") +
          "' must be a positive integer below 2^31");
    if (!within(m.summary, 1, m.stride))
      return specError("'mask_mod.summary' (" + llvm::Twine(m.summary) +
                       ") must be in 1 .. 'mask_mod.stride' (" +
                       llvm::Twine(m.stride) + ")");
  }
  // A user function: its captures' limits, and it checks as fromJSON
  // checked it (a C++ caller's capture dtypes are the function's).
  auto checkFunc = [&](const ModFuncSpec &mod, bool isScoreMod) -> llvm::Error {
    std::string key = isScoreMod ? "score_mod" : "mask_mod";
    if (auto err = checkCaptureList(mod.captures, key))
      return err;
    llvm::Expected<ModFuncSpec> resolved = resolveModFunc(mod, isScoreMod);
    if (!resolved)
      return resolved.takeError();
    for (auto [given, found] : llvm::zip(mod.captures, resolved->captures))
      if (given.dtype != found.dtype)
        return specError("'" + key + ".captures' '" + given.name + "' is " +
                         dtypeName(given.dtype) + ", its argument " +
                         dtypeName(found.dtype));
    return llvm::Error::success();
  };
  if (scoreMod && scoreMod->kind == ScoreModSpec::Kind::Mlir)
    if (auto err = checkFunc(scoreMod->func, true))
      return err;
  if (maskMod && maskMod->kind == MaskModSpec::Kind::Mlir)
    if (auto err = checkFunc(maskMod->func, false))
      return err;
  {
    std::set<std::string> names;
    for (const CaptureSpec &c : captures())
      if (!names.insert(c.name).second)
        return specError("the score_mod and the mask_mod both read a "
                         "capture named '" +
                         c.name + "'");
  }
  if (qHeads % kvHeads != 0)
    return specError("'q_heads' (" + llvm::Twine(qHeads) +
                     ") must be a multiple of 'kv_heads' (" +
                     llvm::Twine(kvHeads) + ")");
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    return specError("'dtype' must be f32, f16 or bf16");
  // Every tensor must be addressable: at most 2^46 bytes.
  const int64_t kMaxBytes = int64_t(1) << 46;
  auto checkTensor = [&](const char *name,
                         std::initializer_list<int64_t> dims) -> llvm::Error {
    int64_t bytes = 4;
    for (int64_t dim : dims)
      if (mulOverflows(bytes, dim) || bytes > kMaxBytes)
        return specError(llvm::Twine(name) +
                         " tensor is too large (over 2^46 bytes)");
    return llvm::Error::success();
  };
  int64_t b = batch.value_or(1), sq = qLen.value_or(1), sk = kvLen.value_or(1);
  if (auto err = checkTensor("query", {b, qHeads, sq, headDim}))
    return err;
  if (auto err = checkTensor("key", {b, kvHeads, sk, headDim}))
    return err;
  if (auto err = checkTensor("value", {b, kvHeads, sk, vHeadDim}))
    return err;
  if (auto err = checkTensor("output", {b, qHeads, sq, vHeadDim}))
    return err;
  int tensorMasks = 0, keyPadding = 0;
  for (const MaskSpec &m : masks) {
    if (m.kind == MaskSpec::Kind::Tensor) {
      ++tensorMasks;
      if (auto err = checkTensor("mask", {b, qHeads, sq, sk}))
        return err;
    }
    if (m.kind == MaskSpec::Kind::Tensor && m.dtype != DType::Bool &&
        m.dtype != DType::F32 && m.dtype != DType::F16 &&
        m.dtype != DType::BF16)
      return specError(
          "'mask.dtype' of a tensor mask must be bool, f32, f16 or bf16");
    if (m.kind == MaskSpec::Kind::KeyPadding)
      ++keyPadding;
    if (m.kind == MaskSpec::Kind::KeyPadding && m.dtype != DType::I32 &&
        m.dtype != DType::I64)
      return specError("'mask.dtype' of key_padding must be i32 or i64");
    if (m.kind == MaskSpec::Kind::SlidingWindow &&
        (m.left < 0 || m.right < 0 || m.left > kMaxSize || m.right > kMaxSize))
      return specError("sliding_window 'left' and 'right' must be >= 0 and "
                       "below 2^31");
  }
  int bands = 0;
  for (const MaskSpec &m : masks)
    bands += m.kind == MaskSpec::Kind::Causal ||
             m.kind == MaskSpec::Kind::SlidingWindow;
  if (tensorMasks > 1 || keyPadding > 1 || bands > 1)
    return specError("'mask' may hold at most one causal or sliding_window, "
                     "one tensor and one key_padding mask");
  return llvm::Error::success();
}

/// The "func" and "captures" keys of a user function's JSON object (the
/// capture dtypes are the function's argument types).
static void writeModFunc(json &obj, const ModFuncSpec &mod) {
  obj["func"] = mod.func;
  json list = json::array();
  for (const CaptureSpec &c : mod.captures) {
    json shape = json::array();
    for (CaptureSpec::Dim d : c.shape)
      shape.push_back(d.kind == d.Batch   ? json("batch")
                      : d.kind == d.QLen  ? json("q_len")
                      : d.kind == d.KvLen ? json("kv_len")
                                          : json(d.size));
    list.push_back({{"name", c.name}, {"shape", shape}});
  }
  obj["captures"] = list;
}

std::string AttentionSpec::toJSON() const {
  json j;
  auto opt = [](std::optional<int64_t> v) { return v ? json(*v) : json(); };
  j["batch"] = opt(batch);
  j["q_heads"] = qHeads;
  j["kv_heads"] = kvHeads;
  j["q_len"] = opt(qLen);
  j["kv_len"] = opt(kvLen);
  j["head_dim"] = headDim;
  j["v_head_dim"] = vHeadDim;
  j["dtype"] = dtypeName(dtype);
  j["scale"] = scaleValue();
  j["lse"] = returnLse;
  json list = json::array();
  for (const MaskSpec &m : masks) {
    json mj;
    switch (m.kind) {
    case MaskSpec::Kind::Causal:
      mj["kind"] = "causal";
      mj["align"] = m.bottomRight ? "bottom_right" : "top_left";
      break;
    case MaskSpec::Kind::SlidingWindow:
      mj["kind"] = "sliding_window";
      mj["left"] = m.left;
      mj["right"] = m.right;
      mj["align"] = m.bottomRight ? "bottom_right" : "top_left";
      break;
    case MaskSpec::Kind::Tensor:
      mj["kind"] = "tensor";
      mj["dtype"] = dtypeName(m.dtype);
      mj["batch_broadcast"] = m.batchBroadcast;
      mj["head_broadcast"] = m.headBroadcast;
      mj["query_broadcast"] = m.queryBroadcast;
      break;
    case MaskSpec::Kind::KeyPadding:
      mj["kind"] = "key_padding";
      mj["dtype"] = dtypeName(m.dtype);
      break;
    }
    list.push_back(mj);
  }
  j["mask"] = list;
  // Written only when present, so that the canonical form (and the kernel
  // caches keyed by it) of a spec without one stays as it was.
  if (scoreMod) {
    json mj;
    switch (scoreMod->kind) {
    case ScoreModSpec::Kind::Alibi:
      mj["kind"] = "alibi";
      break;
    case ScoreModSpec::Kind::Softcap:
      mj["kind"] = "softcap";
      mj["cap"] = scoreMod->cap;
      break;
    case ScoreModSpec::Kind::T5Bias:
      mj["kind"] = "t5_bias";
      mj["num_buckets"] = scoreMod->numBuckets;
      mj["max_distance"] = scoreMod->maxDistance;
      mj["bidirectional"] = scoreMod->bidirectional;
      break;
    case ScoreModSpec::Kind::Mlir:
      mj["kind"] = "mlir";
      writeModFunc(mj, scoreMod->func);
      break;
    }
    j["score_mod"] = mj;
  }
  if (maskMod) {
    json mj;
    mj["kind"] = maskModKindName(maskMod->kind);
    switch (maskMod->kind) {
    case MaskModSpec::Kind::Document:
    case MaskModSpec::Kind::PrefixLM:
      break;
    case MaskModSpec::Kind::DilatedSlidingWindow:
      mj["window"] = maskMod->window;
      mj["dilation"] = maskMod->dilation;
      break;
    case MaskModSpec::Kind::Fixed:
      mj["summary"] = maskMod->summary;
      [[fallthrough]];
    case MaskModSpec::Kind::Strided:
      mj["stride"] = maskMod->stride;
      break;
    case MaskModSpec::Kind::Longformer:
      mj["window"] = maskMod->window;
      break;
    case MaskModSpec::Kind::Mlir:
      writeModFunc(mj, maskMod->func);
      break;
    }
    j["mask_mod"] = mj;
  }
  return j.dump();
}

double attn::attentionFlops(const AttentionSpec &spec, int64_t batch,
                            int64_t qLen, int64_t kvLen) {
  // The spec's band (causal or sliding window) in the op detail's terms;
  // KeyBand counts the entries it keeps.
  mlir::attn::KeyBand band;
  for (const MaskSpec &m : spec.masks) {
    if (m.kind != MaskSpec::Kind::Causal &&
        m.kind != MaskSpec::Kind::SlidingWindow)
      continue;
    band.upper = m.kind == MaskSpec::Kind::Causal ? 0 : m.right;
    if (m.kind == MaskSpec::Kind::SlidingWindow)
      band.lower = -m.left;
    band.alignment = m.bottomRight ? mlir::attn::MaskAlignment::BottomRight
                                   : mlir::attn::MaskAlignment::TopLeft;
  }
  return 2.0 * double(batch) * double(spec.qHeads) *
         double(spec.headDim + spec.vHeadDim) *
         band.countVisible(qLen, kvLen);
}
