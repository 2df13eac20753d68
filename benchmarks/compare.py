#!/usr/bin/env python3
"""Side-by-side attention benchmark on this CPU, in one process.

    PYTHONPATH=build/python python3 benchmarks/compare.py [--threads N]
        [--repeat N] [--only SUBSTRING] [--cpu-target LEVEL] [--json FILE]

The first lines name the CPU model and the CPU target level the kernels are
compiled for (the highest this CPU has, or --cpu-target: e.g. x86-64-v3 to
measure the AVX2 code on an AVX-512 machine). A shape that fails to compile
or run is reported as an error line; the others still run.

For each shape of the CPU issue it runs, on the same inputs and in the same
process: attn-mlir's flash kernel, the same spec compiled with dynamic
lengths (batch, q_len, kv_len = null; for decoding also with only batch and
kv_len null, as a serving loop compiles its decode step), attn-mlir's unfused reference
lowering (when its score matrix fits), a naive numpy/BLAS attention, and
PyTorch's scaled_dot_product_attention (when torch is importable), and prints
ms (median of the repeats; attn-mlir, its dynamic kernel and PyTorch are
timed round-robin so that a noisy period of a shared machine hits them
alike), GFLOP/s, the speed ratio of attn-mlir against each
peer, and the fraction of the machine's FP32 FMA peak measured in the same
run. Decode shapes also report GB/s against the measured memory bandwidth.
The long-context shape runs attn-run in a child process and reports its peak
RSS (the O(S) memory check: the unfused score matrix alone would be 32 GiB).

FLOPs: 4 * B * Hq * Sq * Sk * D for unmasked attention, the count of visible
score entries for masked kinds (docs/design.md section 8).
Needs numpy; PyTorch from PyPI is optional (the benchmark may use PyPI, the
tests do not).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import attn_mlir

try:
    import torch
except ImportError:  # PyTorch is optional
    torch = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shapes():
    """(name, spec, role) for the shapes named by the issue."""
    def spec(b, hq, hkv, sq, sk, d, dtype="f32", causal=False):
        s = {"batch": b, "q_heads": hq, "kv_heads": hkv, "q_len": sq,
             "kv_len": sk, "head_dim": d, "v_head_dim": d, "dtype": dtype}
        if causal:
            s["mask"] = {"kind": "causal", "align": "bottom_right"}
        return s
    return [
        ("prefill h8 s1024 d64", spec(1, 8, 8, 1024, 1024, 64), "prefill"),
        ("prefill h8 s1024 d64 causal", spec(1, 8, 8, 1024, 1024, 64, causal=True), "prefill"),
        ("prefill h8 s1024 d128", spec(1, 8, 8, 1024, 1024, 128), "prefill"),
        ("prefill h8 s1024 d128 causal", spec(1, 8, 8, 1024, 1024, 128, causal=True), "prefill"),
        ("prefill h16 s4096 d128 causal", spec(1, 16, 16, 4096, 4096, 128, causal=True), "prefill"),
        ("gqa h32/8 s2048 d128 causal", spec(1, 32, 8, 2048, 2048, 128, causal=True), "prefill"),
        ("decode h32/8 sk8192 d128", spec(1, 32, 8, 1, 8192, 128), "decode"),
        ("prefill h8 s2048 d128 f32", spec(1, 8, 8, 2048, 2048, 128), "prefill"),
        ("prefill h8 s2048 d128 bf16", spec(1, 8, 8, 2048, 2048, 128, "bf16"), "prefill"),
        ("prefill h8 s1024 d64 bf16", spec(1, 8, 8, 1024, 1024, 64, "bf16"), "prefill"),
        ("prefill h8 s1024 d128 causal bf16", spec(1, 8, 8, 1024, 1024, 128, "bf16", causal=True), "prefill"),
        ("long h8 s32768 d64 causal", spec(1, 8, 8, 32768, 32768, 64, causal=True), "long"),
    ]


def flops(spec):
    b, hq, sq, sk = spec["batch"], spec["q_heads"], spec["q_len"], spec["kv_len"]
    d, dv = spec["head_dim"], spec["v_head_dim"]
    if "mask" in spec:  # bottom-right causal: row i keeps i + sk - sq + 1 keys
        shift = sk - sq
        visible = sum(max(0, min(sk, i + shift + 1)) for i in range(sq))
    else:
        visible = sq * sk
    return 2.0 * b * hq * (d + dv) * visible


def median_ms(fn, repeat):
    fn()  # warm-up (and compile)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def interleaved_median_ms(fns, repeat, settle=()):
    """Medians of `fns` timed round-robin, so that a slower or faster period
    of a shared machine falls on every peer alike and the ratios stay fair.
    In each round every peer runs twice back to back and the second call is
    timed (warm caches and clocks, as in a model's loop). After each peer
    named in `settle` (PyTorch: libgomp's threads spin for a while after a
    parallel region) the next waits 30 ms, so that those threads are asleep
    before it runs; attn-mlir's pool threads block at once."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            fn()
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
            if name in settle:
                time.sleep(0.03)
    return {name: statistics.median(t) for name, t in times.items()}


def numpy_attention(q, k, v, causal):
    """softmax(Q K^T / sqrt(D)) V with numpy matmuls (BLAS), GQA by repeat."""
    group = q.shape[1] // k.shape[1]
    if group > 1:
        k = np.repeat(k, group, axis=1)
        v = np.repeat(v, group, axis=1)
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.float32(1 / np.sqrt(q.shape[-1]))
    if causal:
        sq, sk = s.shape[-2], s.shape[-1]
        keep = np.arange(sk)[None, :] <= np.arange(sq)[:, None] + (sk - sq)
        s = np.where(keep, s, np.float32(-np.inf))
    s = np.exp(s - s.max(axis=-1, keepdims=True))
    s /= s.sum(axis=-1, keepdims=True)
    return np.matmul(s, v)


def long_context_rss(spec, threads, cpu_target):
    """Runs attn-run on the long shape in a child process: (ms, peak RSS MiB)."""
    attn_run = os.path.join(ROOT, "build", "bin", "attn-run")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        shape = (spec["batch"], spec["q_heads"], spec["q_len"], spec["head_dim"])
        paths = []
        for name in "qkv":
            path = os.path.join(tmp, name + ".npy")
            np.save(path, rng.standard_normal(shape, dtype=np.float32))
            paths.append(path)
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        out = subprocess.run(
            [attn_run, spec_path, "--q", paths[0], "--k", paths[1], "--v",
             paths[2], "--repeat", "1", "--threads", str(threads)]
            + (["--cpu-target", cpu_target] if cpu_target else []),
            check=True, capture_output=True, text=True).stdout
        result = json.loads(out)
        # attn-run reports its own VmHWM: getrusage(RUSAGE_CHILDREN) would
        # also count this (large) process's pages inherited through the
        # fork before exec.
        return result["run_ms"], result["peak_rss_mib"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default="")
    parser.add_argument("--json", default="")
    parser.add_argument("--cpu-target", default=None,
                        help="CPU target level (default: this CPU's highest)")
    args = parser.parse_args()
    target = attn_mlir.cpu_target()
    level = args.cpu_target or target["target"]
    print(f"cpu: {target['cpu']}; target: {level} (this CPU runs: "
          f"{', '.join(target['available'])})")

    ctx = attn_mlir.Context(threads=args.threads, cache_dir="")
    if torch is not None:
        torch.set_num_threads(args.threads)
    # The machine's capability is the best of a few probes: on a shared VM
    # one probe can land in a slow period and flatter every fraction.
    peak = max(attn_mlir.fma_peak_gflops(args.threads) for _ in range(5))
    bandwidth = max(attn_mlir.memory_bandwidth_gbs(args.threads) for _ in range(3))
    print(f"machine: {args.threads} threads, measured FP32 FMA peak "
          f"{peak:.1f} GFLOP/s, memory read bandwidth {bandwidth:.1f} GB/s")
    print(f"peers: numpy {np.__version__} (BLAS), PyTorch "
          f"{torch.__version__ if torch else 'not installed'}\n")
    header = (f"{'shape':32} {'impl':16} {'ms':>9} {'GFLOP/s':>9} {'%peak':>6} "
              f"{'attn-mlir x':>11}")
    print(header)
    print("-" * len(header))
    rows = []
    rng = np.random.default_rng(0)
    if args.only and not any(args.only in name for name, _, _ in shapes()):
        sys.exit(f"compare.py: error: --only '{args.only}' matches no shape")
    for name, spec, role in shapes():
        if args.only and args.only not in name:
            continue
        try:
            rows += run_shape(name, spec, role, args, ctx, rng, peak, bandwidth)
        except (RuntimeError, ValueError, subprocess.CalledProcessError) as e:
            detail = getattr(e, "stderr", None) or str(e)
            print(f"{name:32} error: {detail.strip().splitlines()[-1]}\n")
            rows.append({"shape": name, "error": str(e)})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "fma_peak_gflops": peak,
                       "memory_gbs": bandwidth, "cpu": target["cpu"],
                       "cpu_target": level,
                       "torch": torch.__version__ if torch else None,
                       "rows": rows}, f, indent=2)


