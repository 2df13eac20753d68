"""Shared helpers of the attn_mlir pytest suite."""
import math
import os
import sys

import numpy as np
import pytest

# ALiBi's slopes and T5's relative position bucket: the references of
# examples/mods/make_inputs.py (one definition for the examples, the tests
# and the benchmarks).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "examples", "mods"))
from make_inputs import alibi_slopes, t5_bucket  # noqa: E402

# No per-user disk cache in tests (a kernel an earlier run left there would
# turn a counted compile into a disk hit); tests of the cache name a folder.
os.environ.setdefault("ATTN_MLIR_CACHE_DIR", "")


def reference_attention(q, k, v, *, scale=None, causal=False, align="top_left",
                        window=None, mask=None, kv_lens=None, score_mod=None,
                        q_document_ids=None, kv_document_ids=None,
                        prefix_lens=None, pattern=None, q_global=None,
                        kv_global=None, t5=None):
    """float64 softmax(score_mod(scale q k^T [+ bias]), masked) v and the
    log-sum-exp; fully masked rows give 0 and -inf. Shapes as
    attn_mlir.attention; score_mod as attn_mlir.alibi() / softcap(cap);
    q_document_ids [B, Sq] / kv_document_ids [B, Sk] keep keys of the
    query's document, prefix_lens [B] keeps j <= i or j < prefix_lens[b];
    pattern: a mask_mod spec dict of an index pattern (dilated_sliding_window,
    strided, fixed, longformer with q_global [B, Sq] / kv_global [B, Sk]);
    t5: (table [num_buckets, Hq], max_distance, bidirectional), T5's bias
    with the buckets of examples/mods/make_inputs.py's t5_bucket."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    b, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    k = np.repeat(k, hq // hkv, axis=1)
    v = np.repeat(v, hq // hkv, axis=1)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale
    keep = np.ones((b, hq, sq, sk), dtype=bool)
    i = np.arange(sq)[:, None]
    j = np.arange(sk)[None, :]
    shift = sk - sq if align == "bottom_right" else 0
    if causal:
        keep &= j <= i + shift
    if window is not None:
        left, right = (window, 0) if isinstance(window, int) else window
        keep &= (j >= i + shift - left) & (j <= i + shift + right)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype == bool:
            keep &= np.broadcast_to(mask, keep.shape)
        else:
            s = s + np.broadcast_to(mask.astype(np.float64), s.shape)
    if kv_lens is not None:
        keep &= j[None, None] < np.asarray(kv_lens).reshape(b, 1, 1, 1)
    if q_document_ids is not None:
        qd = np.asarray(q_document_ids).reshape(b, 1, sq, 1)
        kd = np.asarray(kv_document_ids).reshape(b, 1, 1, sk)
        keep &= qd == kd
    if prefix_lens is not None:
        keep &= (j <= i) | (j < np.asarray(prefix_lens).reshape(b, 1, 1, 1))
    if pattern is not None:
        dist = i - j
        if pattern["kind"] == "dilated_sliding_window":
            w, dil = pattern["window"], pattern["dilation"]
            keep &= (np.abs(dist) <= w * dil) & (dist % dil == 0)
        elif pattern["kind"] == "strided":
            st = pattern["stride"]
            keep &= (dist >= 0) & ((dist < st) | (dist % st == 0))
        elif pattern["kind"] == "fixed":
            st, c = pattern["stride"], pattern["summary"]
            keep &= (j <= i) & ((j // st == i // st) | (j % st >= st - c))
        else:
            gq = np.asarray(q_global).astype(bool).reshape(b, 1, sq, 1)
            gk = np.asarray(kv_global).astype(bool).reshape(b, 1, 1, sk)
            keep &= (np.abs(dist) <= pattern["window"]) | gq | gk
    keep &= s != -np.inf  # a -inf bias hides the key
    if t5 is not None:
        table, max_distance, bidirectional = t5
        buckets = t5_bucket(j - i, bidirectional, table.shape[0], max_distance)
        s = s + np.asarray(table, np.float64)[buckets].transpose(2, 0, 1)[None]
    if score_mod is not None and score_mod["kind"] == "alibi":
        slopes = np.array(alibi_slopes(hq)).reshape(1, hq, 1, 1)
        s = s + slopes * (j - i)
    elif score_mod is not None:
        cap = score_mod["cap"]
        s = cap * np.tanh(s / cap)
    s = np.where(keep, s, -np.inf)
    m = s.max(-1, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    p = np.where(keep, np.exp(s - m_safe), 0.0)
    l = p.sum(-1, keepdims=True)
    out = np.where(l > 0, (p / np.where(l > 0, l, 1.0)) @ v, 0.0)
    with np.errstate(divide="ignore"):
        lse = np.where(l[..., 0] > 0, m_safe[..., 0] + np.log(l[..., 0]), -np.inf)
    return out, lse


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
