"""The PyTorch operator ``torch.ops.attn_mlir.sdpa``: scaled dot-product
attention executed by attn-mlir kernels.

    import torch, attn_mlir.torch_ops
    out = torch.ops.attn_mlir.sdpa(q, k, v, attn_mask=None, dropout_p=0.0,
                                   is_causal=True, scale=None, enable_gqa=False)

It takes the arguments of ``torch.nn.functional.scaled_dot_product_attention``
and has its semantics: q [..., Hq, L, E], k [..., Hkv, S, E], v [..., Hkv, S, Ev]
(rank 3 or 4; float32, float16 or bfloat16); attn_mask broadcastable to
[B, Hq, L, S], bool (True = take part in attention) or float (added to the
scaled scores); is_causal: the top-left causal mask (torch.tril); scale:
default 1/sqrt(E); enable_gqa: Hq a multiple of Hkv. dropout_p must be 0.
Returns [..., Hq, L, Ev] in q's dtype.

Registered through ``torch.library`` (a schema, CPU and CUDA kernels, and a
fake kernel with ``torch.library.register_fake``), so it traces under
torch.compile / torch.export as one opaque node. CPU tensors run
on the JIT's CPU kernels, read in place (strided views such as BERT's
transposed heads are not copied; an operand whose last dimension is strided
is); CUDA tensors run on the CUDA target (PTX from attn-cuda-pipeline,
launched through libcuda; RuntimeError without a driver or device). Kernels are
compiled per (head counts, head dims, q_len, dtype, mask layout, causal,
scale) on first use and cached: batch and kv_len are run-time values by
default, so a generation loop compiles once (see set_dynamic_shapes;
attn_mlir.cache_stats() counts compiles and hits).

CPU kernels run on ``torch.get_num_threads()`` threads (read at each call)
unless set_num_threads fixes a count. scale may be any finite number (0:
equal weights over the visible keys). float64 inputs are computed in
float32 (the kernels' precision, softmax and accumulation included) and the
result cast back, with a UserWarning.

Differences from PyTorch: a query row whose keys are all masked gives 0
(PyTorch's math backend gives 0 as well since 2.5; older versions NaN).
Raises ValueError for unsupported arguments (dropout, dtypes, shapes that do
not broadcast, a mask together with is_causal), and RuntimeError when grad
mode is on and an input requires grad: there is no backward pass yet, so run
inference under torch.no_grad() or torch.inference_mode().

``flash_attn_func`` (``torch.ops.attn_mlir.flash_attn``) is the same kernels
with FlashAttention's layout and keyword names: q [B, Sq, Hq, D], k/v
[B, Sk, Hkv, D|Dv], ``softmax_scale``, ``causal`` and ``window_size`` (aligned
bottom-right, as FlashAttention >= 2.1), ``cache_seqlens`` (key padding, as
flash_attn_with_kvcache) and ``return_softmax_lse``.
"""

import collections
import json
import warnings

import threading

import torch

import attn_mlir
from attn_mlir._shapes import (MAX_WINDOW, effective_threads, exact_int,
                               finite_scale, sdpa_shapes)

__all__ = ["sdpa", "flash_attn_func", "call_count", "reset_call_count",
           "set_dynamic_shapes", "set_num_threads", "clear_cache"]

_lock = threading.Lock()
_kernels = collections.OrderedDict()  # least recently used first
_calls = 0
_hits = 0
_dynamic = "kv"
_num_threads = None  # None: torch.get_num_threads() at each call

_TORCH_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def set_dynamic_shapes(enabled):
    """Which lengths the operator's kernels take at run time. "kv" (the
    default): batch and kv_len, so that a generation loop (q_len 1, the KV
    cache growing a token a step) compiles one kernel; True: q_len too (one
    kernel for every shape, with prefill and one-row decode tiles behind it);
    False: a kernel per shape. attn_mlir.cache_stats() counts compiles."""
    global _dynamic
    if enabled not in ("kv", True, False):
        raise ValueError(f"set_dynamic_shapes: expected 'kv', True or False, "
                         f"got {enabled!r}")
    _dynamic = enabled


def set_num_threads(threads):
    """CPU worker threads of the operators' kernels: None (the default)
    follows torch.get_num_threads() at each call; a positive int fixes the
    count. Each count has its own attn_mlir Context (kernels of another
    count are compiled again, or loaded from the disk cache)."""
    global _num_threads
    if threads is not None and (not isinstance(threads, int) or threads <= 0):
        raise ValueError(f"set_num_threads: expected None or a positive int, "
                         f"got {threads!r}")
    _num_threads = threads


