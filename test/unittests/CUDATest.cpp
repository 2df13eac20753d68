//===- CUDATest.cpp - the CUDA target of the runtime ----------------------===//
//
// What can be checked without a GPU runs everywhere: kernels compile to PTX
// for sm_80 and sm_90 with the expected instructions and launch
// configuration, ptxas (when installed) assembles them without spills, and a
// missing device is a clean "no CUDA device" error. The tests that execute
// kernels compare with the CPU kernels and skip, saying why, when there is no
// device.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "attn/Runtime/CUDA.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>

using namespace attn;
using namespace attn::test;

namespace {

AttentionSpec benchmarkSpec(DType dtype, int64_t headDim, bool causal) {
  AttentionSpec spec;
  spec.batch = 1;
  spec.qHeads = spec.kvHeads = 8;
  spec.qLen = spec.kvLen = 1024;
  spec.headDim = spec.vHeadDim = headDim;
  spec.dtype = dtype;
  if (causal)
    spec.masks.push_back(causalMask(/*bottomRight=*/false));
  return spec;
}

bool contains(const std::string &s, const std::string &what) {
  return s.find(what) != std::string::npos;
}

/// Skips the test when no device can run kernels.
#define REQUIRE_CUDA_DEVICE()                                                  \
  do {                                                                         \
    if (llvm::Error err = cuda::checkDevice())                                 \
      GTEST_SKIP() << "needs a CUDA device: "                                  \
                   << llvm::toString(std::move(err));                          \
  } while (0)

TEST(CUDANoDevice, GetKernelReportsNoDevice) {
  if (!cuda::checkDevice())
    GTEST_SKIP() << "a CUDA device is present";
  Runtime rt;
  AttentionSpec spec = benchmarkSpec(DType::F16, 64, true);
  auto kernel = rt.getKernel(spec, Target::CUDA);
  ASSERT_FALSE(static_cast<bool>(kernel));
  std::string msg = llvm::toString(kernel.takeError());
  EXPECT_TRUE(contains(msg, "no CUDA device")) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  EXPECT_EQ(rt.cacheSize(), 0u) << "failures are not cached";
  // Every entry point that needs the driver says the same, never crashes.
  auto buffer = cuda::DeviceBuffer::allocate(1024);
  ASSERT_FALSE(static_cast<bool>(buffer));
  EXPECT_TRUE(contains(llvm::toString(buffer.takeError()), "no CUDA device"));
  auto chip = cuda::deviceChip();
  ASSERT_FALSE(static_cast<bool>(chip));
  EXPECT_TRUE(contains(llvm::toString(chip.takeError()), "no CUDA device"));
}

struct ImageCase {
  DType dtype;
  int64_t headDim;
  bool causal;
  const char *chip;
};

class CUDAImage : public ::testing::TestWithParam<ImageCase> {};

TEST_P(CUDAImage, CompilesWithoutDevice) {
  ImageCase c = GetParam();
  AttentionSpec spec = benchmarkSpec(c.dtype, c.headDim, c.causal);
  CompileOptions options;
  options.chip = c.chip;
  ASSERT_EXPECTED(image, compileCUDAKernelImage(spec, options));
  EXPECT_EQ(image.chip, c.chip);
  EXPECT_TRUE(contains(image.ptx, std::string(".target ") + c.chip));
  EXPECT_TRUE(contains(image.ptx, ".entry " + image.entry + "("));
  // K/V staging with cp.async, double buffered.
  EXPECT_TRUE(contains(image.ptx, "cp.async.cg.shared.global"));
  EXPECT_TRUE(contains(image.ptx, "cp.async.commit_group"));
  EXPECT_TRUE(contains(image.ptx, "cp.async.wait_group"));
  EXPECT_TRUE(contains(image.ptx, "shfl.sync.bfly.b32"));
  EXPECT_TRUE(contains(image.ptx, "ex2.approx.ftz.f32"));
  if (c.dtype == DType::F32) {
    EXPECT_FALSE(contains(image.ptx, "mma.sync"));
    EXPECT_TRUE(contains(image.ptx, "fma.rn.f32"));
    EXPECT_EQ(image.tileSizes, (mlir::attn::AttentionTileSizes{1, 1, 64, 32}));
    EXPECT_EQ(image.block, (std::array<int64_t, 3>{128, 1, 1}));
  } else {
    std::string t = c.dtype == DType::F16 ? "f16" : "bf16";
    EXPECT_TRUE(contains(image.ptx, "mma.sync.aligned.m16n8k16.row.col.f32." +
                                        t + "." + t + ".f32"));
    EXPECT_TRUE(
        contains(image.ptx, "ldmatrix.sync.aligned.m8n8.x4.shared.b16"));
    EXPECT_TRUE(
        contains(image.ptx, "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"));
    EXPECT_EQ(image.tileSizes, (mlir::attn::AttentionTileSizes{1, 1, 128, 64}));
    EXPECT_EQ(image.block, (std::array<int64_t, 3>{256, 1, 1}));
    // Two stages of a 64-key tile of keys and values, rows padded by 8.
    EXPECT_EQ(image.sharedBytes, 2 * 2 * 64 * (c.headDim + 8) * 2);
  }
  // query, key, value, output, in the kernel's order.
  std::vector<int> params = image.paramOperands;
  std::sort(params.begin(), params.end());
  EXPECT_EQ(params, (std::vector<int>{0, 1, 2, 3}));
  // Grid (heads, batch, query blocks).
  EXPECT_EQ(image.grid(1, 8, 1024),
            (std::array<int64_t, 3>{8, 1, 1024 / image.tileSizes.query}));
}

TEST_P(CUDAImage, AssemblesWithoutSpills) {
  auto ptxas = findPtxas();
  if (!ptxas)
    GTEST_SKIP() << llvm::toString(ptxas.takeError());
  ImageCase c = GetParam();
  CompileOptions options;
  options.chip = c.chip;
  ASSERT_EXPECTED(
      image, compileCUDAKernelImage(benchmarkSpec(c.dtype, c.headDim, c.causal),
                                    options));
  ASSERT_EXPECTED(result, assemblePTX(image.ptx, image.chip));
  EXPECT_FALSE(result.cubin.empty());
  EXPECT_EQ(result.spillStoreBytes, 0) << result.log;
  EXPECT_EQ(result.spillLoadBytes, 0) << result.log;
  EXPECT_EQ(result.stackBytes, 0) << result.log;
  EXPECT_GT(result.registers, 0) << result.log;
  EXPECT_LE(result.registers, 255) << result.log;
  EXPECT_LE(result.registers * image.block[0], 65536) << result.log;
}

std::string caseName(const ::testing::TestParamInfo<ImageCase> &info) {
  const ImageCase &c = info.param;
  return std::string(dtypeName(c.dtype)) + "_d" + std::to_string(c.headDim) +
         (c.causal ? "_causal_" : "_none_") + c.chip;
}

std::vector<ImageCase> allCases() {
  std::vector<ImageCase> cases;
  for (const char *chip : {"sm_80", "sm_90"})
    for (DType dtype : {DType::F16, DType::BF16, DType::F32})
      for (int64_t d : {64, 128})
        for (bool causal : {false, true})
          cases.push_back({dtype, d, causal, chip});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Kernels, CUDAImage, ::testing::ValuesIn(allCases()),
                         caseName);

TEST(CUDAImageErrors, BadChipAndUnsupportedSpecs) {
  AttentionSpec spec = benchmarkSpec(DType::F16, 64, false);
  CompileOptions options;
  options.chip = "sm_75";
  auto image = compileCUDAKernelImage(spec, options);
  ASSERT_FALSE(static_cast<bool>(image));
  EXPECT_EQ(llvm::toString(image.takeError()),
            "chip: 'sm_75' is not supported (expected sm_80 or sm_90)");

  AttentionSpec masked = spec;
  masked.masks.push_back(tensorMask(DType::Bool, true, true, false));
  auto withMask = compileCUDAKernelImage(masked);
  ASSERT_FALSE(static_cast<bool>(withMask));
  std::string msg = llvm::toString(withMask.takeError());
  EXPECT_TRUE(contains(msg, "tensor masks and biases are not supported"))
      << msg;

  AttentionSpec odd = spec;
  odd.headDim = odd.vHeadDim = 40;
  auto oddDim = compileCUDAKernelImage(odd);
  ASSERT_FALSE(static_cast<bool>(oddDim));
  msg = llvm::toString(oddDim.takeError());
  EXPECT_TRUE(contains(msg, "multiples of 16")) << msg;
}

TEST(CUDAImageOptions, LseKvLensDynamicSizesAndTileSizes) {
  AttentionSpec spec =
      dynamicSpec(8, 2, 64, 64, {causalMask(true), keyPaddingMask()},
                  DType::BF16, /*returnLse=*/true);
  CompileOptions options;
  options.tileSizes = mlir::attn::AttentionTileSizes{1, 1, 64, 64};
  ASSERT_EXPECTED(image, compileCUDAKernelImage(spec, options));
  EXPECT_EQ(image.chip, "sm_90");
  EXPECT_EQ(image.block, (std::array<int64_t, 3>{128, 1, 1}));
  // query, key, value, kv_lens, output, lse, in the kernel's order.
  std::vector<int> params = image.paramOperands;
  std::sort(params.begin(), params.end());
  EXPECT_EQ(params, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(contains(image.ptx, "lg2.approx.ftz.f32"));
  EXPECT_EQ(image.grid(3, 8, 100), (std::array<int64_t, 3>{8, 3, 2}));
}

//===----------------------------------------------------------------------===//
// On a device: CUDA against the CPU kernels
//===----------------------------------------------------------------------===//

struct DeviceCase {
  DType dtype;
  int64_t headDim, qLen, kvLen;
  std::vector<MaskSpec> masks;
};

class CUDADevice : public ::testing::TestWithParam<int> {};

std::vector<DeviceCase> deviceCases() {
  return {
      {DType::F16, 64, 256, 256, {}},
      {DType::F16, 128, 200, 333, {causalMask(false)}},
      {DType::BF16, 64, 130, 77, {causalMask(true)}},
      {DType::BF16, 128, 64, 1000, {keyPaddingMask()}},
      {DType::F32, 64, 100, 129, {causalMask(false)}},
      {DType::F32, 128, 1, 300, {}},
  };
}

TEST_P(CUDADevice, MatchesCPU) {
  REQUIRE_CUDA_DEVICE();
  DeviceCase c = deviceCases()[GetParam()];
  AttentionSpec spec =
      dynamicSpec(4, 2, c.headDim, c.headDim, c.masks, c.dtype, true);
  Problem p(spec, 2, c.qLen, c.kvLen);
  p.randomize(11, GetParam());
  AttentionArgs host = p.args();

  // The CPU kernel's result.
  ASSERT_EXPECTED(cpu, sharedRuntime().getKernel(spec, Target::CPU));
  ASSERT_NO_LLVM_ERROR(cpu->run(host));
  std::vector<double> cpuOut = p.output(), cpuLse = p.lseValues();

  // The same on the device.
  std::vector<cuda::DeviceBuffer> buffers;
  AttentionArgs dev = host;
  for (TensorRef *t : {&dev.query, &dev.key, &dev.value, &dev.mask, &dev.kvLens,
                       &dev.output, &dev.lse}) {
    if (t->empty())
      continue;
    size_t bytes = dtypeSize(t->dtype);
    for (int i = 0; i < t->rank; ++i)
      bytes *= t->shape[i];
    ASSERT_EXPECTED(buffer, cuda::DeviceBuffer::allocate(bytes));
    ASSERT_NO_LLVM_ERROR(buffer.copyFromHost(t->data, bytes));
    t->data = buffer.data();
    buffers.push_back(std::move(buffer));
  }
  ASSERT_EXPECTED(gpu, sharedRuntime().getKernel(spec, Target::CUDA));
  ASSERT_NO_LLVM_ERROR(gpu->run(dev));
  size_t outBytes = p.out.bytes.size(), lseBytes = p.lse.bytes.size();
  ASSERT_NO_LLVM_ERROR(
      buffers[buffers.size() - 2].copyToHost(p.out.bytes.data(), outBytes));
  ASSERT_NO_LLVM_ERROR(buffers.back().copyToHost(p.lse.bytes.data(), lseBytes));

  // f32: within the design's f32 bound; f16 / bf16: within twice the error
  // of the same-precision reference against f64, as for the CPU kernels.
  reference::Outputs ref = p.reference();
  if (c.dtype == DType::F32) {
    EXPECT_TRUE(matchesReference(p, ref));
  } else {
    std::vector<double> same = reference::samePrecisionAttention(spec, p.in);
    double bound = 2 * maxAbsError(same, ref.output) + 1e-3;
    EXPECT_LE(maxAbsError(p.output(), ref.output), bound);
  }
  std::vector<double> lse = p.lseValues();
  double lseErr = 0;
  for (size_t i = 0; i < lse.size(); ++i)
    if (lse[i] != cpuLse[i])
      lseErr = std::max(lseErr, std::isnan(lse[i] - cpuLse[i])
                                    ? INFINITY
                                    : std::fabs(lse[i] - cpuLse[i]));
  EXPECT_LE(lseErr, 1e-3);
  (void)cpuOut;
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, CUDADevice,
    ::testing::Range(0, static_cast<int>(deviceCases().size())));

} // namespace