def run_shape(name, spec, role, args, ctx, rng, peak, bandwidth):
    """Times one shape and prints its rows; returns them."""
    rows = []

    def compile_(s, **kw):
        return attn_mlir.compile(s, context=ctx, cpu_target=args.cpu_target, **kw)

    fl = flops(spec)
    causal = "mask" in spec
    if role == "long":
        ms, rss = long_context_rss(spec, args.threads, args.cpu_target)
        gf = fl / ms / 1e6
        print(f"{name:32} {'attn-mlir':16} {ms:9.1f} {gf:9.1f} "
              f"{100 * gf / peak:5.1f}% {'':>11}  peak RSS {rss:.0f} MiB "
              f"(< 1024: {'yes' if rss < 1024 else 'NO'})")
        rows.append({"shape": name, "impl": "attn-mlir", "ms": ms,
                     "gflops": gf, "peak_rss_mib": rss})
        return rows
    b, hq, hkv = spec["batch"], spec["q_heads"], spec["kv_heads"]
    sq, sk, d = spec["q_len"], spec["kv_len"], spec["head_dim"]
    q32 = rng.standard_normal((b, hq, sq, d), dtype=np.float32)
    k32 = rng.standard_normal((b, hkv, sk, d), dtype=np.float32)
    v32 = rng.standard_normal((b, hkv, sk, d), dtype=np.float32)
    bf16 = spec["dtype"] == "bf16"
    if bf16:
        if torch is None:
            print(f"{name:32} skipped: bf16 inputs need torch\n")
            return rows
        q, k, v = (torch.from_numpy(x).to(torch.bfloat16) for x in (q32, k32, v32))
    else:
        q, k, v = q32, k32, v32
    kernel = compile_(spec)
    out = kernel(q, k, v)
    dynamic = dict(spec, batch=None, q_len=None, kv_len=None)
    dyn = compile_(dynamic)
    # attn-mlir, its dynamic-length kernel and PyTorch round-robin; the
    # slow peers (seconds per call) after them with fewer repeats.
    timed = {"attn-mlir": lambda: kernel(q, k, v, out=out),
             "attn-mlir dyn": lambda: dyn(q, k, v, out=out)}
    if role == "decode":
        # A decode step as a serving loop compiles it: q_len fixed, the
        # cache length (and batch) dynamic. (With q_len dynamic too, the
        # kernel is the prefill one, whose 64-row query tiles a single
        # row mostly wastes.)
        dyn_kv = compile_(dict(spec, batch=None, kv_len=None))
        timed["attn-mlir dyn kv"] = lambda: dyn_kv(q, k, v, out=out)
    if torch is not None and (not causal or sq == sk):
        tq, tk, tv = (q, k, v) if bf16 else (torch.from_numpy(x) for x in (q32, k32, v32))
        def sdpa():
            return torch.nn.functional.scaled_dot_product_attention(
                tq, tk, tv, is_causal=causal and sq == sk,
                enable_gqa=hq != hkv)
        timed["torch sdpa"] = sdpa
    fast = interleaved_median_ms(timed, args.repeat, settle=("torch sdpa",))
    results = {name: ms for name, ms in fast.items() if name.startswith("attn-mlir")}
    if 4.0 * b * hq * sq * sk < 2**30 and fl < 20e9:
        ref = compile_(spec, reference=True)
        results["unfused (ours)"] = median_ms(lambda: ref(q, k, v, out=out), 2)
    if not bf16 and 4.0 * b * hq * sq * sk < 2**31:
        results["numpy"] = median_ms(lambda: numpy_attention(q32, k32, v32, causal), 3)
    if "torch sdpa" in fast:
        results["torch sdpa"] = fast["torch sdpa"]
    ours = results["attn-mlir"]
    for impl, ms in results.items():
        gf = fl / ms / 1e6
        ratio = "" if impl == "attn-mlir" else f"{ms / ours:10.2f}x"
        extra = ""
        if role == "decode" and impl.startswith("attn-mlir"):
            gbs = 2 * 4 * b * hkv * sk * d / ms / 1e6
            extra = f"  {gbs:.1f} GB/s = {100 * gbs / bandwidth:.0f}% of bandwidth"
        print(f"{name:32} {impl:16} {ms:9.2f} {gf:9.1f} {100 * gf / peak:5.1f}% "
              f"{ratio:>11}{extra}")
        rows.append({"shape": name, "impl": impl, "ms": ms, "gflops": gf})
    print()
    return rows


if __name__ == "__main__":
    main()
