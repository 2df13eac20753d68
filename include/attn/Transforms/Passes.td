//===- Passes.td - attn transformation passes --------------*- tablegen -*-===//

#ifndef ATTN_TRANSFORMS_PASSES_TD
#define ATTN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def FuseAttentionPass : Pass<"attn-fuse-attention"> {
  let summary = "Find unfused attention in linalg on tensors and replace it "
                "by attn.attention";
  let description = [{
    Matches scaled dot-product attention as frameworks export it to linalg
    on tensors (torch-mlir's `linalg-on-tensors`; lib/Transforms/
    FuseAttention.cpp has the full list): the head-split
    `tensor.collapse_shape`s, `linalg.batch_matmul` of Q and K^T
    (`linalg.transpose` of K, or of the [B, S, H, D] projection), constant
    scales (on the scores, Q, K or K^T), masks (-inf selects or additive
    0 / -inf tensors: evaluated for the static shape and turned into
    `#attn.causal` / `#attn.sliding_window` when they are a band, else the
    `mask` or `bias` operand), an additive bias after the scale, the softmax
    over the last dimension (`linalg.softmax` or its max / sub / exp / sum /
    div decomposition, with or without the max subtraction, with or without
    the zeroing of rows that see no key), K and V repeated for GQA, and the
    `linalg.batch_matmul` with V, expanded back to [B, H, Sq, Dv]. The
    expansion is replaced by one `attn.attention`; the unfused ops become
    dead and are erased. Look-alikes (softmax over another dimension, a
    scale read from a tensor, statistics of another tensor, a bias before
    the scale, dynamic shapes) are left alone.

    Example: `attn-opt exported.mlir --attn-fuse-attention
    --attn-cpu-pipeline`.
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect",
                           "::mlir::tensor::TensorDialect"];
}

def TileAttentionPass : Pass<"attn-tile-attention"> {
  let summary = "Tile attention into workgroups and key/value blocks (flash)";
  let description = [{
    Tiles every `attn.attention` (and every `attn.online_attention` left by
    `attn-convert-to-online-attention`) into:

    * an `scf.forall` over (batch, q_head, query-block) tiles, mapped to
      workgroups (`#gpu.block<z/y/x>`); for causal masks the query blocks are
      visited from the last (longest) to the first;
    * inside it, the online-softmax form of the tile (running max, sum and
      accumulator initialised by `linalg.fill`, normalised at the end), with
      the key/value reduction as an `scf.for` over `attn.online_attention`
      tiles.

    The key/value loop only visits the blocks that the compile-time mask kind
    (causal, sliding window), `kv_bound` and, for batch tile 1, `kv_lens`
    leave visible: fully masked blocks are skipped. Partial tiles at the end
    of a dimension are padded to the tile size so that every tiled op has a
    static shape; padded keys are hidden through `kv_bound`.

    Tile sizes are (batch, heads, query, key); the head tile must divide
    q_heads and either divide or be a multiple of the GQA group size.

    Without `tile-sizes`, `target=cpu` or `target=cuda` chooses the tile
    sizes of each op from its sizes, element type and masks with the
    compiler's selection for that target (include/attn/Transforms/
    TileSelection.h: the same function the runtime asks, so attn-opt and the
    runtime produce the same kernel); with neither, 1,1,64,64.

    Example: `attn-opt --attn-tile-attention="tile-sizes=1,1,64,32"`,
    `attn-opt --attn-tile-attention="target=cpu cpu-amx=true"`.
  }];
  let dependentDialects = [
    "::mlir::affine::AffineDialect", "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
  let options = [
    ListOption<"tileSizes", "tile-sizes", "int64_t",
               "Tile sizes for (batch, heads, query, key); default: chosen "
               "for `target`, or 1,1,64,64">,
    Option<"target", "target", "std::string", /*default=*/"\"\"",
           "Choose tile sizes per op for this target when tile-sizes is "
           "empty: 'cpu' or 'cuda'">,
    Option<"cpuAmx", "cpu-amx", "bool", /*default=*/"false",
           "target=cpu: bf16 tiles for AMX (128 x 128, 32-key steps)">,
    Option<"cpuVectorWidth", "cpu-vector-width", "int64_t", /*default=*/"16",
           "target=cpu: f32 lanes of a vector register">,
  ];
}

