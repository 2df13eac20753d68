#!/usr/bin/env python3
"""Performance model of the attn-mlir CUDA kernels on an H100 SXM5 (sm_90).

No GPU is needed: the kernels' resources come from ptxas (through
`attn-run SPEC --target cuda --chip sm_90 --emit-cubin`), the work from the
kernels' structure (tile sizes, causal block and warp skipping), and the
machine from its data sheet. See docs/gpu-performance-model.md for the model
and its assumptions; this script prints the tables of that document.

    python3 benchmarks/gpu_perf_model.py --attn-run build/bin/attn-run

Every number it prints is a projection, not a measurement.
"""

import argparse
import json
import math
import os
import subprocess
import tempfile

# H100 SXM5 (sm_90). Peak dense f16/bf16 tensor throughput (989.4 TFLOP/s)
# is 4096 FLOP/clk/SM at 1.83 GHz on 132 SMs, through wgmma.
H100 = dict(sms=132, clock_hz=1.83e9, tensor_flop_per_clk=4096,
            fp32_lanes_per_clk=128, mufu_per_clk=16, smem_bytes_per_clk=128,
            hbm_bytes_per_s=3.35e12, l2_bytes_per_s=5.5e12,
            regs_per_sm=65536, smem_per_sm=228 * 1024, max_threads=2048,
            max_blocks=32)

# Assumptions (docs/gpu-performance-model.md, "Assumptions").
MMA_SYNC_EFFICIENCY = 0.66  # mma.sync vs the wgmma peak on Hopper
OVERLAP = 0.5               # share of softmax ALU / MUFU time hidden by MMA
ALU_PER_SCORE = 5           # FP32 ops per score: sub, mul, max, add, cvt/2
FA2_ALU_PER_SCORE = 4       # FlashAttention-2 folds the scale into an FFMA
MASK_ALU_PER_SCORE = 3      # compare, and, select on diagonal blocks
FA2_PUBLISHED = {64: 300, 128: 335}  # TFLOP/s, forward, long sequences

SHAPES = [
    # name, batch, q_heads, kv_heads, q_len, kv_len, head_dim, dtype, causal
    ("B1 H8 S1024 D64", 1, 8, 8, 1024, 1024, 64, "f16", False),
    ("B1 H8 S1024 D64 causal", 1, 8, 8, 1024, 1024, 64, "f16", True),
    ("B1 H16 S4096 D128 causal", 1, 16, 16, 4096, 4096, 128, "f16", True),
    ("GQA Hq32 Hkv8 S2048 D128 causal", 1, 32, 8, 2048, 2048, 128, "f16",
     True),
    ("decode Hq32 Hkv8 Sq1 Sk8192 D128", 1, 32, 8, 1, 8192, 128, "f16",
     False),
    ("B1 H8 S2048 D128 bf16", 1, 8, 8, 2048, 2048, 128, "bf16", False),
    # The setting of FlashAttention-2's / -3's H100 figures: 16k tokens,
    # hidden size 2048.
    ("B1 H32 S16384 D64 (FA setting)", 1, 32, 32, 16384, 16384, 64, "f16",
     False),
    ("B1 H16 S16384 D128 (FA setting)", 1, 16, 16, 16384, 16384, 128, "f16",
     False),
]


