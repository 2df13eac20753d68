"""The torch operators' shape and thread rules, checked without torch
(attn_mlir._shapes): PyTorch's SDPA broadcasting and the thread clamp."""
import numpy as np
import pytest

import attn_mlir
from attn_mlir._shapes import effective_threads, sdpa_shapes
from conftest import reference_attention


def test_leading_dimensions_align_from_the_right():
    # The probe's case: a rank-3 key / value is one per head, not per batch.
    batch, q4, k4, v4, out = sdpa_shapes((2, 2, 5, 8), (2, 7, 8), (2, 7, 8))
    assert batch == [2]
    assert q4 == (2, 2, 5, 8) and k4 == (2, 2, 7, 8) and v4 == (2, 2, 7, 8)
    assert out == (2, 2, 5, 8)


def test_numpy_broadcasting_matches(rng):
    """The rule, applied with numpy's broadcasting, gives the reference
    attention of the broadcast operands: key per head, shared by the batch."""
    q = rng.standard_normal((2, 2, 5, 8)).astype(np.float32)
    k = rng.standard_normal((2, 7, 8)).astype(np.float32)
    v = rng.standard_normal((2, 7, 8)).astype(np.float32)
    batch, q4, k4, v4, out_shape = sdpa_shapes(q.shape, k.shape, v.shape)
    kb = np.broadcast_to(k, (*batch, *k.shape[-3:])).reshape(k4)
    vb = np.broadcast_to(v, (*batch, *v.shape[-3:])).reshape(v4)
    got = attn_mlir.attention(q.reshape(q4), np.ascontiguousarray(kb),
                              np.ascontiguousarray(vb)).reshape(out_shape)
    want = np.stack([reference_attention(q[n:n + 1], k[None], v[None])[0][0]
                     for n in range(2)])
    assert np.abs(got - want).max() < 1e-5


def test_ranks_and_heads():
    assert sdpa_shapes((7, 16), (9, 16), (9, 4))[4] == (7, 4)
    assert sdpa_shapes((3, 7, 16), (3, 9, 16), (3, 9, 4))[1] == (1, 3, 7, 16)
    batch, q4, _, _, out = sdpa_shapes((2, 3, 4, 5, 16), (3, 1, 6, 16),
                                       (3, 1, 6, 16))
    assert batch == [2, 3] and q4 == (6, 4, 5, 16) and out == (2, 3, 4, 5, 16)
    # One query head read for every key/value head.
    assert sdpa_shapes((1, 1, 5, 8), (1, 4, 6, 8), (1, 4, 6, 8))[4] == (1, 4, 5, 8)
    # GQA needs enable_gqa; MQA does not.
    assert sdpa_shapes((1, 8, 5, 8), (1, 1, 6, 8), (1, 1, 6, 8))[2] == (1, 1, 6, 8)
    with pytest.raises(ValueError, match="need enable_gqa=True"):
        sdpa_shapes((1, 8, 5, 8), (1, 2, 6, 8), (1, 2, 6, 8))
    assert sdpa_shapes((1, 8, 5, 8), (1, 2, 6, 8), (1, 2, 6, 8), True)[2] == (1, 2, 6, 8)
    with pytest.raises(ValueError, match="do not broadcast"):
        sdpa_shapes((2, 2, 5, 8), (3, 2, 7, 8), (3, 2, 7, 8))
    with pytest.raises(ValueError, match="do not broadcast"):
        sdpa_shapes((2, 2, 5, 8), (2, 2, 7, 8), (2, 2, 6, 8))
    with pytest.raises(ValueError, match="rank 2 or more"):
        sdpa_shapes((8,), (7, 8), (7, 8))


def test_threads_are_clamped_silently():
    # torch.set_num_threads(9) on 2 cores: the probe saw "threads: 9 is more
    # than 4 per core" on every call.
    limit = attn_mlir.max_threads()
    assert limit >= 4
    assert effective_threads(limit + 5, limit) == limit
    assert effective_threads(3, limit) == min(3, limit)
    assert effective_threads(0, limit) == 1


def test_scale_and_window_arguments_are_checked(rng):
    """scale NaN / inf gave "spec: not valid JSON"; window=2**31 "must be a
    non-negative integer"; window=2.5 "cannot unpack": each now a ValueError
    naming the argument."""
    q = rng.standard_normal((1, 2, 4, 16)).astype(np.float32)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="scale: must be a finite number"):
            attn_mlir.attention(q, q, q, scale=bad)
    with pytest.raises(ValueError, match=r"window: 2147483648 is outside 0\.\.2147483647"):
        attn_mlir.attention(q, q, q, window=2**31)
    with pytest.raises(ValueError, match="window: expected an integer"):
        attn_mlir.attention(q, q, q, window=2.5)
    with pytest.raises(ValueError, match="window: expected an integer"):
        attn_mlir.attention(q, q, q, window=(1.5, 0))
    # Zero and negative scales mean what they say.
    out = attn_mlir.attention(q, q, q, scale=0.0)
    assert np.allclose(out, np.broadcast_to(q.mean(axis=2, keepdims=True), q.shape),
                       atol=1e-6)
    out = attn_mlir.attention(q, q, q, scale=-0.5)
    want = reference_attention(q, q, q, scale=-0.5)[0]
    assert np.abs(out - want).max() < 1e-5