def _threads_key(device):
    """The CPU thread count calls on `device` run with (0 for CUDA): part of
    the kernel cache key, and the Context's count."""
    if device != "cpu":
        return 0
    if _num_threads is not None:
        return _num_threads
    # torch.set_num_threads may exceed what a Context accepts (4 per core):
    # clamped silently, as PyTorch runs oversubscribed.
    return effective_threads(torch.get_num_threads(), attn_mlir.max_threads())


def _context(device):
    """The attn_mlir Context a call on `device` runs on."""
    return attn_mlir.default_context(device, threads=_threads_key(device))


_F64_WARNING = ("attn_mlir: float64 inputs are computed in float32 (the "
                "kernels' precision) and the result is cast back to float64")


def _from_float64(tensors):
    """float64 tensors (None passes) as float32, with the warning once per
    call site."""
    warnings.warn(_F64_WARNING, UserWarning, stacklevel=4)
    return [None if t is None else t.float() if t.dtype == torch.float64 else t
            for t in tensors]


def _kernel(cache_key, device, make_spec):
    """The cached kernel of `cache_key`, or the kernel of make_spec()
    compiled for `device` and cached."""
    kernel = _kernels.get(cache_key)
    if kernel is not None:
        global _hits
        _hits += 1
        try:  # no lock on the hot path; a concurrent trim may have dropped it
            _kernels.move_to_end(cache_key)
        except KeyError:
            pass
        return kernel
    if device not in ("cpu", "cuda"):
        raise ValueError(f"attn_mlir: tensors on '{device}' are not "
                         "supported (cpu, cuda)")
    kernel = attn_mlir.compile(make_spec(), target=device,
                               context=_context(device))
    with _lock:
        _kernels[cache_key] = kernel
        attn_mlir._trim(_kernels)
    return kernel


def call_count():
    """How many times the attn_mlir::sdpa CPU/CUDA kernel ran (eager calls,
    not fake-tensor tracing)."""
    return _calls


def reset_call_count():
    global _calls
    _calls = 0


def clear_cache():
    """Drops the operator's kernel handles (the context keeps its cache)."""
    with _lock:
        _kernels.clear()


def _mask_layout(mask, b, hq, lq, s):
    """Brings attn_mask to [B|1, Hq|1, L|1, S] without copying when possible:
    returns (mask4d, (batch_broadcast, head_broadcast, query_broadcast))."""
    if mask.dim() > 4:
        raise ValueError(f"attn_mask: rank {mask.dim()} is above 4")
    m = mask
    while m.dim() < 4:
        m = m.unsqueeze(0)
    target = (b, hq, lq, s)
    flags = []
    for d in range(3):
        if m.shape[d] == target[d]:
            flags.append(target[d] == 1)
        elif m.shape[d] == 1:
            flags.append(True)
        else:
            raise ValueError(f"attn_mask: shape {list(mask.shape)} does not "
                             f"broadcast to {list(target)}")
    if m.shape[3] != s:
        if m.shape[3] != 1:
            raise ValueError(f"attn_mask: shape {list(mask.shape)} does not "
                             f"broadcast to {list(target)}")
        m = m.expand(*m.shape[:3], s)
    if m.stride(3) != 1 and s != 1:
        m = m.contiguous()
    return m, tuple(flags)


def _already_4d(query, key, value):
    """Whether query, key and value are read as they are: rank 4, one batch
    size, the query's heads a multiple of the key's (else PyTorch's
    broadcasting applies, sdpa_shapes)."""
    return (query.dim() == key.dim() == value.dim() == 4 and
            query.shape[0] == key.shape[0] == value.shape[0] and
            query.shape[1] >= key.shape[1])


def _read_at(t, batch, shape4):
    """`t` right-aligned to (*batch, H, L, E), its size-1 leading dimensions
    read again (PyTorch's broadcasting), as the [B, H, L, E] `shape4`."""
    t = t.reshape((1,) * (len(batch) + 3 - t.dim()) + tuple(t.shape))
    return t.expand(*batch, shape4[1], *t.shape[-2:]).reshape(shape4)


