#!/usr/bin/env python3
"""Named score and mask modifications against plain attention and the
peers, on this CPU, in one process.

    PYTHONPATH=build/python python3 benchmarks/score_mod.py [--threads N]
        [--repeat N] [--seq S] [--no-flex] [--mask-mods]

For B1 H8 S D64 f32 (S = 1024 by default) it times attn-mlir's kernel
plain, causal, with ALiBi (attn_mlir.alibi()) and with soft-capping
(attn_mlir.softcap(30)), each with and without the causal mask, and with
T5's relative position bias (attn_mlir.t5_bias, 32 buckets), ALiBi,
soft-capping and causal as Python functions (traced into MLIR), next to
PyTorch's scaled_dot_product_attention with the equivalent dense bias (ALiBi
as a materialised [1, H, S, S] float mask; SDPA has no soft-capping) and
FlexAttention (torch.compile(flex_attention) with the same score_mod; its
compile time is reported) when torch has it. Timings are medians of
`--repeat` round-robin rounds, so that a noisy period hits every entry
alike. The first line names the CPU. Needs numpy; torch is optional.

With --mask-mods it times the named mask_mods instead: document masking (4
packed documents, with and without causal), prefix-LM (prefix S/4),
Longformer (window 128, 2 global tokens), a dilated window (64 keys a side,
dilation 2), the Sparse Transformer's strided pattern (stride 32), next to
the built-in causal and sliding window (128 a side), document masking as a
Python function (traced), PyTorch SDPA with the
equivalent dense bool mask, and FlexAttention with the same mask_mod and a
block mask from create_block_mask (whose time is reported separately).
"""

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

import attn_mlir

# ALiBi's slopes and T5's buckets: the references of
# examples/mods/make_inputs.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples", "mods"))
from make_inputs import alibi_slopes, t5_bucket  # noqa: E402

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
    i = np.arange(s)[:, None]
    j = np.arange(s)[None, :]
    return (np.array(alibi_slopes(h)).reshape(1, h, 1, 1) * (j - i)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0,
                    help="threads (default: every core)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--no-flex", action="store_true",
                    help="skip FlexAttention (its compiles take seconds)")
    ap.add_argument("--mask-mods", action="store_true",
                    help="time the named mask_mods instead of the score_mods")
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
    if args.mask_mods:
        mask_mod_entries(args, entries, ours, q, k, v)
    else:
        score_mod_entries(args, entries, ours, q, k, v)
    measure(args, entries, threads, b, h, s, d)


