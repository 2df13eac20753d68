//===- CPUTarget.h - x86-64 CPU target levels -------------------*- C++ -*-===//
//
// The one owner of what a CPU target may use. A CPU target is one of a few
// feature levels, after the x86-64 psABI's micro-architecture levels
// (x86-64-v3: AVX2 + FMA + F16C; x86-64-v4: AVX-512 F/BW/CD/DQ/VL) and the
// bf16 extensions on top of v4. A level decides both halves of the code
// generation: the MLIR lowering (f32 lanes, vector registers and the
// microkernels' register blocking, the exp expansion, bf16 dot products, AMX
// tiles) and LLVM's (target CPU and features, preferred vector width), so
// that code for a level runs on every CPU of that level and contains no
// instruction of a higher one. attn-cpu-pipeline's `cpu=` option and the
// runtime's CompileOptions::cpuTarget name a level; the default is the
// highest level the running CPU has (CPUTargetInfo::host()).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_CPU_CPUTARGET_H
#define ATTN_TRANSFORMS_CPU_CPUTARGET_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>

namespace mlir {
namespace attn {

struct CPUTargetInfo {
  /// The level's name: "generic", "x86-64-v3", "x86-64-v4",
  /// "x86-64-v4-bf16" or "x86-64-v4-amx".
  llvm::StringRef name = "generic";
  /// One line for users: what the level adds.
  llvm::StringRef summary = "";
  /// LLVM's target CPU for the level ("x86-64-v3", ...) and the features
  /// added to it ("+avx512bf16", ...; comma-separated).
  llvm::StringRef llvmCPU = "x86-64";
  llvm::StringRef llvmFeatures = "";
  /// Host features (LLVM's names, llvm::sys::getHostCPUFeatures) a CPU needs
  /// to run the level's code.
  llvm::ArrayRef<llvm::StringRef> requiredFeatures;
  /// f32 lanes of a vector register (8: AVX2, 16: AVX-512).
  int64_t vectorWidth = 16;
  /// Architectural vector registers (16 ymm: AVX2; 32 zmm: AVX-512).
  int64_t vectorRegisters = 32;
  /// AVX-512 instructions the x86vector dialect names (vscalefps in the
  /// softmax's exp).
  bool avx512f = false;
  /// AVX512-BF16 dot products (vdpbf16ps) and conversions (vcvtneps2bf16);
  /// without them, f32 -> bf16 is expanded to integer arithmetic.
  bool avx512bf16 = false;
  /// AMX tiles for bf16 (amx-tile + amx-bf16; on Linux the process also
  /// needs the OS's permission before it runs such code).
  bool amxBf16 = false;

  /// The vector width LLVM should prefer, in bits (vectorWidth f32 lanes).
  int64_t vectorBits() const { return vectorWidth * 32; }

  /// Register blocking of the FMA and AVX512-BF16 microkernels
  /// (CPUTileScores.cpp) for `laneChunks` vectors across the lanes'
  /// dimension: a block of `rows` x `laneBlocks` accumulator vectors, three
  /// quarters of the registers (24 of 32 zmm, 12 of 16 ymm), with
  /// `laneBlocks` (at most 4) vectors of one operand and one broadcast live
  /// per step: rows * laneBlocks + laneBlocks + 1 <= vectorRegisters
  /// (AVX-512: 6 x 4; AVX2: 4 x 3).
  struct RegisterBlock {
    int64_t laneBlocks, rows;
  };
  static RegisterBlock fmaRegisterBlock(int64_t vectorRegisters,
                                        int64_t laneChunks);
  RegisterBlock fmaRegisterBlock(int64_t laneChunks) const {
    return fmaRegisterBlock(vectorRegisters, laneChunks);
  }

  /// Whether a CPU with `hostFeatures` (llvm::sys::getHostCPUFeatures) can
  /// run the level's code; otherwise the first feature it lacks is stored in
  /// `missing` when given.
  bool runsOn(const llvm::StringMap<bool> &hostFeatures,
              std::string *missing = nullptr) const;

  /// The levels the runtime compiles for, lowest first: x86-64-v3,
  /// x86-64-v4, x86-64-v4-bf16, x86-64-v4-amx.
  static llvm::ArrayRef<CPUTargetInfo> levels();
  /// The description named `name`: one of levels(), or "generic" (the
  /// target-neutral description of FileCheck tests: 16 f32 lanes, no
  /// optional x86 feature, baseline x86-64 for LLVM). Null for another name.
  static const CPUTargetInfo *lookup(llvm::StringRef name);
  /// The names of levels(), comma-separated, for messages.
  static std::string levelNames();
  /// The highest level the running CPU has (x86-64-v3 on an older one: the
  /// lowest the project supports). AMX counts when the CPU has amx-tile and
  /// amx-bf16; the runtime also asks the OS for the permission.
  static CPUTargetInfo host();
};

/// The levels of CPUTargetInfo::levels() the running CPU can run, lowest
/// first.
llvm::SmallVector<CPUTargetInfo, 4> hostCPUTargetLevels();

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_CPU_CPUTARGET_H