def _mask_at(m, batch, b):
    """An attn_mask broadcastable to (*batch, H, L, S), as rank 4 with the
    batch dimensions flattened to `b` (or 1 where it is broadcast)."""
    m = m.reshape((1,) * max(0, len(batch) + 3 - m.dim()) + tuple(m.shape))
    lead = m.shape[:-3]
    if all(d == 1 for d in lead):
        return m.reshape(1, *m.shape[-3:])
    return m.expand(*batch, *m.shape[-3:]).reshape(b, *m.shape[-3:])


def _spec_dtype(op, names, q, k, v):
    """The spec dtype of q, k, v, which must share one supported dtype."""
    dtype = _TORCH_DTYPES.get(q.dtype)
    if dtype is None or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"attn_mlir::{op}: {names} must share one dtype among "
                         f"float32, float16, bfloat16; got {q.dtype}, "
                         f"{k.dtype}, {v.dtype}")
    return dtype


def _unit_stride_rows(tensors):
    """The kernels read rows with unit stride: a copy of each tensor whose
    last dimension is strided (PyTorch accepts any layout)."""
    return [t if t.stride(3) == 1 or t.shape[3] == 1 else t.contiguous()
            for t in tensors]


def _sdpa_spec(q, k, v, mask, flags, is_causal, scale, enable_gqa):
    """Checks the arguments of a new kernel shape and returns its spec."""
    dtype = _spec_dtype("sdpa", "query, key and value", q, k, v)
    b, hq, lq, e = q.shape
    hkv, s, ev = k.shape[1], k.shape[2], v.shape[3]
    if k.shape[0] != b or v.shape[0] != b:
        raise ValueError("attn_mlir::sdpa: query, key and value must have the "
                         f"same batch size; got {list(q.shape)}, "
                         f"{list(k.shape)}, {list(v.shape)}")
    if hq != hkv and not (hkv == 1 or (enable_gqa and hq % hkv == 0)):
        raise ValueError(f"attn_mlir::sdpa: {hq} query heads and {hkv} key/value "
                         "heads need enable_gqa=True and a multiple")
    dyn_q = _dynamic is True
    dyn_bk = _dynamic is not False
    spec = {"batch": None if dyn_bk else b, "q_heads": hq, "kv_heads": hkv,
            "q_len": None if dyn_q else lq, "kv_len": None if dyn_bk else s,
            "head_dim": e, "v_head_dim": ev, "dtype": dtype, "mask": []}
    if scale is not None:
        spec["scale"] = finite_scale(scale)
    if is_causal:
        spec["mask"].append({"kind": "causal", "align": "top_left"})
    if mask is not None:
        bb, hb, qb = flags
        spec["mask"].append({"kind": "tensor",
                             "dtype": "bool" if mask.dtype == torch.bool
                             else _TORCH_DTYPES[mask.dtype],
                             "batch_broadcast": bb, "head_broadcast": hb,
                             "query_broadcast": qb})
    return spec


_NO_BACKWARD = ("attn_mlir::sdpa has no backward pass yet, so inputs that "
                "require grad would silently get no gradient; run it under "
                "torch.no_grad() or torch.inference_mode(), or detach() the "
                "inputs (training: use torch.nn.functional."
                "scaled_dot_product_attention)")


def _check_no_grad(*tensors):
    """Raises RuntimeError when autograd would record a call of the operator
    (grad mode on and an input requiring grad): the operator has no backward
    yet, and a result without a gradient is a silent wrong answer."""
    if torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in tensors):
        raise RuntimeError(_NO_BACKWARD)


