//===- Pipelines.h - attn pass pipelines ------------------------*- C++ -*-===//
#ifndef ATTN_PIPELINES_PIPELINES_H
#define ATTN_PIPELINES_PIPELINES_H

#include "attn/Transforms/CPU/CPUTarget.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir {
namespace attn {

/// Options of attn-cpu-pipeline.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  ListOption<int64_t> tileSizes{
      *this, "tile-sizes",
      llvm::cl::desc("Tile sizes (batch, heads, query, key); default: the "
                     "compiler's choice for each op on this CPU target "
                     "(TileSelection.h), as the runtime makes it")};
  /// Tile code generation of attn-cpu-pipeline.
  enum class Codegen { Vector, Linalg };
  Option<Codegen> codegen{
      *this, "codegen",
      llvm::cl::desc("Tile code generation: 'vector' (default: bufferize the "
                     "online-attention tiles and lower them to register-blocked "
                     "vector code) or 'linalg' (the target-neutral "
                     "decomposition into linalg.generic, lowered to loops)"),
      llvm::cl::init(Codegen::Vector),
      llvm::cl::values(clEnumValN(Codegen::Vector, "vector",
                                  "register-blocked vector code"),
                       clEnumValN(Codegen::Linalg, "linalg",
                                  "linalg.generic lowered to loops"))};
  /// The CPU target description the pipeline starts from
  /// (attn/Transforms/CPU/CPUTarget.h).
  Option<std::string> cpu{
      *this, "cpu",
      llvm::cl::desc("CPU target: 'host' (default: the highest level the CPU "
                     "this runs on has, as the runtime compiles), a level "
                     "('x86-64-v3': AVX2, 8 f32 lanes; 'x86-64-v4': AVX-512, "
                     "16 lanes; 'x86-64-v4-bf16': + AVX512-BF16; "
                     "'x86-64-v4-amx': + AMX) or 'generic' (16 f32 lanes, no "
                     "optional x86 feature); vector-width, avx512, bf16-dot "
                     "and amx given explicitly override it"),
      llvm::cl::init("host")};
  Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("f32 lanes of a vector register (8: AVX2, 16: AVX-512); "
                     "default: the cpu target's"),
      llvm::cl::init(16)};
  Option<bool> bf16Dot{
      *this, "bf16-dot",
      llvm::cl::desc("Q K^T of bf16 tiles with AVX512-BF16 dot products "
                     "(needs a CPU with avx512_bf16)"),
      llvm::cl::init(false)};
  Option<bool> avx512{
      *this, "avx512",
      llvm::cl::desc("Use AVX-512 instructions the x86vector dialect names "
                     "(vscalefps in the softmax's exp; needs avx512f)"),
      llvm::cl::init(false)};
  Option<bool> amx{
      *this, "amx",
      llvm::cl::desc("Q K^T and P V of bf16 tiles on AMX tiles (needs a CPU "
                     "with amx-bf16 and, on Linux, the process's AMX "
                     "permission)"),
      llvm::cl::init(false)};
  Option<bool> reference{
      *this, "reference",
      llvm::cl::desc("Use the unfused reference lowering (convert-attn-to-"
                     "linalg) instead of the flash path: the whole score "
                     "matrix in memory, no workgroups"),
      llvm::cl::init(false)};
  Option<bool> lowerToLLVM{
      *this, "lower-to-llvm",
      llvm::cl::desc("Lower all the way to the LLVM dialect (default true); "
                     "false stops after bufferization"),
      llvm::cl::init(true)};
};

/// attn.attention on tensors -> LLVM dialect for the host CPU, through the
/// flash path: attn-tile-attention, attn-cpu-decompose-online-attention
/// (linalg stages on tensors; with codegen=linalg,
/// attn-decompose-online-attention), workgroup distribution, one-shot
/// bufferization, attn-cpu-lower-stages (the stages' microkernels), the polynomial exp,
/// then the standard lowering to LLVM. The Sq x Sk score matrix is never
/// materialised: only [tile_k, tile_q] score tiles are.
/// Fails, adding nothing, when `options` name no CPU target
/// (resolveCPUTarget), with the message passed to `errorHandler` when given.
LogicalResult buildCPUPipeline(
    OpPassManager &pm, const CPUPipelineOptions &options,
    function_ref<LogicalResult(const Twine &)> errorHandler = nullptr);

/// The CPU target description `options` name: the `cpu` level ("host": the
/// running CPU's, CPUTargetInfo::host()), then each of vector-width, avx512,
/// bf16-dot and amx that was given explicitly. Error: "cpu: unknown CPU
/// target 'NAME' (known: host, generic, x86-64-v3, ...)".
FailureOr<CPUTargetInfo> resolveCPUTarget(const CPUPipelineOptions &options,
                                          std::string &error);

/// Options of attn-cuda-pipeline.
struct CUDAPipelineOptions : public PassPipelineOptions<CUDAPipelineOptions> {
  ListOption<int64_t> tileSizes{
      *this, "tile-sizes",
      llvm::cl::desc("Tile sizes (batch, heads, query, key); batch and heads "
                     "must be 1; default: the compiler's choice for each op "
                     "(TileSelection.h), as the runtime makes it")};
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("CUDA chip: sm_80 or sm_90"),
                           llvm::cl::init("sm_90")};
  Option<std::string> emit{
      *this, "emit",
      llvm::cl::desc("Where to stop: 'kernel' (gpu.launch in the function), "
                     "'nvvm' (outlined gpu.module in the NVVM / LLVM "
                     "dialects) or 'isa' (default: gpu.binary holding PTX)"),
      llvm::cl::init("isa")};
};

/// attn.attention on tensors read from memrefs (the runtime's kernel module)
/// -> attn-tile-attention -> attn-cuda-lower-attention (a pipelined
/// gpu.launch) -> gpu-kernel-outlining -> nvvm-attach-target -> NVVM ->
/// gpu-module-to-binary{format=isa}: the kernel as PTX text in a gpu.binary.
/// The host function keeps its gpu.launch_func (the runtime launches the
/// kernel through the driver API).
void buildCUDAPipeline(OpPassManager &pm, const CUDAPipelineOptions &options);

/// Registers attn-cpu-pipeline and attn-cuda-pipeline.
void registerAttnPipelines();

} // namespace attn
} // namespace mlir

#endif // ATTN_PIPELINES_PIPELINES_H