def mask_mod_entries(args, entries, ours, q, k, v):
    """The named mask_mods, their dense masks for SDPA and their mask_mod
    functions for FlexAttention."""
    b, h, s, d = q.shape
    i = np.arange(s)[:, None]
    j = np.arange(s)[None, :]
    docs = np.repeat(np.arange(4, dtype=np.int32),
                     [s // 4 - 37, s // 4 + 50, s // 4 - 13, s - 3 * (s // 4)])
    docs = docs[None].repeat(b, 0)
    glob = np.zeros((b, s), dtype=bool)
    glob[:, [0, s // 2]] = True
    prefix = np.array([s // 4] * b, dtype=np.int32)
    cases = [  # name, our kwargs, dense keep [S, S]
        ("window 128", dict(window=(128, 128)), np.abs(i - j) <= 128),
        ("document", dict(mask_mod=attn_mlir.document_mask(docs)),
         docs[0][:, None] == docs[0][None, :]),
        ("document causal",
         dict(causal=True, mask_mod=attn_mlir.document_mask(docs)),
         (docs[0][:, None] == docs[0][None, :]) & (j <= i)),
        ("prefix-LM S/4", dict(mask_mod=attn_mlir.prefix_lm(prefix)),
         (j <= i) | (j < s // 4)),
        ("longformer 128 + 2 global",
         dict(mask_mod=attn_mlir.longformer(128, glob)),
         (np.abs(i - j) <= 128) | glob[0][:, None] | glob[0][None, :]),
        ("dilated 64 x 2",
         dict(mask_mod=attn_mlir.dilated_sliding_window(64, 2)),
         (np.abs(i - j) <= 128) & ((i - j) % 2 == 0)),
        ("strided 32", dict(mask_mod=attn_mlir.strided(32)),
         (i >= j) & (((i - j) < 32) | ((i - j) % 32 == 0))),
    ]
    for name, kw, _ in cases:
        ours(name, **kw)
    doc0 = docs[0]
    ours("document (Python fn)",
         mask_mod=lambda bi, hi, qi, ki: doc0[qi] == doc0[ki])
    if torch is None:
        return
    tq, tk, tv = (torch.from_numpy(t) for t in (q, k, v))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    with torch.no_grad():
        entries.append(("torch SDPA plain", lambda: sdpa(tq, tk, tv), 0.0))
        entries.append(("torch SDPA causal",
                        lambda: sdpa(tq, tk, tv, is_causal=True), 0.0))
        for name, _, keep in cases:
            dense = torch.from_numpy(np.ascontiguousarray(keep))
            entries.append((f"torch SDPA {name} (dense mask)",
                            (lambda m=dense: sdpa(tq, tk, tv, attn_mask=m)),
                            0.0))
    flex = None if args.no_flex else flex_or_none()
    if flex is None:
        return
    from torch.nn.attention.flex_attention import create_block_mask
    tdocs = torch.from_numpy(docs[0])
    tglob = torch.from_numpy(glob[0])
    mods = {
        "window 128": lambda bi, hi, qi, ki: (qi - ki).abs() <= 128,
        "document": lambda bi, hi, qi, ki: tdocs[qi] == tdocs[ki],
        "document causal": lambda bi, hi, qi, ki: (tdocs[qi] == tdocs[ki])
        & (qi >= ki),
        "prefix-LM S/4": lambda bi, hi, qi, ki: (ki <= qi) | (ki < s // 4),
        "longformer 128 + 2 global": lambda bi, hi, qi, ki:
            ((qi - ki).abs() <= 128) | tglob[qi] | tglob[ki],
        "dilated 64 x 2": lambda bi, hi, qi, ki: ((qi - ki).abs() <= 128)
        & ((qi - ki) % 2 == 0),
        "strided 32": lambda bi, hi, qi, ki: (qi >= ki)
        & (((qi - ki) < 32) | ((qi - ki) % 32 == 0)),
    }
    t0 = time.perf_counter()
    with torch.no_grad():
        flex(tq, tk, tv)
    entries.append(("FlexAttention plain", lambda: flex(tq, tk, tv),
                    time.perf_counter() - t0))
    for name, mod in mods.items():
        t0 = time.perf_counter()
        try:
            block = create_block_mask(mod, 1, 1, s, s, device="cpu")
            t1 = time.perf_counter()
            with torch.no_grad():
                flex(tq, tk, tv, block_mask=block)
        except Exception as e:  # Inductor fails on some mask_mods on CPU
            first = next((line for line in str(e).splitlines()
                          if "error" in line), str(e).splitlines()[0])
            print(f"FlexAttention {name}: failed: {first[:200]}",
                  file=sys.stderr)
            continue
        compile_s = time.perf_counter() - t1
        print(f"FlexAttention {name}: create_block_mask "
              f"{(t1 - t0) * 1e3:.1f} ms (first call, compiles it)",
              file=sys.stderr)
        entries.append((f"FlexAttention {name}",
                        (lambda blk=block: flex(tq, tk, tv, block_mask=blk)),
                        compile_s))


def flex_or_none():
    try:
        from torch.nn.attention.flex_attention import flex_attention
        return torch.compile(flex_attention)
    except Exception as e:  # an old torch, no compiler
        print(f"FlexAttention unavailable: {e}", file=sys.stderr)
        return None


def score_mod_entries(args, entries, ours, q, k, v):
    """ALiBi and soft-capping, SDPA with the dense ALiBi bias and
    FlexAttention with the same score_mods."""
    b, h, s, d = q.shape
    ours("alibi", score_mod=attn_mlir.alibi())
    ours("alibi causal", score_mod=attn_mlir.alibi(), causal=True)
    ours("softcap 30", score_mod=attn_mlir.softcap(30.0))
    ours("softcap 30 causal", score_mod=attn_mlir.softcap(30.0), causal=True)
    # The same as Python functions, traced into MLIR (attn_mlir._trace):
    # what FlexAttention's users write.
    np_slopes = np.asarray(alibi_slopes(h), dtype=np.float32)
    ours("alibi (Python fn)", score_mod=lambda score, bi, hi, qi, ki:
         score + np_slopes[hi] * (ki - qi))
    ours("softcap 30 (Python fn)", score_mod=lambda score, bi, hi, qi, ki:
         30.0 * np.tanh(score / 30.0))
    ours("causal (Python fn mask_mod)",
         mask_mod=lambda bi, hi, qi, ki: qi >= ki)
    table = np.random.default_rng(1).standard_normal((32, h)).astype(np.float32)
    ours("t5 bias", score_mod=attn_mlir.t5_bias(table))
    # T5's buckets of every relative position j - i in [-(S-1), S-1].
    rel = np.arange(-(s - 1), s)
    buckets = t5_bucket(rel, True, 32, 128)
    t5_dense = table[buckets[(np.arange(s)[None, :] - np.arange(s)[:, None])
                             + s - 1]].transpose(2, 0, 1)[None]

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
            t5_bias = torch.from_numpy(np.ascontiguousarray(t5_dense))
            entries.append(("torch SDPA t5 bias (dense bias)",
                            lambda: sdpa(tq, tk, tv, attn_mask=t5_bias), 0.0))
        flex = None if args.no_flex else flex_or_none()
        if flex is not None:
            from torch.nn.attention.flex_attention import create_block_mask
            slopes = torch.from_numpy(alibi_bias(h, 2)[0, :, 0, 1].copy())

            def alibi_mod(score, bi, hi, qi, ki):
                return score + slopes[hi] * (ki - qi)

            def softcap_mod(score, bi, hi, qi, ki):
                return 30.0 * torch.tanh(score / 30.0)

            def causal_mask(bi, hi, qi, ki):
                return qi >= ki

            ttable = torch.from_numpy(table)
            tbuckets = torch.from_numpy(buckets)

            def t5_mod(score, bi, hi, qi, ki):
                return score + ttable[tbuckets[ki - qi + s - 1], hi]

            block = create_block_mask(causal_mask, 1, 1, s, s, device="cpu")
            for name, kw in (("plain", {}), ("causal", {"block_mask": block}),
                             ("alibi", {"score_mod": alibi_mod}),
                             ("softcap 30", {"score_mod": softcap_mod}),
                             ("t5 bias", {"score_mod": t5_mod})):
                t0 = time.perf_counter()
                with torch.no_grad():
                    flex(tq, tk, tv, **kw)
                compile_s = time.perf_counter() - t0
                entries.append((f"FlexAttention {name}",
                                (lambda kw=kw: flex(tq, tk, tv, **kw)),
                                compile_s))


def measure(args, entries, threads, b, h, s, d):
    """Times every entry round-robin and prints the table."""
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
