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

Differences from PyTorch: a query row whose keys are all masked gives 0
(PyTorch's math backend gives 0 as well since 2.5; older versions NaN).
Raises ValueError for unsupported arguments (dropout, dtypes, shapes that do
not broadcast, a mask together with is_causal), and RuntimeError when grad
mode is on and an input requires grad: there is no backward pass yet, so run
inference under torch.no_grad() or torch.inference_mode().
"""

import threading

import torch

import attn_mlir

__all__ = ["sdpa", "call_count", "reset_call_count", "set_dynamic_shapes",
           "clear_cache"]

_lock = threading.Lock()
_kernels = {}
_calls = 0
_hits = 0
_dynamic = "kv"

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


def _to4d(t, name):
    if t.dim() == 4:
        return t
    if t.dim() == 3:
        return t.unsqueeze(1)  # [N, L, E] -> [N, 1, L, E]
    if t.dim() > 4:
        return t.reshape(-1, *t.shape[-3:])
    raise ValueError(f"{name}: expected rank 3 or 4 [..., H, L, E], got shape "
                     f"{list(t.shape)}")


def _compile(cache_key, q, k, v, mask, flags, is_causal, scale, enable_gqa):
    """Checks the arguments of a new kernel shape and compiles it."""
    dtype = _TORCH_DTYPES.get(q.dtype)
    if dtype is None or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError("attn_mlir::sdpa: query, key and value must share one "
                         "dtype among float32, float16, bfloat16; got "
                         f"{q.dtype}, {k.dtype}, {v.dtype}")
    b, hq, lq, e = q.shape
    hkv, s, ev = k.shape[1], k.shape[2], v.shape[3]
    if k.shape[0] != b or v.shape[0] != b:
        raise ValueError("attn_mlir::sdpa: query, key and value must have the "
                         f"same batch size; got {list(q.shape)}, "
                         f"{list(k.shape)}, {list(v.shape)}")
    if hq != hkv and not (hkv == 1 or (enable_gqa and hq % hkv == 0)):
        raise ValueError(f"attn_mlir::sdpa: {hq} query heads and {hkv} key/value "
                         "heads need enable_gqa=True and a multiple")
    device = q.device.type
    if device not in ("cpu", "cuda"):
        raise ValueError(f"attn_mlir::sdpa: tensors on '{device}' are not "
                         "supported (cpu, cuda)")
    dyn_q = _dynamic is True
    dyn_bk = _dynamic is not False
    spec = {"batch": None if dyn_bk else b, "q_heads": hq, "kv_heads": hkv,
            "q_len": None if dyn_q else lq, "kv_len": None if dyn_bk else s,
            "head_dim": e, "v_head_dim": ev, "dtype": dtype, "mask": []}
    if scale is not None:
        spec["scale"] = float(scale)
    if is_causal:
        spec["mask"].append({"kind": "causal", "align": "top_left"})
    if mask is not None:
        bb, hb, qb = flags
        spec["mask"].append({"kind": "tensor",
                             "dtype": "bool" if mask.dtype == torch.bool
                             else _TORCH_DTYPES[mask.dtype],
                             "batch_broadcast": bb, "head_broadcast": hb,
                             "query_broadcast": qb})
    kernel = attn_mlir.compile(spec, target=device)
    with _lock:
        _kernels[cache_key] = kernel
    return kernel


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
    rank = query.dim()
    if rank == 4 and key.dim() == 4 and value.dim() == 4:
        q, k, v = query, key, value
    else:
        q, k, v = _to4d(query, "query"), _to4d(key, "key"), _to4d(value, "value")
    # The kernels read rows with unit stride: copy an operand whose last
    # dimension is strided (PyTorch's SDPA accepts any layout).
    q, k, v = (t if t.stride(3) == 1 or t.shape[3] == 1 else t.contiguous()
               for t in (q, k, v))
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
        if m.dim() == 3 and rank == 3:
            m = m.unsqueeze(1)
        mask, flags = _mask_layout(m, qs[0], qs[1], qs[2], ks[2])
        mask_key = (mask.dtype, flags)
    # Run-time lengths are not part of the key (see set_dynamic_shapes).
    dyn_bk = _dynamic is not False
    b = None if dyn_bk else qs[0]
    lq = qs[2] if _dynamic is not True else None
    s = None if dyn_bk else ks[2]
    cache_key = (b, qs[1], lq, qs[3], ks[1], s, ks[3], vs[3], q.dtype,
                 q.is_cuda, mask_key, is_causal, scale, enable_gqa, _dynamic)
    kernel = _kernels.get(cache_key)
    if kernel is not None:
        global _hits
        _hits += 1
    else:
        kernel = _compile(cache_key, q, k, v, mask, flags, is_causal, scale,
                          enable_gqa)
    out = q.new_empty((qs[0], qs[1], qs[2], vs[3]))
    kernel(q, k, v, mask, None, out)
    _calls += 1
    return out if rank == 4 else out.reshape(*query.shape[:-2], qs[2], vs[3])


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
    return query.new_empty((*query.shape[:-1], value.shape[-1]))


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
         scale=None, enable_gqa=False):
    """Scaled dot-product attention on attn-mlir kernels, with the arguments
    and semantics of torch.nn.functional.scaled_dot_product_attention (see
    the module docstring): torch.ops.attn_mlir.sdpa."""
    return torch.ops.attn_mlir.sdpa(query, key, value, attn_mask, dropout_p,
                                    is_causal, scale, enable_gqa)
