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

Registered with ``torch.library.custom_op`` and a fake (meta) kernel, so it
traces under torch.compile / torch.export as one opaque node. CPU tensors run
on the JIT's CPU kernels, read in place through DLPack (strided views such as
BERT's transposed heads are not copied); CUDA tensors go to the CUDA target,
which raises RuntimeError while this build has no CUDA path. Kernels are
compiled per (shapes, dtype, mask layout, causal, scale) on first use and
cached (see set_dynamic_shapes).

Differences from PyTorch: a query row whose keys are all masked gives 0
(PyTorch's math backend gives 0 as well since 2.5; older versions NaN).
Raises ValueError for unsupported arguments (dropout, dtypes, shapes that do
not broadcast, a mask together with is_causal).
"""

import threading
from typing import Optional

import torch

import attn_mlir

__all__ = ["sdpa", "call_count", "reset_call_count", "set_dynamic_shapes",
           "clear_cache"]

_lock = threading.Lock()
_kernels = {}
_calls = 0
_dynamic = False

_TORCH_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def set_dynamic_shapes(enabled):
    """When enabled, kernels are compiled with dynamic batch / q_len / kv_len,
    so one kernel serves every sequence length (fewer compilations, slightly
    slower kernels). Default: one kernel per shape."""
    global _dynamic
    _dynamic = bool(enabled)


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


def _sdpa_impl(query, key, value, attn_mask, dropout_p, is_causal, scale,
               enable_gqa):
    global _calls
    if dropout_p != 0.0:
        raise ValueError("attn_mlir::sdpa: dropout_p must be 0.0 "
                         f"(got {dropout_p}); use it for inference")
    if attn_mask is not None and is_causal:
        raise ValueError("attn_mlir::sdpa: an explicit attn_mask cannot be "
                         "combined with is_causal=True (as in PyTorch)")
    dtype = _TORCH_DTYPES.get(query.dtype)
    if dtype is None or key.dtype != query.dtype or value.dtype != query.dtype:
        raise ValueError("attn_mlir::sdpa: query, key and value must share one "
                         "dtype among float32, float16, bfloat16; got "
                         f"{query.dtype}, {key.dtype}, {value.dtype}")
    lead = query.shape[:-2]
    q, k, v = (_to4d(t.detach(), n) for t, n in
               ((query, "query"), (key, "key"), (value, "value")))
    b, hq, lq, e = q.shape
    hkv, s, ev = k.shape[1], k.shape[2], v.shape[3]
    if k.shape[0] != b or v.shape[0] != b:
        raise ValueError("attn_mlir::sdpa: query, key and value must have the "
                         f"same batch size; got {list(query.shape)}, "
                         f"{list(key.shape)}, {list(value.shape)}")
    if hq != hkv and not (hkv == 1 or (enable_gqa and hq % hkv == 0)):
        raise ValueError(f"attn_mlir::sdpa: {hq} query heads and {hkv} key/value "
                         "heads need enable_gqa=True and a multiple")
    mask = None
    mask_key = None
    if attn_mask is not None:
        m = attn_mask.detach()
        if m.dtype != torch.bool and m.dtype not in _TORCH_DTYPES:
            raise ValueError(f"attn_mask: dtype {m.dtype} is not bool or "
                             "float32/float16/bfloat16")
        if m.dim() == 3 and query.dim() == 3:
            m = m.unsqueeze(1)
        mask, flags = _mask_layout(m, b, hq, lq, s)
        mask_key = (mask.dtype, flags)
    device = query.device.type
    if device not in ("cpu", "cuda"):
        raise ValueError(f"attn_mlir::sdpa: tensors on '{device}' are not "
                         "supported (cpu, cuda)")
    dyn = _dynamic
    cache_key = (device, dtype, b if not dyn else None, hq, hkv,
                 lq if not dyn else None, s if not dyn else None, e, ev,
                 mask_key, bool(is_causal), scale)
    kernel = _kernels.get(cache_key)
    if kernel is None:
        spec = {"batch": None if dyn else b, "q_heads": hq, "kv_heads": hkv,
                "q_len": None if dyn else lq, "kv_len": None if dyn else s,
                "head_dim": e, "v_head_dim": ev, "dtype": dtype, "mask": []}
        if scale is not None:
            spec["scale"] = float(scale)
        if is_causal:
            spec["mask"].append({"kind": "causal", "align": "top_left"})
        if mask is not None:
            mdtype, (bb, hb, qb) = mask_key
            spec["mask"].append({"kind": "tensor",
                                 "dtype": "bool" if mdtype == torch.bool
                                 else _TORCH_DTYPES[mdtype],
                                 "batch_broadcast": bb, "head_broadcast": hb,
                                 "query_broadcast": qb})
        kernel = attn_mlir.compile(spec, target=device)
        with _lock:
            _kernels[cache_key] = kernel
    out = torch.empty((b, hq, lq, ev), dtype=query.dtype, device=query.device)
    kernel(q, k, v, mask, out=out)
    with _lock:
        _calls += 1
    return out.reshape(*lead, lq, ev)


@torch.library.custom_op("attn_mlir::sdpa", mutates_args=())
def sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
         attn_mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0,
         is_causal: bool = False, scale: Optional[float] = None,
         enable_gqa: bool = False) -> torch.Tensor:
    """Scaled dot-product attention on attn-mlir kernels, with the arguments
    and semantics of torch.nn.functional.scaled_dot_product_attention (see
    the module docstring)."""
    return _sdpa_impl(query, key, value, attn_mask, dropout_p, is_causal, scale,
                      enable_gqa)


@sdpa.register_fake
def _sdpa_fake(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
               scale=None, enable_gqa=False):
    return query.new_empty((*query.shape[:-1], value.shape[-1]))
