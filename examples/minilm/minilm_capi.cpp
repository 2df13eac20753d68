//===- minilm_capi.cpp - all-MiniLM-L6-v2 attention through the C API -----===//
//
// The MiniLM demo of run_minilm.sh, but embedded: a program that links
// libattn_mlir_c and uses only include/attn-c/attn.h to compile the spec of
// test/data/minilm and run the attention of every layer on the bundled query,
// key and value activations (with the tokenizer's key padding as kv_lens),
// then prints, per layer, the max abs error against the model's own output --
// the same numbers attn-run reports (same kernel, bitwise-identical output).
//
//   attn-minilm-capi [DATA_DIR]      (default: test/data/minilm)
//
// One JSON line per layer: {"layer", "max_abs_err", "run_ms"}; exit code 1
// when a layer exceeds 1e-5 or a call fails (the C API's message is printed).
//
//===----------------------------------------------------------------------===//

#include "attn-c/attn.h"

#include "attn/Runtime/Npy.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace {

[[noreturn]] void die(const std::string &what) {
  std::fprintf(stderr, "attn-minilm-capi: %s\n", what.c_str());
  std::exit(1);
}

void check(attn_status status, const char *call) {
  if (status != ATTN_OK)
    die(std::string(call) + ": " + attn_status_string(status) + ": " +
        attn_last_error());
}

attn::NpyArray load(const std::string &path) {
  auto array = attn::readNpy(path);
  if (!array)
    die(llvm::toString(array.takeError()));
  return std::move(*array);
}

attn_tensor tensorOf(attn::NpyArray &a, attn_dtype dtype) {
  attn_tensor t;
  check(attn_tensor_contiguous(&t, a.data.data(), dtype,
                               static_cast<int32_t>(a.shape.size()),
                               a.shape.data()),
        "attn_tensor_contiguous");
  return t;
}

} // namespace

int main(int argc, char **argv) {
  std::string dir = argc > 1 ? argv[1] : "test/data/minilm";
  std::ifstream specFile(dir + "/spec.json");
  if (!specFile)
    die("cannot read " + dir + "/spec.json");
  std::stringstream specText;
  specText << specFile.rdbuf();

  attn_context_options options;
  attn_context_options_init(&options);
  attn_context *context = nullptr;
  check(attn_context_create(&options, &context), "attn_context_create");
  attn_kernel *kernel = nullptr;
  check(attn_kernel_compile_json(context, specText.str().c_str(), nullptr,
                                 &kernel),
        "attn_kernel_compile_json");
  attn_kernel_info info;
  check(attn_kernel_get_info(kernel, &info), "attn_kernel_get_info");
  attn_operand_info outInfo;
  check(attn_kernel_operand_info(kernel, ATTN_OPERAND_OUTPUT, &outInfo),
        "attn_kernel_operand_info");

  attn::NpyArray lens = load(dir + "/kv_lens.npy");
  bool ok = true;
  for (int layer = 0; layer < 6; ++layer) {
    std::string prefix = dir + "/layer" + std::to_string(layer);
    attn::NpyArray q = load(prefix + "_q.npy"), k = load(prefix + "_k.npy"),
                   v = load(prefix + "_v.npy"), ref = load(prefix + "_out.npy");
    std::vector<float> out(ref.numElements());
    attn_args args;
    attn_args_init(&args);
    args.query = tensorOf(q, ATTN_DTYPE_F32);
    args.key = tensorOf(k, ATTN_DTYPE_F32);
    args.value = tensorOf(v, ATTN_DTYPE_F32);
    args.kv_lens = tensorOf(lens, ATTN_DTYPE_I32);
    check(attn_tensor_contiguous(&args.output, out.data(), ATTN_DTYPE_F32,
                                 outInfo.rank, outInfo.shape),
          "attn_tensor_contiguous");
    std::vector<double> times;
    for (int i = 0; i < 20; ++i) {
      auto start = std::chrono::steady_clock::now();
      check(attn_kernel_run(kernel, &args), "attn_kernel_run");
      times.push_back(std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start)
                          .count());
    }
    std::sort(times.begin(), times.end());
    double maxErr = 0;
    bool nan = false;
    const float *want = ref.as<float>();
    for (size_t i = 0; i < out.size(); ++i) {
      if (std::isnan(out[i]) != std::isnan(want[i]))
        nan = true;
      else if (!std::isnan(out[i]))
        maxErr = std::max(maxErr, std::fabs(double(out[i]) - double(want[i])));
    }
    nlohmann::json line;
    line["layer"] = layer;
    line["max_abs_err"] =
        nan ? nlohmann::json("nan mismatch") : nlohmann::json(maxErr);
    line["run_ms"] = times[times.size() / 2];
    std::printf("%s\n", line.dump().c_str());
    ok = ok && !nan && maxErr <= 1e-5;
  }
  std::fprintf(stderr,
               "attn-minilm-capi: %s; kernel tiles %lld,%lld,%lld,%lld, "
               "compile %.1f ms%s\n",
               ok ? "every layer within 1e-5 of the model" : "FAIL",
               (long long)info.tile_sizes[0], (long long)info.tile_sizes[1],
               (long long)info.tile_sizes[2], (long long)info.tile_sizes[3],
               info.compile_ms, info.from_disk_cache ? " (disk cache)" : "");
  attn_kernel_destroy(kernel);
  attn_context_destroy(context);
  return ok ? 0 : 1;
}
