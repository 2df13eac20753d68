//===- CodegenTest.cpp - code generation pieces on their own --------------===//
//
// The polynomial exps of attn-cpu-approximate-math (the exp of the online
// softmax): MLIR's generic expansion and the AVX-512 one (vscalefps),
// compiled and run on vector<16xf32>, compared with std::exp.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>

namespace {

constexpr const char *kExpKernel = R"mlir(
func.func @exp_kernel(%in: memref<?xf32>, %out: memref<?xf32>)
    attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %n = memref.dim %in, %c0 : memref<?xf32>
  scf.for %i = %c0 to %n step %c16 {
    %v = vector.load %in[%i] : memref<?xf32>, vector<16xf32>
    %e = math.exp %v : vector<16xf32>
    vector.store %e, %out[%i] : memref<?xf32>, vector<16xf32>
  }
  return
}
)mlir";

struct Desc1 {
  float *allocated, *aligned;
  int64_t offset, size, stride;
};

/// Runs exp_kernel, compiled with the CPU pipeline's math and LLVM lowering
/// (the AVX-512 exp with `avx512`), over `in`.
std::vector<float> compiledExp(const std::vector<float> &in, bool avx512) {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    mlir::registerAllPasses();
    mlir::attn::registerAllAttnPassesAndPipelines();
  });
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::MLIRContext context(registry);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(kExpKernel, &context);
  EXPECT_TRUE(module);
  mlir::PassManager pm(&context);
  EXPECT_TRUE(mlir::succeeded(mlir::parsePassPipeline(
      std::string("func.func(attn-cpu-approximate-math{avx512=") +
          (avx512 ? "true" : "false") +
          "}),convert-scf-to-cf,"
          "convert-vector-to-llvm{enable-x86vector},convert-math-to-llvm,"
          "convert-arith-to-llvm,"
      "finalize-memref-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,"
      "reconcile-unrealized-casts",
      pm)));
  EXPECT_TRUE(mlir::succeeded(pm.run(*module)));
  auto engine = mlir::ExecutionEngine::create(*module);
  EXPECT_TRUE(static_cast<bool>(engine));
  std::vector<float> input = in, out(in.size());
  Desc1 a{input.data(), input.data(), 0, static_cast<int64_t>(in.size()), 1};
  Desc1 b{out.data(), out.data(), 0, static_cast<int64_t>(in.size()), 1};
  Desc1 *pa = &a, *pb = &b;
  void *args[] = {&pa, &pb};
  llvm::cantFail((*engine)->invokePacked("_mlir_ciface_exp_kernel", args));
  return out;
}

int64_t ulpDistance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if ((ia < 0) != (ib < 0))
    return std::abs(int64_t(ia & 0x7fffffff)) + std::abs(int64_t(ib & 0x7fffffff));
  return std::abs(int64_t(ia) - int64_t(ib));
}

/// Which expansion: MLIR's generic one, or the AVX-512 one.
class ApproximateExp : public ::testing::TestWithParam<bool> {
protected:
  void SetUp() override {
    if (GetParam() && !llvm::sys::getHostCPUFeatures().lookup("avx512f"))
      GTEST_SKIP() << "the host has no AVX-512";
  }
};

TEST_P(ApproximateExp, MaxErrorOverTheFloatRange) {
  // Dense samples of [-87, 88] (normal results) and of the softmax range
  // [-30, 0], padded to a multiple of 16.
  std::vector<float> in;
  for (int i = 0; i <= 175000; ++i)
    in.push_back(-87.0f + 175.0f * i / 175000.0f);
  for (int i = 0; i <= 30000; ++i)
    in.push_back(-30.0f * i / 30000.0f);
  while (in.size() % 16)
    in.push_back(0.0f);
  std::vector<float> out = compiledExp(in, GetParam());
  int64_t maxUlp = 0;
  float worst = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    float want = static_cast<float>(std::exp(static_cast<double>(in[i])));
    int64_t ulp = ulpDistance(out[i], want);
    if (ulp > maxUlp) {
      maxUlp = ulp;
      worst = in[i];
    }
  }
  // Documented in the attn-cpu-approximate-math pass: at most 3 ulp.
  EXPECT_LE(maxUlp, 3) << "worst at x = " << worst;
  std::printf("max error %lld ulp (at x = %g)\n", static_cast<long long>(maxUlp), worst);
  RecordProperty("max_ulp", static_cast<int>(maxUlp));
}

TEST_P(ApproximateExp, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> in = {-inf, -1e4f, -200.0f, -104.0f, 0.0f, -0.0f, nan,
                           1.0f, -1.0f, 88.0f, -88.0f, -87.5f, 10.0f, -10.0f,
                           0.5f, -0.5f};
  std::vector<float> out = compiledExp(in, GetParam());
  // exp(-inf) and deep underflow are exactly 0: a masked score contributes
  // nothing to the softmax.
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_EQ(out[4], 1.0f);
  EXPECT_EQ(out[5], 1.0f);
  EXPECT_TRUE(std::isnan(out[6])); // NaN propagates
  EXPECT_LE(ulpDistance(out[7], std::exp(1.0f)), 3);
  EXPECT_LE(ulpDistance(out[8], std::exp(-1.0f)), 3);
  EXPECT_TRUE(std::isfinite(out[9]));
  EXPECT_GE(out[10], 0.0f);
  EXPECT_LT(out[10], 1e-37f);
  std::vector<float> big = compiledExp(
      {88.8f, 100.0f, 1e4f, std::numeric_limits<float>::infinity(), 0, 0, 0, 0,
       0, 0, 0, 0, 0, 0, 0, 0},
      GetParam());
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(big[i], std::numeric_limits<float>::infinity()) << "lane " << i;
}

INSTANTIATE_TEST_SUITE_P(Codegen, ApproximateExp, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "AVX512" : "Generic";
                         });

} // namespace