def _sdpa_impl(query, key, value, attn_mask=None, dropout_p=0.0,
               is_causal=False, scale=None, enable_gqa=False):
    global _calls
    _check_no_grad(query, key, value, attn_mask)
    if dropout_p != 0.0:
        raise ValueError("attn_mlir::sdpa: dropout_p must be 0.0 "
                         f"(got {dropout_p}); use it for inference")
    if query.dtype == key.dtype == value.dtype == torch.float64:
        query, key, value, attn_mask = _from_float64(
            (query, key, value, attn_mask))
        return _sdpa_impl(query, key, value, attn_mask, dropout_p, is_causal,
                          scale, enable_gqa).double()
    out_shape = batch = None
    if _already_4d(query, key, value):
        q, k, v = query, key, value
    else:
        # PyTorch's broadcasting: leading dimensions aligned from the right.
        batch, q4, k4, v4, out_shape = sdpa_shapes(
            query.shape, key.shape, value.shape, enable_gqa)
        q, k, v = (_read_at(t, batch, s4) for t, s4 in
                   ((query, q4), (key, k4), (value, v4)))
    q, k, v = _unit_stride_rows((q, k, v))
    qs, ks, vs = q.shape, k.shape, v.shape
    mask = flags = mask_key = None
    if attn_mask is not None:
        if is_causal:
            raise ValueError("attn_mlir::sdpa: an explicit attn_mask cannot be "
                             "combined with is_causal=True (as in PyTorch)")
        m = attn_mask
        if m.dtype != torch.bool and m.dtype not in _TORCH_DTYPES:
            raise ValueError(f"attn_mask: dtype {m.dtype} is not bool or "
                             "float32/float16/bfloat16")
        if batch is not None:
            m = _mask_at(m, batch, qs[0])
        mask, flags = _mask_layout(m, qs[0], qs[1], qs[2], ks[2])
        mask_key = (mask.dtype, flags)
    # Run-time lengths are not part of the key (see set_dynamic_shapes).
    dyn_bk = _dynamic is not False
    b = None if dyn_bk else qs[0]
    lq = qs[2] if _dynamic is not True else None
    s = None if dyn_bk else ks[2]
    device = q.device.type
    cache_key = ("sdpa", b, qs[1], lq, qs[3], ks[1], s, ks[3], vs[3], q.dtype,
                 device, _threads_key(device), mask_key, is_causal, scale,
                 enable_gqa, _dynamic)
    kernel = _kernel(cache_key, device, lambda: _sdpa_spec(
        q, k, v, mask, flags, is_causal, scale, enable_gqa))
    out = q.new_empty((qs[0], qs[1], qs[2], vs[3]))
    kernel(q, k, v, mask, None, out)
    _calls += 1
    return out if out_shape is None else out.reshape(out_shape)


# The operator is defined with torch.library.Library rather than the
# torch.library.custom_op decorator: custom_op wraps every call in Python
# layers (autograd dispatch, alias checks) that cost about 20 us per call,
# more than everything else on the path for small shapes.
_lib = torch.library.Library("attn_mlir", "DEF")
_lib.define("sdpa(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None, "
            "float dropout_p=0.0, bool is_causal=False, float? scale=None, "
            "bool enable_gqa=False) -> Tensor")
_lib.impl("sdpa", _sdpa_impl, "CPU")
_lib.impl("sdpa", _sdpa_impl, "CUDA")


@torch.library.register_fake("attn_mlir::sdpa")
def _sdpa_fake(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
               scale=None, enable_gqa=False):
    _check_no_grad(query, key, value, attn_mask)
    if _already_4d(query, key, value):
        return query.new_empty((*query.shape[:-1], value.shape[-1]))
    out_shape = sdpa_shapes(query.shape, key.shape, value.shape, enable_gqa)[4]
    return query.new_empty(out_shape)


_NESTED = ("attn_mlir: nested (jagged) tensors are not supported yet (packed "
           "variable-length batches are an open issue); pad the sequences to "
           "one length and pass the lengths as key padding "
           "(attn_mlir.attention(..., kv_lens=...) or flash_attn_func(..., "
           "cache_seqlens=...)), or use "
           "torch.nn.functional.scaled_dot_product_attention")


def _refuse_nested(*tensors):
    """Raises ValueError saying what to use instead for nested tensors."""
    if any(isinstance(t, torch.Tensor) and t.is_nested for t in tensors):
        raise ValueError(_NESTED)


def _nested_impl(*args, **kwargs):
    raise ValueError(_NESTED)


# Nested tensors of the strided layout dispatch here (instead of torch's
# bare NotImplementedError); jagged ones are refused by the Python entry
# points below.
for _key in ("NestedTensorCPU", "NestedTensorCUDA", "AutogradNestedTensor"):
    _lib.impl("sdpa", _nested_impl, _key)


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
         scale=None, enable_gqa=False):
    """Scaled dot-product attention on attn-mlir kernels, with the arguments
    and semantics of torch.nn.functional.scaled_dot_product_attention (see
    the module docstring): torch.ops.attn_mlir.sdpa. Nested (jagged)
    tensors raise ValueError saying what to use instead."""
    _refuse_nested(query, key, value, attn_mask)
    return torch.ops.attn_mlir.sdpa(query, key, value, attn_mask, dropout_p,
                                    is_causal, scale, enable_gqa)


# FlashAttention's int32 bound for "no limit" on a window side.
_NO_WINDOW_LIMIT = 2**31 - 1


