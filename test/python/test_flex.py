"""User-defined score_mod / mask_mod as Python functions (attn_mlir._trace):
attention(score_mod=fn, mask_mod=fn) and flex_attention / create_block_mask
on numpy arrays against a float64 reference that calls the same functions on
numpy index grids (apart from the traced MLIR the kernel runs); captures,
the kernel cache, dynamic lengths and the tracing errors. The torch tests
(tensors, torch.where, FlexAttention itself as the reference) skip without
torch."""
import math

import numpy as np
import pytest

import attn_mlir

RNG = np.random.default_rng(7)


def inputs(b=2, hq=4, hkv=2, sq=70, sk=70, d=32):
    return (RNG.standard_normal((b, hq, sq, d)).astype(np.float32),
            RNG.standard_normal((b, hkv, sk, d)).astype(np.float32),
            RNG.standard_normal((b, hkv, sk, d)).astype(np.float32))


def reference(q, k, v, score_mod=None, mask_mod=None, scale=None):
    """float64 attention with score_mod / mask_mod called once on
    broadcast numpy index grids [B, H, Sq, Sk] (the functions' numpy
    semantics); fully masked rows give 0 and LSE -inf."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    b, hq, sq, d = q.shape
    k = np.repeat(k, hq // k.shape[1], axis=1)
    v = np.repeat(v, hq // v.shape[1], axis=1)
    s = np.einsum("bhid,bhjd->bhij", q, k) * (
        1 / math.sqrt(d) if scale is None else scale)
    grid = np.ix_(np.arange(b), np.arange(hq), np.arange(sq),
                  np.arange(k.shape[2]))
    if score_mod is not None:
        s = np.broadcast_to(score_mod(s, *grid), s.shape).astype(np.float64)
    keep = np.ones(s.shape, dtype=bool)
    if mask_mod is not None:
        keep = np.broadcast_to(mask_mod(*grid), s.shape)
    s = np.where(keep, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.where(keep, np.exp(s - m), 0)
    total = p.sum(axis=-1, keepdims=True)
    out = (p / np.where(total > 0, total, 1)) @ v
    with np.errstate(divide="ignore"):
        lse = (np.log(total) + m)[..., 0]
    return out, lse


def check(got, want, tol=3e-5):
    err = np.abs(np.asarray(got, dtype=np.float64) - want).max()
    assert err <= tol * (1 + np.abs(want).max()), f"max abs error {err}"


SLOPES = np.array([0.5, 0.25, 0.125, 0.0625], dtype=np.float32)


def alibi_mod(score, b, h, q_idx, kv_idx):
    return score + SLOPES[h] * (kv_idx - q_idx)  # a module-level capture


def test_score_mods_match_reference():
    q, k, v = inputs()
    table = RNG.standard_normal((4, 2 * 70)).astype(np.float32)

    def relative(score, b, h, q_idx, kv_idx):  # a closure capture, 2-D
        return score + table[h, q_idx - kv_idx + 70]

    def softcap(score, b, h, q_idx, kv_idx):
        return 3.0 * np.tanh(score / 3.0)

    def mixed(score, b, h, q_idx, kv_idx):  # int // and %, where, sqrt
        far = (q_idx - kv_idx) // 8 % 3
        return np.where(far == 1, score * 0.5, score + np.sqrt(h + 1.0))

    for fn in (alibi_mod, relative, softcap, mixed):
        out, lse = attn_mlir.attention(q, k, v, score_mod=fn, return_lse=True)
        want, want_lse = reference(q, k, v, score_mod=fn)
        check(out, want)
        check(lse, want_lse)


def test_mask_mods_match_reference():
    q, k, v = inputs(sq=90, sk=90)
    docs = np.repeat(np.arange(4), [20, 31, 9, 30])
    docs2 = np.stack([docs, docs[::-1]])  # [B, S] document ids per batch

    def document_causal(b, h, q_idx, kv_idx):
        return (docs2[b, q_idx] == docs2[b, kv_idx]) & (kv_idx <= q_idx)

    def empty_rows(b, h, q_idx, kv_idx):  # rows 3, 10, ... see no key
        return (q_idx % 7 != 3) & ((kv_idx + h) % 3 != 0)

    def prefix(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) | (kv_idx < 17)

    for fn in (document_causal, empty_rows, prefix):
        out, lse = attn_mlir.attention(q, k, v, mask_mod=fn, return_lse=True)
        want, want_lse = reference(q, k, v, mask_mod=fn)
        check(out, want)
        assert np.array_equal(np.isneginf(lse), np.isneginf(want_lse))
        check(np.where(np.isinf(want_lse), 0, lse),
              np.where(np.isinf(want_lse), 0, want_lse))
    out = attn_mlir.attention(q, k, v, mask_mod=empty_rows)
    assert np.all(out[:, :, 3::7] == 0)


def test_score_and_mask_mod_together_with_causal():
    q, k, v = inputs(sq=33, sk=80)
    flags = (RNG.random(80) < 0.3).astype(np.int64)

    def flagged(b, h, q_idx, kv_idx):
        return flags[kv_idx] == 0

    out = attn_mlir.attention(q, k, v, causal=True, align="bottom_right",
                              score_mod=alibi_mod, mask_mod=flagged)
    shift = 80 - 33
    want, _ = reference(q, k, v, score_mod=alibi_mod,
                        mask_mod=lambda b, h, i, j: flagged(b, h, i, j)
                        & (j <= i + shift))
    check(out, want)


def test_new_capture_values_reuse_the_kernel():
    q, k, v = inputs(b=1, sq=64, sk=64)
    before = attn_mlir.cache_stats()["compiles"]
    results = []
    for first in (10, 40):
        lens = np.array([first])

        def prefix(b, h, q_idx, kv_idx):
            return (kv_idx <= q_idx) | (kv_idx < lens[b])

        results.append(attn_mlir.attention(q, k, v, mask_mod=prefix))
        check(results[-1], reference(q, k, v, mask_mod=prefix)[0])
    assert attn_mlir.cache_stats()["compiles"] - before == 1
    assert not np.allclose(results[0], results[1])


def test_index_only_mask_mod_serves_every_length():
    def banded(b, h, q_idx, kv_idx):
        return abs(q_idx - kv_idx) % 5 != 2

    before = attn_mlir.cache_stats()["compiles"]
    for s in (17, 64, 130):
        q, k, v = inputs(b=1, sq=s, sk=s)
        out = attn_mlir.attention(q, k, v, mask_mod=banded, dynamic=True)
        check(out, reference(q, k, v, mask_mod=banded)[0])
    # One kernel handle for every length: its prefill and decode kernels.
    assert attn_mlir.cache_stats()["compiles"] - before <= 2


def test_wide_integer_capture_and_clamped_reads():
    q, k, v = inputs(b=1, hq=2, hkv=2, sq=40, sk=40)
    ids = np.arange(40, dtype=np.int64) * 2**33  # beyond int32: an i64 capture
    bias = np.linspace(-1, 1, 8).astype(np.float32)

    def same_pair(b, h, q_idx, kv_idx):
        return ids[q_idx] // 2**34 == ids[kv_idx] // 2**34

    out = attn_mlir.attention(q, k, v, mask_mod=same_pair)
    check(out, reference(q, k, v, mask_mod=same_pair)[0])

    def clamped(score, b, h, q_idx, kv_idx):  # indices beyond 7 read bias[7]
        return score + bias[q_idx]

    out = attn_mlir.attention(q, k, v, score_mod=clamped)
    want = reference(q, k, v, score_mod=lambda s, b, h, i, j:
                     s + bias[np.minimum(i, 7)])[0]
    check(out, want)


TABLE = np.linspace(-1, 1, 64).astype(np.float32)


def _bucket(distance):  # a module-level helper reading a module array
    return TABLE[np.minimum(abs(distance), 63)]


def test_helpers_defaults_and_reflected_operators():
    q, k, v = inputs(b=1, sq=50, sk=50)
    scales = np.array([0.5, 1.5, 1.0, 2.0], dtype=np.float32)

    def with_helper(score, b, h, q_idx, kv_idx, scales=scales):
        return 2.0 - (1.0 - score * scales[h]) + _bucket(q_idx - kv_idx)

    out = attn_mlir.attention(q, k, v, score_mod=with_helper)
    check(out, reference(q, k, v, score_mod=with_helper)[0])


def test_untraceable_functions_raise_type_error():
    q, k, v = inputs(b=1, sq=8, sk=8)

    class Holder:
        table = np.ones(4, dtype=np.float32)

    cases = {
        "Python control flow": lambda s, b, h, i, j: s if i > j else -s,
        "conversion to a Python float": lambda s, b, h, i, j: math.exp(s),
        "tracer does not see": lambda s, b, h, i, j: s + Holder.table[h],
        "numpy.sort": lambda s, b, h, i, j: np.sort(s),
        "must return a number": lambda s, b, h, i, j: None,
    }
    for message, fn in cases.items():
        with pytest.raises(TypeError, match=message):
            attn_mlir.attention(q, k, v, score_mod=fn)
    with pytest.raises(TypeError, match="mask_mod: expected a function"):
        attn_mlir.attention(q, k, v, mask_mod=3)


def test_flex_attention_interface():
    q, k, v = inputs(b=2, hq=4, hkv=2, sq=50, sk=60)

    def window(b, h, q_idx, kv_idx):
        return abs(q_idx - kv_idx) <= 9

    mask = attn_mlir.create_block_mask(window, None, None, 50, 60)
    assert mask.shape == (1, 1, 50, 60)
    out, lse = attn_mlir.flex_attention(q, k, v, score_mod=alibi_mod,
                                        block_mask=mask, enable_gqa=True,
                                        return_lse=True, scale=0.3)
    want, want_lse = reference(q, k, v, score_mod=alibi_mod, mask_mod=window,
                               scale=0.3)
    check(out, want)
    check(lse, want_lse)
    with pytest.raises(ValueError, match="enable_gqa=True"):
        attn_mlir.flex_attention(q, k, v)
    with pytest.raises(ValueError, match="block_mask was made for"):
        attn_mlir.flex_attention(
            q, k, v, enable_gqa=True,
            block_mask=attn_mlir.create_block_mask(window, 2, 4, 50, 61))
    with pytest.raises(TypeError, match="Python control flow"):
        attn_mlir.create_block_mask(lambda b, h, i, j: i > j and j > 0,
                                    1, 1, 8, 8)


def test_flex_attention_matches_torch_flex_attention():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    torch.manual_seed(0)
    b, h, s, d = 2, 4, 100, 32
    q = torch.randn(b, h, s, d)
    k, v = torch.randn(b, 2, s, d), torch.randn(b, 2, s, d)
    doc = torch.tensor(np.repeat(np.arange(3), [30, 50, 20]))
    bias = torch.randn(h, 2 * s)

    def score_mod(score, b, h, q_idx, kv_idx):
        return torch.tanh(score / 5.0) * 5.0 + bias[h, q_idx - kv_idx + s]

    def mask_mod(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (kv_idx <= q_idx)

    def where_mod(score, b, h, q_idx, kv_idx):
        return torch.where(q_idx >= kv_idx, score, torch.tensor(1.5) - score)

    mine = attn_mlir.create_block_mask(mask_mod, None, None, s, s)
    theirs = flex.create_block_mask(mask_mod, None, None, s, s, device="cpu")
    for fn in (score_mod, where_mod):
        out, lse = attn_mlir.flex_attention(q, k, v, score_mod=fn,
                                            block_mask=mine, enable_gqa=True,
                                            return_lse=True)
        ref, ref_lse = flex.flex_attention(q, k, v, score_mod=fn,
                                           block_mask=theirs, enable_gqa=True,
                                           return_lse=True)
        assert isinstance(out, torch.Tensor)
        assert (out - ref).abs().max().item() < 1e-4
        assert (lse - ref_lse).abs().max().item() < 1e-4