def kernel_figures(attn_run, shape, chip="sm_90"):
    """Launch configuration and ptxas figures of the kernel for `shape`."""
    name, b, hq, hkv, sq, sk, d, dtype, causal = shape
    spec = {"batch": b, "q_heads": hq, "kv_heads": hkv, "q_len": sq,
            "kv_len": sk, "head_dim": d, "dtype": dtype,
            "mask": {"kind": "causal" if causal else "none"}}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spec.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        out = subprocess.run(
            [attn_run, path, "--target", "cuda", "--chip", chip,
             "--emit-cubin", os.path.join(tmp, "k.cubin")],
            check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def occupancy(fig, hw=H100):
    threads = fig["block"][0] * fig["block"][1] * fig["block"][2]
    regs = math.ceil(fig["registers"] / 8) * 8  # allocation granularity
    smem = fig["shared_bytes"] + fig["static_shared_bytes"] + 1024
    by_regs = hw["regs_per_sm"] // (regs * threads)
    by_smem = hw["smem_per_sm"] // smem
    by_threads = hw["max_threads"] // threads
    blocks = min(by_regs, by_smem, by_threads, hw["max_blocks"])
    limiter = min((by_regs, "registers"), (by_smem, "shared memory"),
                  (by_threads, "threads"))[1]
    return blocks, blocks * threads // 32, limiter


def useful_flops(shape):
    """docs/design.md section 8: 4 B Hq D x (visible score entries)."""
    _, b, hq, _, sq, sk, d, _, causal = shape
    if causal:  # top-left: row i sees min(i + 1, sk) keys
        visible = sum(min(i + 1, sk) for i in range(sq))
    else:
        visible = sq * sk
    return 4.0 * b * hq * d * visible


def block_cycles(shape, bq, bk, rows_per_warp, q0, hw, alu_per_score,
                 overlap):
    """SM cycles of one thread block (query rows [q0, q0 + bq))."""
    _, _, _, _, sq, sk, d, _, causal = shape
    r_mma = hw["tensor_flop_per_clk"] * MMA_SYNC_EFFICIENCY
    l2_per_clk = hw["l2_bytes_per_s"] / hw["sms"] / hw["clock_hz"]
    hi = min(q0 + bq, sk) if causal else sk
    warps = bq // rows_per_warp
    total = 0.0
    for k0 in range(0, hi, bk):
        visible = 0
        diagonal = 0
        for w in range(warps):
            first = q0 + w * rows_per_warp
            last = min(first + rows_per_warp, sq) - 1
            if first > last:
                continue  # padding rows only
            if causal and k0 > last:
                continue  # the warp skips the block
            visible += 1
            if causal and k0 + bk - 1 > first:
                diagonal += 1
        scores = visible * rows_per_warp * bk
        mma = scores * 4 * d / r_mma
        # ldmatrix of K and V fragments (each warp reads the whole tiles) and
        # the cp.async writes of both tiles.
        smem = (visible + 1) * bk * 2 * d * 2 / hw["smem_bytes_per_clk"]
        l2 = bk * 2 * d * 2 / l2_per_clk
        alu = (scores * alu_per_score +
               diagonal * rows_per_warp * bk * MASK_ALU_PER_SCORE) / \
            hw["fp32_lanes_per_clk"]
        mufu = scores / hw["mufu_per_clk"]
        total += max(mma, smem, l2) + (1 - overlap) * (alu + mufu)
    return total


def project(shape, bq, bk, blocks_per_sm, rows_per_warp=16, hw=H100,
            alu_per_score=ALU_PER_SCORE, overlap=OVERLAP):
    """Projected kernel time (s): longest-first list scheduling of the
    blocks over the SMs, bounded below by the HBM traffic."""
    _, b, hq, hkv, sq, sk, d, _, causal = shape
    q_blocks = math.ceil(sq / bq)
    # Launch order: the query block varies slowest; with causal masks the
    # longest blocks (last query rows) come first.
    order = []
    for z in range(q_blocks):
        qb = q_blocks - 1 - z if causal else z
        order += [qb] * (b * hq)
    durations = {}
    for qb in set(order):
        durations[qb] = block_cycles(shape, bq, bk, rows_per_warp, qb * bq,
                                     hw, alu_per_score, overlap)
    # blocks_per_sm resident blocks share an SM: model an SM as one server
    # that runs its blocks back to back at full rate.
    free = [0.0] * hw["sms"]
    for qb in order:
        i = min(range(len(free)), key=free.__getitem__)
        free[i] += durations[qb]
    makespan = max(free) / hw["clock_hz"]
    hbm = (b * hq * sq * d * 2 * 2 + b * hkv * sk * d * 2 * 2) / \
        hw["hbm_bytes_per_s"]
    return max(makespan, hbm), makespan, hbm


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn-run", required=True)
    parser.add_argument("--json", help="write the table as JSON here")
    args = parser.parse_args()

    # Calibration: the same model for a FlashAttention-2-like kernel (warps
    # of 32 query rows, so K/V fragments are read once per 32 rows; FFMA
    # exponent) at a long sequence, against its published H100 figure.
    calibration = {}
    for d in (64, 128):
        h = 2048 // d
        shape = ("fa2", 1, h, h, 16384, 16384, d, "f16", False)
        t, _, _ = project(shape, 128, 64, 1, rows_per_warp=32,
                          alu_per_score=FA2_ALU_PER_SCORE)
        modelled = useful_flops(shape) / t / 1e12
        calibration[d] = FA2_PUBLISHED[d] / modelled
        print(f"calibration D={d}: model gives FA2-like {modelled:.0f} "
              f"TFLOP/s, published ~{FA2_PUBLISHED[d]}: factor "
              f"{calibration[d]:.2f}")

    rows = []
    print()
    print("| shape | kernel | regs | smem (B) | blocks/SM (warps) | grid | "
          "GFLOP | HBM MB | bound | projected ms | TFLOP/s (range) | "
          "FA2-like, same model | FA2 published |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        name, b, hq, hkv, sq, sk, d, dtype, causal = shape
        fig = kernel_figures(args.attn_run, shape)
        blocks, warps, limiter = occupancy(fig)
        bq, bk = fig["tile_sizes"][2], fig["tile_sizes"][3]
        flops = useful_flops(shape)
        factor = calibration[d]
        results = {}
        for label, overlap in (("best", 1.0), ("mid", OVERLAP),
                               ("worst", 0.0)):
            t, makespan, hbm = project(shape, bq, bk, blocks,
                                       overlap=overlap)
            # Calibrate the compute part; the HBM bound is physical.
            t_cal = max(makespan / factor, hbm)
            results[label] = (t_cal, makespan / factor < hbm)
        t_mid, hbm_bound = results["mid"]
        _, fa2_makespan, fa2_hbm = project(shape, 128 if sq >= 128 else bq,
                                           bk, 1, rows_per_warp=32
                                           if sq >= 128 else 16,
                                           alu_per_score=FA2_ALU_PER_SCORE)
        fa2_model = flops / max(fa2_makespan / factor, fa2_hbm) / 1e12
        tflops = {k: flops / v[0] / 1e12 for k, v in results.items()}
        hbm_mb = (b * hq * sq * d * 4 + b * hkv * sk * d * 4) / 1e6
        fa2 = ("~%d (16k tokens)" % FA2_PUBLISHED[d] if sq >= 1024
               else "n/a (decode)")
        row = dict(shape=name, registers=fig["registers"],
                   shared_bytes=fig["shared_bytes"], blocks_per_sm=blocks,
                   warps_per_sm=warps, occupancy_limiter=limiter,
                   grid=fig["grid"], block=fig["block"],
                   tile_sizes=fig["tile_sizes"], gflop=flops / 1e9,
                   hbm_mb=hbm_mb, projected_ms=t_mid * 1e3,
                   tflops=tflops, fa2_model_tflops=fa2_model,
                   spills=[fig["spill_store_bytes"],
                                          fig["spill_load_bytes"]])
        rows.append(row)
        print(f"| {name} | {dtype} {bq}x{bk}, {fig['block'][0]} thr | "
              f"{fig['registers']} | {fig['shared_bytes']} | {blocks} "
              f"({warps}, {limiter}) | {fig['grid']} | {flops / 1e9:.2f} | "
              f"{hbm_mb:.1f} | {'HBM' if hbm_bound else 'compute'} | "
              f"{t_mid * 1e3:.3f} | {tflops['mid']:.0f} "
              f"({tflops['worst']:.0f}-{tflops['best']:.0f}) | "
              f"{fa2_model:.0f} | {fa2} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(calibration=calibration, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