def _band_masks(causal, window_left, window_right):
    """The spec's band mask for FlashAttention's (causal, window_size):
    -1 is no limit on that side, causal caps the right side at 0; both
    aligned bottom-right (the query rows are the last Sq of the keys)."""
    left = None if window_left < 0 else window_left
    right = None if window_right < 0 else window_right
    if causal:
        right = 0 if right is None else min(right, 0)
    if left is None and right is None:
        return []
    if left is None and right == 0:
        return [{"kind": "causal", "align": "bottom_right"}]
    return [{"kind": "sliding_window",
             "left": _NO_WINDOW_LIMIT if left is None else int(left),
             "right": _NO_WINDOW_LIMIT if right is None else int(right),
             "align": "bottom_right"}]


def _flash_attn_impl(q, k, v, softmax_scale=None, causal=False, window_left=-1,
                     window_right=-1, cache_seqlens=None,
                     return_softmax_lse=False):
    global _calls
    _check_no_grad(q, k, v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"attn_mlir::flash_attn: {name}: expected rank 4 "
                             "[batch, seqlen, nheads, headdim], got shape "
                             f"{list(t.shape)}")
    if q.dtype == k.dtype == v.dtype == torch.float64:
        q, k, v = _from_float64((q, k, v))
        out, lse = _flash_attn_impl(q, k, v, softmax_scale, causal,
                                    window_left, window_right, cache_seqlens,
                                    return_softmax_lse)
        return out.double(), lse
    b, sq, hq, d = q.shape
    sk, hkv, dv = k.shape[1], k.shape[2], v.shape[3]
    if k.shape[0] != b or v.shape[0] != b or v.shape[1] != sk or v.shape[2] != hkv:
        raise ValueError("attn_mlir::flash_attn: q, k, v must share batch and "
                         "k, v seqlen and nheads; got "
                         f"{list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    if k.shape[3] != d:
        raise ValueError(f"attn_mlir::flash_attn: k headdim {k.shape[3]} != q "
                         f"headdim {d}")
    if hq % hkv != 0:
        raise ValueError(f"attn_mlir::flash_attn: {hq} query heads are not a "
                         f"multiple of {hkv} key/value heads")
    dtype = _spec_dtype("flash_attn", "q, k and v", q, k, v)
    if cache_seqlens is not None and (cache_seqlens.dtype not in (
            torch.int32, torch.int64) or tuple(cache_seqlens.shape) != (b,)):
        raise ValueError("attn_mlir::flash_attn: cache_seqlens must be an "
                         f"int32/int64 [{b}] tensor, got {cache_seqlens.dtype} "
                         f"{list(cache_seqlens.shape)}")
    if cache_seqlens is not None and cache_seqlens.device != q.device:
        raise ValueError("attn_mlir::flash_attn: cache_seqlens must be on "
                         f"{q.device}")
    bands = _band_masks(causal, window_left, window_right)
    if cache_seqlens is not None and bands and (sq > 1 or window_left >= 0):
        # FlashAttention aligns the band to each sequence's cache_seqlens[b];
        # these kernels align it to the padded key length Sk. The two agree
        # for one query row without a left window limit (causal decoding),
        # the case this supports.
        raise ValueError("attn_mlir::flash_attn: causal / window_size with "
                         "cache_seqlens needs seqlen_q == 1 and no left "
                         "window limit (the band would be aligned to the "
                         "padded key length, not to each cache_seqlens[b] "
                         "as FlashAttention does)")
    # [B, S, H, D] -> [B, H, S, D] views: the kernels read strides.
    qh, kh, vh = _unit_stride_rows([t.transpose(1, 2) for t in (q, k, v)])
    device = q.device.type
    dyn_bk = _dynamic is not False
    lq = sq if _dynamic is not True else None
    lens_dtype = None if cache_seqlens is None else cache_seqlens.dtype
    cache_key = ("flash_attn", None if dyn_bk else b, hq, lq, d, hkv,
                 None if dyn_bk else sk, dv, q.dtype, device,
                 _threads_key(device), json.dumps(bands), lens_dtype,
                 softmax_scale, bool(return_softmax_lse), _dynamic)

    def make_spec():
        spec = {"batch": None if dyn_bk else b, "q_heads": hq,
                "kv_heads": hkv, "q_len": lq, "kv_len": None if dyn_bk else sk,
                "head_dim": d, "v_head_dim": dv, "dtype": dtype,
                "lse": bool(return_softmax_lse), "mask": list(bands)}
        if softmax_scale is not None:
            spec["scale"] = finite_scale(softmax_scale, "softmax_scale")
        if cache_seqlens is not None:
            spec["mask"].append({"kind": "key_padding",
                                 "dtype": "i32" if lens_dtype == torch.int32
                                 else "i64"})
        return spec

    kernel = _kernel(cache_key, device, make_spec)
    out = q.new_empty((b, sq, hq, dv))
    if return_softmax_lse:
        lse = torch.empty((b, hq, sq), dtype=torch.float32, device=q.device)
        kernel(qh, kh, vh, None, cache_seqlens, out.transpose(1, 2), lse, True)
    else:
        lse = q.new_empty((0,), dtype=torch.float32)
        kernel(qh, kh, vh, None, cache_seqlens, out.transpose(1, 2))
    _calls += 1
    return out, lse


_lib.define("flash_attn(Tensor q, Tensor k, Tensor v, float? softmax_scale=None, "
            "bool causal=False, int window_left=-1, int window_right=-1, "
            "Tensor? cache_seqlens=None, bool return_softmax_lse=False) "
            "-> (Tensor, Tensor)")
_lib.impl("flash_attn", _flash_attn_impl, "CPU")
_lib.impl("flash_attn", _flash_attn_impl, "CUDA")


@torch.library.register_fake("attn_mlir::flash_attn")
def _flash_attn_fake(q, k, v, softmax_scale=None, causal=False, window_left=-1,
                     window_right=-1, cache_seqlens=None,
                     return_softmax_lse=False):
    _check_no_grad(q, k, v)
    b, sq, hq = q.shape[0], q.shape[1], q.shape[2]
    out = q.new_empty((b, sq, hq, v.shape[-1]))
    lse = (q.new_empty((b, hq, sq), dtype=torch.float32) if return_softmax_lse
           else q.new_empty((0,), dtype=torch.float32))
    return out, lse


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
                    window_size=(-1, -1), *, cache_seqlens=None,
                    return_softmax_lse=False):
    """FlashAttention's ``flash_attn_func`` on attn-mlir kernels
    (torch.ops.attn_mlir.flash_attn).

    q: [B, Sq, Hq, D], k: [B, Sk, Hkv, D], v: [B, Sk, Hkv, Dv] (any strides
    with unit-stride rows; Hq % Hkv == 0 for GQA/MQA), float32, float16 or
    bfloat16 (float64: computed in float32, with a warning).
    softmax_scale: default 1/sqrt(D). causal: key j is visible to query i
    when j <= i + Sk - Sq (bottom-right, FlashAttention >= 2.1).
    window_size: (left, right), -1 for no limit: keys in
    [i + Sk - Sq - left, i + Sk - Sq + right]; with causal, right is at
    most 0. cache_seqlens: int32/int64 [B] keys per sequence (keys
    j >= cache_seqlens[b] are hidden, as flash_attn_with_kvcache; together
    with causal or window_size only for Sq == 1 and left == -1, where
    aligning to the padded Sk is the same as FlashAttention's alignment to
    each cache_seqlens[b]).
    return_softmax_lse: also return the [B, Hq, Sq] float32 log-sum-exp
    (natural log; -inf for a row with no visible key, whose output is 0).
    dropout_p must be 0 (no dropout yet).

    Returns out [B, Sq, Hq, Dv] in q's dtype, or (out, softmax_lse).
    Raises ValueError for shapes, dtypes, devices or dropout, RuntimeError
    when an input requires grad under grad mode (no backward pass yet).
    """
    _refuse_nested(q, k, v, cache_seqlens)
    if dropout_p != 0.0:
        raise ValueError(f"flash_attn_func: dropout_p must be 0.0 (got "
                         f"{dropout_p}); use it for inference")
    try:
        left, right = window_size
    except (TypeError, ValueError):
        raise ValueError(f"flash_attn_func: window_size must be a pair of "
                         f"ints, got {window_size!r}") from None
    left, right = (exact_int(w, "flash_attn_func: window_size", -1, MAX_WINDOW)
                   for w in (left, right))
    out, lse = torch.ops.attn_mlir.flash_attn(
        q, k, v, softmax_scale, bool(causal), left, right, cache_seqlens,
        bool(return_softmax_lse))
    return (out, lse) if return_softmax_lse else out
