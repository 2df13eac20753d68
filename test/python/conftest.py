"""Shared helpers of the attn_mlir pytest suite."""
import math
import os

import numpy as np
import pytest

# No per-user disk cache in tests (a kernel an earlier run left there would
# turn a counted compile into a disk hit); tests of the cache name a folder.
os.environ.setdefault("ATTN_MLIR_CACHE_DIR", "")


def reference_attention(q, k, v, *, scale=None, causal=False, align="top_left",
                        window=None, mask=None, kv_lens=None):
    """float64 softmax(scale q k^T [+ bias], masked) v and the log-sum-exp;
    fully masked rows give 0 and -inf. Shapes as attn_mlir.attention."""
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
