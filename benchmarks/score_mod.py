#!/usr/bin/env python3
"""Named score modifications against plain attention and the peers, on this
CPU, in one process.

    PYTHONPATH=build/python python3 benchmarks/score_mod.py [--threads N]
        [--repeat N] [--seq S] [--no-flex]

For B1 H8 S D64 f32 (S = 1024 by default) it times attn-mlir's kernel
plain, causal, with ALiBi (attn_mlir.alibi()) and with soft-capping
(attn_mlir.softcap(30)), each with and without the causal mask, next to
PyTorch's scaled_dot_product_attention with the equivalent dense bias (ALiBi
as a materialised [1, H, S, S] float mask; SDPA has no soft-capping) and
FlexAttention (torch.compile(flex_attention) with the same score_mod; its
compile time is reported) when torch has it. Timings are medians of
`--repeat` round-robin rounds, so that a noisy period hits every entry
alike. The first line names the CPU. Needs numpy; torch is optional.
"""

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

import attn_mlir

try:
    import torch
except ImportError:
    torch = None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def alibi_bias(h, s):
    """ALiBi's [1, H, S, S] bias slope(h) * (j - i) (the paper's slopes)."""
    def slopes(n):
        def p2(p):
            start = 2 ** (-2 ** -(math.log2(p) - 3))
            return [start * start ** i for i in range(p)]
        if math.log2(n).is_integer():
            return p2(n)
        c = 2 ** math.floor(math.log2(n))
        return p2(c) + slopes(2 * c)[0::2][:n - c]
    i = np.arange(s)[:, None]
    j = np.arange(s)[None, :]
    return (np.array(slopes(h)).reshape(1, h, 1, 1) * (j - i)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0,
                    help="threads (default: every core)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--no-flex", action="store_true",
                    help="skip FlexAttention (its compiles take seconds)")
    args = ap.parse_args()
    threads = args.threads or os.cpu_count()
    if torch is not None:
        torch.set_num_threads(threads)
    b, h, s, d = 1, 8, args.seq, 64
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((b, h, s, d), dtype=np.float32)
               for _ in range(3))
    ctx = attn_mlir.Context(threads=threads, cache_dir="")

    entries = []  # (name, callable, compile seconds)

    def ours(name, **kw):
        t0 = time.perf_counter()
        out = attn_mlir.attention(q, k, v, dynamic=False, context=ctx, **kw)
        compile_s = time.perf_counter() - t0
        entries.append((f"attn-mlir {name}",
                        lambda: attn_mlir.attention(q, k, v, dynamic=False,
                                                    context=ctx, **kw),
                        compile_s))
        return out

    ours("plain")
    ours("causal", causal=True)
    ours("alibi", score_mod=attn_mlir.alibi())
    ours("alibi causal", score_mod=attn_mlir.alibi(), causal=True)
    ours("softcap 30", score_mod=attn_mlir.softcap(30.0))
    ours("softcap 30 causal", score_mod=attn_mlir.softcap(30.0), causal=True)

    if torch is not None:
        tq, tk, tv = (torch.from_numpy(t) for t in (q, k, v))
        sdpa = torch.nn.functional.scaled_dot_product_attention
        bias = torch.from_numpy(alibi_bias(h, s))
        causal_bias = torch.from_numpy(np.where(
            np.tril(np.ones((s, s), dtype=bool)), alibi_bias(h, s),
            -np.inf).astype(np.float32))
        with torch.no_grad():
            entries.append(("torch SDPA plain", lambda: sdpa(tq, tk, tv), 0.0))
            entries.append(("torch SDPA causal",
                            lambda: sdpa(tq, tk, tv, is_causal=True), 0.0))
            entries.append(("torch SDPA alibi (dense bias)",
                            lambda: sdpa(tq, tk, tv, attn_mask=bias), 0.0))
            entries.append(("torch SDPA alibi causal (dense bias)",
                            lambda: sdpa(tq, tk, tv, attn_mask=causal_bias),
                            0.0))
        flex = None
        if not args.no_flex:
            try:
                from torch.nn.attention.flex_attention import (
                    create_block_mask, flex_attention)
                flex = torch.compile(flex_attention)
            except Exception as e:  # an old torch, no compiler
                print(f"FlexAttention unavailable: {e}", file=sys.stderr)
        if flex is not None:
            slopes = torch.from_numpy(alibi_bias(h, 2)[0, :, 0, 1].copy())

            def alibi_mod(score, bi, hi, qi, ki):
                return score + slopes[hi] * (ki - qi)

            def softcap_mod(score, bi, hi, qi, ki):
                return 30.0 * torch.tanh(score / 30.0)

            def causal_mask(bi, hi, qi, ki):
                return qi >= ki

            block = create_block_mask(causal_mask, 1, 1, s, s, device="cpu")
            for name, kw in (("plain", {}), ("causal", {"block_mask": block}),
                             ("alibi", {"score_mod": alibi_mod}),
                             ("softcap 30", {"score_mod": softcap_mod})):
                t0 = time.perf_counter()
                with torch.no_grad():
                    flex(tq, tk, tv, **kw)
                compile_s = time.perf_counter() - t0
                entries.append((f"FlexAttention {name}",
                                (lambda kw=kw: flex(tq, tk, tv, **kw)),
                                compile_s))

    times = {name: [] for name, _, _ in entries}
    for _ in range(args.repeat):
        for name, fn, _ in entries:
            if torch is not None:
                with torch.no_grad():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
                # libgomp's threads spin a while after a parallel region:
                # let them sleep before the next entry runs.
                if not name.startswith("attn-mlir"):
                    time.sleep(0.03)
            else:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)

    print(f"{cpu_model()}, {threads} threads; B{b} H{h} S{s} D{d} f32, "
          f"median of {args.repeat} round-robin rounds")
    plain = statistics.median(times["attn-mlir plain"])
    print(f"| {'kernel':40} | {'ms':>8} | {'vs attn-mlir plain':>18} | "
          f"{'first call s':>12} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 20}|{'-' * 14}|")
    for name, _, compile_s in entries:
        ms = statistics.median(times[name]) * 1e3
        print(f"| {name:40} | {ms:8.2f} | {ms / (plain * 1e3):17.2f}x | "
              f"{compile_s:12.2f} |")


if __name__ == "__main__":
    main()