def InferMaskBandPass : Pass<"attn-infer-mask-band"> {
  let summary = "Narrow an attention's mask_kind to the band its mask_mod "
                "implies";
  let description = [{
    For each `attn.attention` and `attn.online_attention` with a `mask_mod`
    region and no offsets, intersects its `mask_kind` (absent or top-left)
    with the band of keys the region keeps at most
    (`mlir::attn::impliedKeyBand`: comparisons of affine forms in q_idx and
    kv_idx, through maxsi / minsi, combined with and / or / not), so that
    `attn-tile-attention` skips the tiles outside it; the region still
    decides inside. A region that bounds nothing, an op with offsets or a
    bottom-right mask_kind is left as it is. Example: a mask_mod yielding
    `arith.cmpi sle, %kv_idx, %q_idx` gives `mask_kind = #attn.causal`.
  }];
}

def ConvertToOnlineAttentionPass : Pass<"attn-convert-to-online-attention"> {
  let summary = "Rewrite attn.attention into its online-softmax form";
  let description = [{
    Replaces each `attn.attention` with `linalg.fill` initialisers of the
    running state (acc = 0, max = -inf, sum = 0), one
    `attn.online_attention` over all keys, and a `linalg.generic` that
    normalises (`out = acc / sum`, 0 where `sum = 0`) and computes the
    log-sum-exp (`max + log(sum)`, -inf where `sum = 0`). Tiling the
    `online_attention` along keys then gives the flash algorithm.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect"
  ];
}

def DecomposeOnlineAttentionPass : Pass<"attn-decompose-online-attention"> {
  let summary = "Decompose attn.online_attention into linalg on tensors";
  let description = [{
    Lowers every `attn.online_attention` into `linalg.generic` ops on tensors:
    the Q K^T contraction (f32 accumulation), scaling, bias and masking
    (masked scores become -inf by selection, so NaN/Inf in hidden keys never
    propagates), the running-max update, exp, the rescaled running sum, and
    the rescaled P V contraction. Values of keys that no row of the tile
    keeps are zeroed before P V, so NaN/Inf there cannot reach the output.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect"
  ];
}

//===----------------------------------------------------------------------===//
// CPU code generation
//===----------------------------------------------------------------------===//

def CPUDistributeWorkgroupsPass
    : Pass<"attn-cpu-distribute-workgroups", "::mlir::func::FuncOp"> {
  let summary = "Run the workgroup scf.forall as a loop over a range of "
                "workgroup ids";
  let description = [{
    The CPU runtime owns the threads: a kernel entry receives the half-open
    range [begin, end) of linear workgroup ids that one thread should run, as
    the two index arguments marked `attn.workgroup_begin` and
    `attn.workgroup_end`. This pass turns the function's workgroup
    `scf.forall` (the one with `#gpu.block` mapping made by
    `attn-tile-attention`) into an `scf.for` over that range, delinearising
    each id into (batch, head, query-block) with the x dimension fastest.
    Functions without those arguments get a loop over every workgroup.
  }];
  let dependentDialects = [
    "::mlir::affine::AffineDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def CPUHoistStaticAllocationsPass
    : Pass<"attn-cpu-hoist-static-allocations", "::mlir::func::FuncOp"> {
  let summary = "Hoist statically shaped tile buffers to the function entry";
  let description = [{
    After bufferization every tile temporary (score tile, padded key/value
    block, row statistics) is a `memref.alloc` with a static shape inside
    the workgroup and key loops, possibly under an `scf.if`. One-shot
    bufferization never carries such a buffer across iterations, so each
    can be allocated once per function call instead: this pass moves them to
    the entry block (upstream `buffer-loop-hoisting` stops at `scf.if`).
    Buffers inside `scf.forall` / `scf.parallel` stay where they are, since
    their iterations may run concurrently. Run `promote-buffers-to-stack`
    afterwards to turn them into stack buffers.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def CPULowerCopiesPass
    : Pass<"attn-cpu-lower-copies", "::mlir::func::FuncOp"> {
  let summary = "Rewrite memref.copy into linalg.copy";
  let description = [{
    Bufferization copies padded tiles with `memref.copy`, which the LLVM
    lowering turns into a call to the generic `memrefCopy` of MLIR's runner
    utilities for strided memrefs. This pass turns each copy into a
    `linalg.copy` so that it is lowered (and vectorized) with the rest of the
    kernel, and the JIT needs no runtime library.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def CPUDecomposeOnlineAttentionPass
    : Pass<"attn-cpu-decompose-online-attention", "::mlir::func::FuncOp"> {
  let summary = "Decompose CPU online-attention tiles into linalg stages on "
                "tensors";
  let description = [{
    Rewrites every `attn.online_attention` tile (tensors, static sizes, after
    `attn-tile-attention`) into `linalg.generic` stages per (batch, query
    head) of the tile, each tagged `attn.cpu_stage`, in the layout the CPU
    target wants:

    * `query`: the query tile scaled and transposed (queries on the lanes)
      or paired for bf16 dot products, placed after the query's definition,
      so outside the key loop, and shared by the tiles of one query block;
    * `scores`: the Q K^T contraction, S^T[j][m] (`attn.cpu_scheme` fma,
      bf16_dot or amx) or S[m][j] for tiles of at most 4 rows (keys on the
      lanes, scheme rows);
    * `score`: the one elementwise score stage (scale where the contraction
      does not apply it, bias, tensor mask, the mask kind's band test and
      the key range), where a tile inside the band skips the band test;
    * `max`, `alpha`, `exp_sum`: the running max over the keys [jLo, jHi)
      that some row keeps, m' = max(m, r), alpha = exp(m - m'), and
      P = exp(S - m') with l' = alpha l + sum_j P;
    * `rescale` and `pv`: acc = alpha acc + P V over the keys each row keeps.

    Every stage's region is its exact semantics: lowered to loops, the
    stages compute the tile. `attn-cpu-lower-stages` lowers them to vector
    code after bufferization. `vector-width` is the number of f32 lanes (16
    for AVX-512, 8 for AVX2).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"16",
           "Number of f32 lanes of a vector register">,
    Option<"bf16Dot", "bf16-dot", "bool", /*default=*/"false",
           "Pair the query of bf16 tiles for AVX512-BF16 dot products "
           "(vdpbf16ps)">,
    Option<"amx", "amx", "bool", /*default=*/"false",
           "Compute Q K^T and P V of bf16 tiles on AMX tiles (needs "
           "amx-bf16), P rounded to bf16; tiles whose rows are not a "
           "multiple of 16, keys of 32 or that have tensor masks keep the "
           "vector schemes">,
  ];
}

def CPUPlanStagesPass
    : Pass<"attn-cpu-plan-stages", "::mlir::func::FuncOp"> {
  let summary = "Decide on tensors how each linalg stage of a CPU tile is "
                "lowered";
  let description = [{
    Runs on tensors, after `attn-cpu-decompose-online-attention` and before
    bufferization. For each `linalg.generic` tagged `attn.cpu_stage`, records
    as `attn.cpu_kernel` the microkernel family its structure (iterator
    types, indexing maps and whole body) computes (`loops` for none), and
    tags with `attn.cpu_folded_into` each producer a microkernel folds in:
    the zero fill of a score contraction's output, the -inf fill of a row
    max, and the row rescale stage of the P V accumulator, each only where
    its result is the stage's init operand and the stage is its only reader.
    After bufferization `attn-cpu-lower-stages` follows the plan where the
    stage still matches it. `remarks` emits a remark per stage with the
    decision.
  }];
  let options = [
    Option<"remarks", "remarks", "bool", /*default=*/"false",
           "Emit a remark per stage naming the planned lowering">,
  ];
}

def CPULowerStagesPass
    : Pass<"attn-cpu-lower-stages", "::mlir::func::FuncOp"> {
  let summary = "Lower the bufferized linalg stages of CPU tiles to "
                "register-blocked vector code";
  let description = [{
    Lowers each `linalg.generic` tagged `attn.cpu_stage` by
    `attn-cpu-decompose-online-attention` (on buffers) with the microkernel
    that `attn-cpu-plan-stages` chose on tensors, where the stage's
    structure (its iterator types, indexing maps and whole body:
    CPUStageMatch.cpp) still computes that function; the stage tags are
    hints only (AMX or AVX512-BF16 for the same contraction):

    * `scores`: S^T = K Q^T in register blocks of up to 24 accumulators,
      each key element broadcast (fma), AVX512-BF16 dot products
      (x86vector.avx512.dot), AMX tile products (amx.tile_mulf), or keys on
      the lanes with the horizontal sums of 16 keys done at once (rows); the
      zero fill of its output (planned on tensors) is folded in;
    * `score` and `alpha`: the region vectorized along the innermost loop
      (whatever the region holds: this is where a score modification goes);
    * `max` and `exp_sum`: lane-wise over queries (no horizontal
      reductions), only over the keys some row keeps, or per row with keys
      on the lanes;
    * `rescale` + `pv`: acc = alpha * acc + P V in register blocks with the
      value dimension on the lanes, each probability broadcast, guarded per
      row where a key is kept by only some rows, so hidden (even NaN) values
      never reach a row (or AMX tile products on transposed bf16 P).

    A stage that matches none of these (an edited body, another reduction,
    a test the guard does not know) stays a `linalg.generic`, lowered to
    loops later, which computes what its body says. `remarks` emits a remark
    per stage naming the lowering it took or why it was left to loops. `vector-width` is the number of f32 lanes, `vector-registers`
    the number of vector registers the microkernels block for
    (CPUTargetInfo::fmaRegisterBlock: 6 x 4 accumulators of 32 zmm, 4 x 3 of
    16 ymm).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect", "::mlir::x86vector::X86VectorDialect",
    "::mlir::amx::AMXDialect"
  ];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"16",
           "Number of f32 lanes of a vector register">,
    Option<"vectorRegisters", "vector-registers", "int64_t",
           /*default=*/"32",
           "Number of vector registers (16: AVX2, 32: AVX-512)">,
    Option<"remarks", "remarks", "bool", /*default=*/"false",
           "Emit a remark per stage naming the lowering it took (or why it "
           "was left to loops)">,
  ];
}

def CPUApproximateMathPass
    : Pass<"attn-cpu-approximate-math", "::mlir::func::FuncOp"> {
  let summary = "Replace math.exp with a vectorizing polynomial";
  let description = [{
    Replaces `math.exp` with a polynomial instead of a call to `expf`.
    With `avx512`, exp of `vector<16xf32>` (the online softmax's) becomes the
    usual AVX-512 scheme: range reduction x = k ln2 + r (Cody-Waite, two
    constants), Cephes expf's degree-5 polynomial for e^r, and vscalefps
    (x86vector.avx512.mask.scalef) for e^r * 2^k, which also gives +inf on
    overflow and 0 on underflow: 15 instructions. Other exps (and all of
    them without `avx512`) use MLIR's math expansion (range reduction to
    exp2 of a fraction, a degree-5 minimax polynomial, exponent
    reconstruction by integer bit manipulation). Measured by
    test/unittests/CodegenTest.cpp (ApproximateExp) against std::exp over
    205,000 points of [-87, 88], both at most 1 ulp of f32 (the test allows
    3); exp(-inf) and results below 2^-126 are exactly 0 (the AVX-512 form
    keeps denormal results down to 2^-149), NaN propagates. `math.tanh`
    (soft-capping in a score_mod) is replaced by MLIR's rational
    approximation too: a JIT-compiled kernel links no libm `tanhf`.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::vector::VectorDialect", "::mlir::x86vector::X86VectorDialect"
  ];
  let options = [
    Option<"avx512", "avx512", "bool", /*default=*/"false",
           "Expand exp of vector<16xf32> with AVX-512 vscalefps (needs a CPU "
           "with avx512f)">,
  ];
}

def CPUExpandBF16Pass : Pass<"attn-cpu-expand-bf16", "::mlir::ModuleOp"> {
  let summary = "Keep bf16 out of LLVM's arithmetic on CPUs without "
                "AVX512-BF16";
  let description = [{
    On CPU targets without AVX512-BF16 (x86-64-v3, x86-64-v4), LLVM
    legalises every bf16 value in a register by widening it to f32, and
    narrows it back with a call of compiler-rt's `__truncsfbf2`, which a
    JIT-loaded kernel cannot resolve. This pass leaves LLVM no bf16
    arithmetic:
    * `arith.truncf` to bf16 and `arith.extf` from bf16 (scalars and vectors)
      become bitcasts, shifts and integer adds, with MLIR's arith expansion
      patterns (`arith::populateExpandBFloat16Patterns`): f32 -> bf16
      rounds to nearest, ties to even, and keeps NaN a (quiet) NaN; bf16 ->
      f32 is exact;
    * `llvm.store` of a bf16 value stores its 16 bits as i16 instead (the
      same bytes), so that LLVM's optimiser cannot turn the integer select of
      the expansion into a select of bf16 values (which the x86 backend
      widens and narrows through `__truncsfbf2`).
    attn-cpu-pipeline runs it twice for every target description without
    `avx512bf16`: before the lowering to the LLVM dialect (the arith ops) and
    after it (the stores). Other ops are left alone.

    Example:
    ```mlir
    %b = arith.truncf %x : vector<8xf32> to vector<8xbf16>
    // becomes arith.bitcast / arith.shrui / arith.addi / arith.select on
    // vector<8xi32> and an arith.trunci to vector<8xi16>
    llvm.store %v, %p : vector<8xbf16>, !llvm.ptr
    // becomes llvm.store of llvm.bitcast %v to vector<8xi16>
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

//===----------------------------------------------------------------------===//
// CUDA code generation
//===----------------------------------------------------------------------===//

def MemRefKernelInterfacePass
    : Pass<"attn-memref-kernel-interface", "::mlir::ModuleOp"> {
  let summary = "Give functions on tensors the runtime's memref kernel "
                "interface";
  let description = [{
    Rewrites every public function with a body whose arguments or results
    are ranked tensors into the interface of the runtime's kernel modules,
    which `attn-cuda-lower-attention` expects:

    * each tensor argument becomes a memref of the same shape and element
      type with dynamic strides and unit innermost stride
      (`strided<[?, ..., ?, 1]>`), read through `bufferization.to_tensor
      restrict`;
    * each tensor result becomes a trailing memref argument of that layout,
      written at every return by `bufferization.materialize_in_destination
      restrict writable`; the function then returns its other results.

    Functions without tensors in their signature (the runtime's own kernel
    modules) are left alone. Errors: a function that is called within the
    module (its callers would need rewriting), unranked tensors, or a
    returned value that is also a function argument (the output would alias
    an input).

    Example: `attn-opt --attn-memref-kernel-interface` on
    `func.func @f(%q: tensor<1x2x64x32xf16>, ...) -> tensor<1x2x64x32xf16>`
    gives `func.func @f(%q: memref<1x2x64x32xf16, strided<[?, ?, ?, 1]>>,
    ..., %out0: memref<1x2x64x32xf16, strided<[?, ?, ?, 1]>>)`.
  }];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect"];
}

def CUDALowerAttentionPass
    : Pass<"attn-cuda-lower-attention", "::mlir::func::FuncOp"> {
  let summary = "Lower tiled attention workgroups to pipelined CUDA kernels";
  let description = [{
    Rewrites every workgroup `scf.forall` made by `attn-tile-attention`
    (`#gpu.block` mapping; batch and head tiles of 1) on tensors read from
    memrefs (`bufferization.to_tensor`) and written back with
    `bufferization.materialize_in_destination`, as the runtime's kernel
    module is, into a `gpu.launch`:

    * one thread block per (batch, head, query block), launched as grid
      (heads, batch, query blocks) so that the query block varies slowest
      (with the longest-first order of causal tiling, the longest blocks of
      every head start first);
    * the key loop of the tiled IR (its bounds, which skip key blocks the
      masks hide, and the padded tail block) becomes one loop over key
      blocks, software pipelined: the key and value tiles of the next block
      are copied global -> shared with `nvgpu.device_async_copy` (cp.async,
      rows past the keys' end or hidden by `kv_bound` / `kv_lens`
      zero-filled) into a double buffer while the current one is computed
      (`nvgpu.device_async_create_group` / `nvgpu.device_async_wait`);
    * f16 / bf16: a warp per 16 query rows; the query fragments, the running
      max / sum and the f32 accumulator live in registers (vector iter_args
      of the key loop); S = Q K^T and O += P V with `nvgpu.mma.sync`
      m16n8k16 (`nvvm.mma.sync` for bf16, which MLIR 22's nvgpu op cannot
      type), B fragments by `nvgpu.ldmatrix`, P re-packed from the S
      accumulators in registers (FlashAttention-2); row max through
      `gpu.shuffle xor` within the four lanes of a row;
    * f32: FMA on CUDA cores (4 rows x block_k / 8 keys per thread), P
      through shared memory;
    * per-element masks only in key blocks that straddle the causal /
      sliding-window band or the key limit; a warp skips blocks the mask
      hides from all its rows;
    * the epilogue normalises (`acc / l`, 0 for rows with no kept key) and
      writes the log-sum-exp when requested.

    Tensor masks and biases are not supported (diagnosed). `chip` selects
    the target description (shared-memory limit, available instructions).

    Example: `attn-opt --attn-tile-attention="tile-sizes=1,1,64,64"
    --canonicalize --attn-cuda-lower-attention="chip=sm_80"`.
  }];
  let dependentDialects = [
    "::mlir::affine::AffineDialect", "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect", "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect", "::mlir::vector::VectorDialect"
  ];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_90\"",
           "CUDA chip: sm_80 or sm_90">,
  ];
}

#endif // ATTN_TRANSFORMS_PASSES_TD
