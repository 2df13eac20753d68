"""Shape rules of the PyTorch operators, without torch (so that numpy tests
cover them where torch is not installed).

sdpa_shapes: PyTorch's scaled_dot_product_attention broadcasting.
effective_threads: the CPU thread count a call runs with.
exact_int, finite_scale: argument checks shared by attention() and the
operators.
"""
import math
import numbers

# The largest window extent a spec takes (the kernels index in i32).
MAX_WINDOW = 2**31 - 1


def exact_int(value, name, lo, hi):
    """`value` as an int in [lo, hi]: ints (numpy's too) only, never a float
    truncated or a bool. Raises ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer in {lo}..{hi}, got "
                         f"{value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside {lo}..{hi}")
    return value


def finite_scale(scale, name="scale"):
    """`scale` as a finite float (zero and negative scales mean what they
    say); NaN and infinities raise ValueError naming `name`."""
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"{name}: must be a finite number, got {scale}")
    return scale



def sdpa_shapes(q_shape, k_shape, v_shape, enable_gqa=False):
    """How torch.nn.functional.scaled_dot_product_attention broadcasts query
    (..., Hq, L, E), key (..., Hkv, S, E) and value (..., Hkv, S, Ev).

    As PyTorch does, the leading (batch) dimensions align from the right and
    broadcast (a size-1 or missing dimension is read again): a rank-3 key
    [Hkv, S, E] beside a rank-4 query [N, Hq, L, E] is one key per head,
    shared by the batch. The heads (the dimension before L / S) must be
    equal, or Hkv 1 (MQA) or, with enable_gqa, a divisor of Hq (GQA); a query
    with one head is read for every key/value head.

    Returns (batch, q4, k4, v4, out_shape): `batch` the broadcast leading
    sizes (before the heads), the [B, H, L, E] shape each operand is read at
    (B the product of `batch`; the query's H the output's), and PyTorch's
    output shape (*batch, Hq, L, Ev), of the largest input rank. Raises
    ValueError naming the shapes when they do not broadcast.
    """
    shapes = [tuple(int(d) for d in s) for s in (q_shape, k_shape, v_shape)]
    for name, s in zip(("query", "key", "value"), shapes):
        if len(s) < 2:
            raise ValueError(f"attn_mlir::sdpa: {name} must have rank 2 or more "
                             f"(..., L, E), got shape {list(s)}")
    rank = max(3, max(len(s) for s in shapes))
    padded = [(1,) * (rank - len(s)) + s for s in shapes]
    mismatch = ValueError(
        "attn_mlir::sdpa: query, key and value of shapes "
        f"{[list(s) for s in shapes]} do not broadcast as "
        "scaled_dot_product_attention needs")
    batch = []
    for dims in zip(*(p[:-3] for p in padded)):
        size = max(dims)
        if any(d not in (1, size) for d in dims):
            raise mismatch
        batch.append(size)
    (hq, lq, e), (hk, s, ek), (hv, sv, ev) = (p[-3:] for p in padded)
    if hk != hv or ek != e or sv != s:
        raise mismatch
    if hq == 1 and hk > 1:
        hq = hk  # one query head, read for every key/value head
    elif not (hq == hk or hk == 1 or (enable_gqa and hk > 0 and hq % hk == 0)):
        raise ValueError(f"attn_mlir::sdpa: {hq} query heads and {hk} key/value "
                         "heads need enable_gqa=True and a multiple")
    b = 1
    for d in batch:
        b *= d
    out_shape = (*batch, hq, lq, ev)[-max(len(s) for s in shapes):]
    return batch, (b, hq, lq, e), (b, hk, s, e), (b, hk, s, ev), out_shape


def effective_threads(requested, limit):
    """The CPU threads a PyTorch operator call runs with: torch's count
    (`requested`, which torch.set_num_threads may set beyond the cores)
    clamped silently to 1..`limit` (attn_mlir.max_threads(): the most a
    Context accepts), as PyTorch itself runs oversubscribed counts."""
    return max(1, min(int(requested), int(limit)))
