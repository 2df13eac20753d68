//===- CPUTarget.cpp - x86-64 CPU target levels ---------------------------===//
//
// The table of CPU target levels (see CPUTarget.h). Feature names are LLVM's
// (llvm::sys::getHostCPUFeatures, target-features); the levels' base CPUs
// are LLVM's names of the x86-64 psABI levels.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/CPU/CPUTarget.h"

#include "llvm/TargetParser/Host.h"

#include <algorithm>

using namespace mlir::attn;

namespace {
// What a CPU must have for each level's code: the psABI level's features
// that the code generator may use, then the level's additions.
const llvm::StringRef kV3Features[] = {"avx", "avx2", "fma",   "f16c",
                                       "bmi", "bmi2", "lzcnt", "movbe"};
const llvm::StringRef kV4Features[] = {
    "avx",   "avx2",    "fma",      "f16c",     "bmi",      "bmi2",    "lzcnt",
    "movbe", "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"};
const llvm::StringRef kV4BF16Features[] = {
    "avx",      "avx2",     "fma",      "f16c",      "bmi",
    "bmi2",     "lzcnt",    "movbe",    "avx512f",   "avx512bw",
    "avx512cd", "avx512dq", "avx512vl", "avx512bf16"};
const llvm::StringRef kV4AMXFeatures[] = {
    "avx",      "avx2",       "fma",      "f16c",     "bmi",      "bmi2",
    "lzcnt",    "movbe",      "avx512f",  "avx512bw", "avx512cd", "avx512dq",
    "avx512vl", "avx512bf16", "amx-tile", "amx-bf16"};

CPUTargetInfo makeLevel(llvm::StringRef name, llvm::StringRef summary,
                        llvm::StringRef llvmCPU, llvm::StringRef llvmFeatures,
                        llvm::ArrayRef<llvm::StringRef> required, bool avx512,
                        bool bf16, bool amx) {
  CPUTargetInfo t;
  t.name = name;
  t.summary = summary;
  t.llvmCPU = llvmCPU;
  t.llvmFeatures = llvmFeatures;
  t.requiredFeatures = required;
  t.vectorWidth = avx512 ? 16 : 8;
  t.vectorRegisters = avx512 ? 32 : 16;
  t.avx512f = avx512;
  t.avx512bf16 = bf16;
  t.amxBf16 = amx;
  return t;
}

const CPUTargetInfo kLevels[] = {
    makeLevel("x86-64-v3",
              "AVX2 + FMA + F16C: 8 f32 lanes, 16 ymm registers; bf16 "
              "converted with integer arithmetic",
              "x86-64-v3", "", kV3Features, false, false, false),
    makeLevel("x86-64-v4",
              "AVX-512: 16 f32 lanes, 32 zmm registers, vscalefps in exp",
              "x86-64-v4", "", kV4Features, true, false, false),
    makeLevel("x86-64-v4-bf16",
              "x86-64-v4 + AVX512-BF16: bf16 Q K^T with vdpbf16ps, bf16 "
              "conversions in hardware",
              "x86-64-v4", "+avx512bf16", kV4BF16Features, true, true, false),
    makeLevel("x86-64-v4-amx",
              "x86-64-v4-bf16 + AMX: bf16 Q K^T and P V on AMX tiles",
              "x86-64-v4", "+avx512bf16,+amx-tile,+amx-bf16", kV4AMXFeatures,
              true, true, true),
};
} // namespace

CPUTargetInfo::RegisterBlock
CPUTargetInfo::fmaRegisterBlock(int64_t vectorRegisters, int64_t laneChunks) {
  int64_t accumulators = std::max<int64_t>(1, vectorRegisters * 3 / 4);
  RegisterBlock block;
  block.laneBlocks = std::clamp<int64_t>(laneChunks, 1, 4);
  auto rowsFor = [&](int64_t lanes) {
    return std::max<int64_t>(1, accumulators / lanes);
  };
  while (block.laneBlocks > 1 &&
         rowsFor(block.laneBlocks) * block.laneBlocks + block.laneBlocks + 1 >
             vectorRegisters)
    --block.laneBlocks;
  block.rows = rowsFor(block.laneBlocks);
  return block;
}

bool CPUTargetInfo::runsOn(const llvm::StringMap<bool> &hostFeatures,
                           std::string *missing) const {
  for (llvm::StringRef f : requiredFeatures)
    if (!hostFeatures.lookup(f)) {
      if (missing)
        *missing = f.str();
      return false;
    }
  return true;
}

llvm::ArrayRef<CPUTargetInfo> CPUTargetInfo::levels() { return kLevels; }

const CPUTargetInfo *CPUTargetInfo::lookup(llvm::StringRef name) {
  static const CPUTargetInfo generic = [] {
    CPUTargetInfo t;
    t.summary = "target-neutral: 16 f32 lanes, no optional x86 feature";
    return t;
  }();
  if (name == generic.name)
    return &generic;
  for (const CPUTargetInfo &level : kLevels)
    if (level.name == name)
      return &level;
  return nullptr;
}

std::string CPUTargetInfo::levelNames() {
  std::string names;
  for (const CPUTargetInfo &level : kLevels)
    names += (names.empty() ? "" : ", ") + level.name.str();
  return names;
}

llvm::SmallVector<CPUTargetInfo, 4> mlir::attn::hostCPUTargetLevels() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  llvm::SmallVector<CPUTargetInfo, 4> result;
  for (const CPUTargetInfo &level : kLevels)
    if (level.runsOn(features))
      result.push_back(level);
  return result;
}

CPUTargetInfo CPUTargetInfo::host() {
  llvm::SmallVector<CPUTargetInfo, 4> levels = hostCPUTargetLevels();
  return levels.empty() ? kLevels[0] : levels.back();
}
