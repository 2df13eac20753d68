"""Inputs and the f64 expected output of an example spec of this directory.

    python3 make_inputs.py KIND OUT_DIR      (KIND: document, prefix_lm,
        dilated_sliding_window, strided, fixed, longformer, t5_bias or mlir)

writes q.npy, k.npy, v.npy, the spec's captures (NAME.npy for each capture
the mask_mod reads: q_document_ids / kv_document_ids, prefix_lens, q_global /
kv_global, relative_attention_bias; slopes and doc_ids for mlir), kv_lens.npy when the spec has key
padding, and expected.npy, computed here in numpy float64 from the
definition of the mask_mod or score_mod (docs/design.md, section 6), with
d = i - j:
    document                q_document_ids[b, i] == kv_document_ids[b, j]
    prefix_lm               j <= i or j < prefix_lens[b]
    dilated_sliding_window  |d| <= window * dilation and d % dilation == 0
    strided                 0 <= d and (d < stride or d % stride == 0)
    fixed                   j <= i and (j // stride == i // stride or
                            j % stride >= stride - summary)
    longformer              |d| <= window or q_global[b, i] or kv_global[b, j]
    t5_bias (score_mod)     s + relative_attention_bias[bucket(j - i), h], the
                            bucket as Hugging Face's T5Attention computes it
    mlir (user functions)   score_mod s + slopes[h] * (j - i), mask_mod
                            doc_ids[b, i] == doc_ids[b, j] and j <= i, as
                            mlir.json's two func.func write them
intersected with the spec's causal and key_padding masks. alibi_slopes and
t5_bucket are the numpy references the Python tests and
benchmarks/score_mod.py use too. Then, e.g.:

    attn-run document.json --q q.npy --k k.npy --v v.npy \\
        --capture q_document_ids=q_document_ids.npy \\
        --capture kv_document_ids=kv_document_ids.npy --expect expected.npy
"""
import json
import math
import os
import sys

import numpy as np


def alibi_slopes(n):
    """ALiBi's slopes for n heads, as the paper's code lists them (Press et
    al. 2022, get_slopes)."""
    def power_of_2(p):
        start = 2 ** (-2 ** -(math.log2(p) - 3))
        return [start * start ** i for i in range(p)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][:n - closest]


def t5_bucket(relative_position, bidirectional, num_buckets, max_distance):
    """T5Attention._relative_position_bucket (Hugging Face transformers) in
    numpy, float32 as torch computes it."""
    buckets = np.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0) * num_buckets
        n = np.abs(relative_position)
    else:
        n = -np.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore", invalid="ignore"):
        large = max_exact + (np.log(n.astype(np.float32) / np.float32(max_exact))
                             / np.float32(math.log(max_distance / max_exact))
                             * np.float32(num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(n < max_exact, n, large)


def main():
    kind, out = sys.argv[1], sys.argv[2]
    spec = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       kind + ".json")))
    mod = spec.get("mask_mod") or spec["score_mod"]
    rng = np.random.default_rng(0)
    b = spec["batch"]
    hq, hkv = spec["q_heads"], spec.get("kv_heads", spec["q_heads"])
    s = spec["q_len"] or 200  # dynamic lengths: run at 200
    d = spec["head_dim"]
    q = rng.standard_normal((b, hq, s, d)).astype(np.float32)
    k = rng.standard_normal((b, hkv, s, d)).astype(np.float32)
    v = rng.standard_normal((b, hkv, s, d)).astype(np.float32)
    i = np.arange(s)[:, None]
    j = np.arange(s)[None, :]
    dist = i - j
    keep = np.ones((b, s, s), dtype=bool)
    captures = {}
    if kind == "document":
        # Four documents of uneven lengths packed in one sequence.
        ids = np.repeat(np.arange(4, dtype=np.int32), [70, 13, 100, s - 183])
        ids = np.broadcast_to(ids, (b, s)).copy()
        captures = {"q_document_ids": ids, "kv_document_ids": ids}
        keep &= ids[:, :, None] == ids[:, None, :]
    elif kind == "prefix_lm":
        prefix = np.array([64, 0][:b], dtype=np.int32)
        captures = {"prefix_lens": prefix}
        keep &= (j <= i) | (j < prefix[:, None, None])
    elif kind == "dilated_sliding_window":
        w, dil = mod["window"], mod["dilation"]
        keep &= (np.abs(dist) <= w * dil) & (dist % dil == 0)
    elif kind == "strided":
        st = mod["stride"]
        keep &= (dist >= 0) & ((dist < st) | (dist % st == 0))
    elif kind == "fixed":
        st, c = mod["stride"], mod["summary"]
        keep &= (j <= i) & ((j // st == i // st) | (j % st >= st - c))
    elif kind == "longformer":
        glob = np.zeros((b, s), dtype=np.int32)
        glob[:, [0, 57, 150]] = 1  # e.g. [CLS] and two question tokens
        captures = {"q_global": glob, "kv_global": glob}
        g = glob.astype(bool)
        keep &= (np.abs(dist) <= mod["window"]) | g[:, :, None] | g[:, None, :]
    elif kind == "t5_bias":
        table = rng.standard_normal((mod["num_buckets"], hq)).astype(np.float32)
        captures = {"relative_attention_bias": table}
        bias = table[t5_bucket(j - i, mod["bidirectional"], mod["num_buckets"],
                               mod["max_distance"])]  # [S, S, H]
    elif kind == "mlir":
        # Learned per-head slopes (not ALiBi's) and int64 document ids.
        slopes = (rng.uniform(0.01, 0.5, hq)).astype(np.float32)
        ids = np.stack([np.repeat(np.arange(3), [50, 90, s - 140]),
                        np.repeat(np.arange(2), [120, s - 120])][:b])
        captures = {"slopes": slopes, "doc_ids": ids.astype(np.int64)}
        keep &= (ids[:, :, None] == ids[:, None, :]) & (j <= i)
        bias = slopes[None, None, :] * (j - i)[:, :, None].astype(np.float64)
    else:
        sys.exit(f"unknown kind {kind}")
    masks = spec.get("mask", [])
    masks = [masks] if isinstance(masks, dict) else masks
    for m in masks:
        if m["kind"] == "causal":
            keep &= j <= i
        elif m["kind"] == "key_padding":
            lens = np.array([s, s - 37][:b], dtype=np.int32)
            np.save(os.path.join(out, "kv_lens.npy"), lens)
            keep &= j[None] < lens[:, None, None]
    for name, a in captures.items():
        np.save(os.path.join(out, name + ".npy"), a)
    scores = np.einsum("bhid,bhjd->bhij", q.astype(np.float64),
                       np.repeat(k, hq // hkv, axis=1).astype(np.float64))
    scores = scores / np.sqrt(d)
    if kind in ("t5_bias", "mlir"):
        scores = scores + bias.transpose(2, 0, 1)[None].astype(np.float64)
    scores = np.where(keep[:, None], scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    expected = p @ np.repeat(v, hq // hkv, axis=1).astype(np.float64)
    for name, a in (("q", q), ("k", k), ("v", v),
                    ("expected", expected.astype(np.float32))):
        np.save(os.path.join(out, name + ".npy"), a)


if __name__ == "__main__":
    main()
