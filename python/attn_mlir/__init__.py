"""attn-mlir from Python: JIT-compiled attention kernels on numpy arrays and
DLPack tensors.

    import numpy as np, attn_mlir
    q = np.random.rand(1, 8, 128, 64).astype(np.float32)   # [B, H, S, D]
    out = attn_mlir.attention(q, q, q, causal=True)       # compiled once, cached

    kernel = attn_mlir.compile({"batch": 1, "q_heads": 8, "q_len": 128,
                                "kv_len": 128, "head_dim": 64,
                                "mask": {"kind": "causal"}})
    out = kernel(q, q, q)

Layouts (docs/design.md section 3): query [B, Hq, Sq, D], key [B, Hkv, Sk, D],
value [B, Hkv, Sk, Dv], output [B, Hq, Sq, Dv]; GQA/MQA when Hq % Hkv == 0.
Element types float32, float16, bfloat16 (DLPack only: numpy has none);
softmax and accumulation in float32. Inputs are read in place with their
strides (innermost stride 1), never copied.

Errors: ValueError for shapes, dtypes, strides, devices and invalid specs
(the message names the operand or the spec key); RuntimeError when
compilation fails, the target is unavailable or the kernel cache directory
is refused. Kernels are cached in memory per context, and on disk across
processes: in the per-user ~/.cache/attn-mlir ($XDG_CACHE_HOME/attn-mlir)
by default, in $ATTN_MLIR_CACHE_DIR or Context(cache_dir=...) when given;
ATTN_MLIR_CACHE_DIR="" (or cache_dir="") turns the disk cache off.

The PyTorch operators ``torch.ops.attn_mlir.sdpa`` and
``torch.ops.attn_mlir.flash_attn`` live in ``attn_mlir.torch_ops``;
``import attn_mlir`` registers them when torch is imported (at once when
torch already is, otherwise when the program imports it), without importing
torch itself.
"""

import collections as _collections
import json as _json
import sys as _sys
import threading as _threading

from ._core import (Context, Kernel, cpu_target,  # noqa: F401
                    fma_peak_gflops, max_threads, memory_bandwidth_gbs,
                    version)
from . import _core
from . import _shapes
from . import _trace

__all__ = ["Context", "Kernel", "attention", "cache_stats", "compile",
           "clear_cache", "cpu_target", "default_context", "max_threads",
           "set_max_cached_kernels",
           "fma_peak_gflops", "memory_bandwidth_gbs", "spec_for", "version",
           "alibi", "softcap", "MaskMod", "document_mask", "prefix_lm",
           "dilated_sliding_window", "strided", "fixed", "longformer",
           "ScoreMod", "t5_bias", "flex_attention", "create_block_mask",
           "BlockMask"]

_DTYPES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16",
           "bool": "bool", "int32": "i32", "int64": "i64"}


def _allocate_like(like, shape, dtype):
    """An uninitialised output of `shape` and `dtype` (a numpy name) in the
    framework and on the device of `like` (a DLPack tensor)."""
    module = type(like).__module__.split(".")[0]
    if module == "torch":
        import torch
        return torch.empty(shape, dtype=getattr(torch, dtype), device=like.device)
    import numpy as np
    if dtype == "bfloat16":
        raise ValueError("output: numpy has no bfloat16: pass out=")
    array = np.empty(shape, dtype)
    from_dlpack = getattr(_sys.modules.get(module), "from_dlpack", None)
    if from_dlpack is not None:
        try:
            return from_dlpack(array)
        except Exception:  # the framework cannot import host arrays
            pass
    return array


_core._set_allocator(_allocate_like)

_contexts = {}
_contexts_lock = _threading.Lock()


def default_context(target="cpu", threads=0):
    """The process-wide Context of a target ("cpu" or "cuda") and CPU thread
    count (0: every core), created on first use with the default disk cache
    (see the module docstring)."""
    key = (target, threads)
    ctx = _contexts.get(key)
    if ctx is None:
        with _contexts_lock:
            ctx = _contexts.get(key)
            if ctx is None:
                ctx = Context(target, threads,
                              max_cached_kernels=_max_cached_kernels)
                _contexts[key] = ctx
    return ctx


# The most kernels `attention` (and the torch operators) keep handles to,
# and the default contexts keep compiled: least recently used dropped first.
_max_cached_kernels = 256


def set_max_cached_kernels(count):
    """Bounds the kernels `attention` and the torch operators keep (default
    256, about 0.3 MiB each; 0: no bound): beyond it the least recently used
    is dropped and compiled again (or loaded from the disk cache) when asked
    for again. Applies to the handle caches at once and to the default
    contexts created afterwards. Raises ValueError for a negative count."""
    global _max_cached_kernels
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"set_max_cached_kernels: expected an int >= 0, got "
                         f"{count!r}")
    _max_cached_kernels = count
    _trim(_attention_kernels)


def _trim(cache):
    """Drops the least recently used entries of an OrderedDict beyond the
    bound."""
    while _max_cached_kernels and len(cache) > _max_cached_kernels:
        cache.popitem(last=False)


def clear_cache():
    """Drops every compiled kernel this process keeps in memory: the handles
    of `attention` and the torch operators, and the in-memory caches of the
    default contexts (kernels you hold stay usable; the disk cache is
    kept)."""
    _attention_kernels.clear()
    torch_ops = _sys.modules.get(__name__ + ".torch_ops")
    if torch_ops is not None:
        torch_ops.clear_cache()
    with _contexts_lock:
        contexts = list(_contexts.values())
    for ctx in contexts:
        ctx.clear_cache()


def compile(spec, target="cpu", tile_sizes=None, context=None, kv_splits=0,
            reference=False, cpu_target=None):
    """Compiles an attention spec into a Kernel (or returns the cached one).

    spec: a dict or JSON text (docs/design.md section 6), e.g. {"batch": 1,
    "q_heads": 8, "kv_heads": 8, "q_len": 1024, "kv_len": 1024, "head_dim": 64,
    "dtype": "f32", "mask": {"kind": "causal"}}; null batch/q_len/kv_len make
    one kernel serve every size. tile_sizes: (batch, heads, query, key) or
    None for the compiler's choice. context: a Context (default: the
    process-wide one of `target`). kv_splits: split-KV key splits (0: the
    compiler's choice). reference=True: the unfused reference lowering (the
    whole score matrix in memory, one thread), a benchmark baseline.
    cpu_target: the CPU target level to compile for, one of
    cpu_target()["available"] (e.g. "x86-64-v3" for AVX2 code on an AVX-512
    machine); None: this CPU's highest.

    Raises ValueError for an invalid spec (naming the key) or option (a
    cpu_target this CPU cannot run: the message names the missing feature),
    RuntimeError when compilation fails or the target is unavailable.
    """
    if context is None:
        context = default_context(target)
    elif context.target != target and target != "cpu":
        raise ValueError(f"target: '{target}' does not match the context's "
                         f"'{context.target}'")
    text = spec if isinstance(spec, str) else _json.dumps(spec)
    return context.compile(text, None if tile_sizes is None else tuple(tile_sizes),
                           kv_splits, reference, cpu_target)


def _dtype_of(x, name):
    dt = str(x.dtype)
    dt = dt[6:] if dt.startswith("torch.") else dt
    if dt not in _DTYPES:
        raise ValueError(f"{name}: unsupported dtype {x.dtype}: use float32, "
                         "float16 or bfloat16 (bool or a float for masks, "
                         "int32/int64 for kv_lens)")
    return _DTYPES[dt]


def _dynamic_dims(dynamic):
    """(batch, q_len, kv_len) run-time flags of a `dynamic` argument."""
    if dynamic == "kv":
        return True, False, True
    if dynamic is True or dynamic is False:
        return dynamic, dynamic, dynamic
    raise ValueError(f"dynamic: expected 'kv', True or False, got {dynamic!r}")


def alibi():
    """The ALiBi score modification (Press et al. 2022) for `attention`'s
    score_mod: s + slope(h) * (j - i), with the paper's geometric slopes
    for the query head count (2^(-8 (h + 1) / H) when H is a power of two)."""
    return {"kind": "alibi"}


def softcap(cap):
    """Logit soft-capping (Gemma 2) for `attention`'s score_mod:
    cap * tanh(s / cap); cap a positive finite number."""
    cap = _shapes.finite_scale(cap, "cap")
    if cap <= 0:
        raise ValueError(f"cap: must be positive, got {cap}")
    return {"kind": "softcap", "cap": cap}


class _NamedMod:
    """A named modification: its spec entry (`spec`) and the run-time
    inputs it reads (`captures`, a dict name -> array or tensor), whose
    values never recompile a kernel."""

    def __init__(self, spec, captures):
        self.spec = spec
        self.captures = captures

    def __repr__(self):
        return (f"{type(self).__name__}({self.spec!r}, "
                f"captures={sorted(self.captures)})")


class MaskMod(_NamedMod):
    """A named mask modification for `attention`'s mask_mod (the spec's
    "mask_mod" entry and its int32 captures). Made by document_mask(),
    prefix_lm(), dilated_sliding_window(), strided(), fixed() and
    longformer()."""


def _int32(ids, name, flags=False):
    """`ids` as int32 (a torch tensor stays one, anything else becomes a
    numpy array); ValueError for values beyond int32, TypeError for
    non-integer ids (bool is accepted where `flags`)."""
    torch = _sys.modules.get("torch")
    if torch is not None and isinstance(ids, torch.Tensor):
        if ids.dtype == torch.int32:
            return ids
        if ids.dtype == torch.bool and flags:
            return ids.to(torch.int32)
        if ids.dtype.is_floating_point or ids.dtype.is_complex \
                or ids.dtype == torch.bool:
            raise TypeError(f"{name}: expected integer ids, got {ids.dtype}")
        if ids.numel() and (int(ids.min()) < -2**31 or int(ids.max()) >= 2**31):
            raise ValueError(f"{name}: values beyond int32")
        return ids.to(torch.int32)
    import numpy as np
    a = np.asarray(ids)
    if a.dtype == bool and flags:
        a = a.astype(np.int32)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids, got {a.dtype}")
    if a.size and (int(a.min()) < -2**31 or int(a.max()) >= 2**31):
        raise ValueError(f"{name}: values beyond int32")
    return np.ascontiguousarray(a, dtype=np.int32)


def document_mask(q_document_ids, kv_document_ids=None):
    """Document masking of packed sequences for `attention`'s mask_mod:
    query row i of batch b sees key j only when q_document_ids[b, i] ==
    kv_document_ids[b, j] (intersected with the other masks).
    q_document_ids: [B, Sq], kv_document_ids: [B, Sk] integer ids (int64 is
    narrowed to int32); kv_document_ids defaults to q_document_ids
    (self-attention). A query whose document no key shares gives 0."""
    q_ids = _int32(q_document_ids, "q_document_ids")
    kv_ids = q_ids if kv_document_ids is None else \
        _int32(kv_document_ids, "kv_document_ids")
    return MaskMod({"kind": "document"},
                   {"q_document_ids": q_ids, "kv_document_ids": kv_ids})


def prefix_lm(prefix_lens):
    """Prefix-LM masking for `attention`'s mask_mod: key j is visible to
    query row i of batch b when j <= i or j < prefix_lens[b] (the prefix is
    bidirectional, the rest causal). prefix_lens: [B] integers."""
    return MaskMod({"kind": "prefix_lm"},
                   {"prefix_lens": _int32(prefix_lens, "prefix_lens")})


def _count(value, name, least):
    """An int >= least (and below 2^31) for a mask_mod parameter."""
    return _shapes.exact_int(value, name, least, 2**31 - 1)


def dilated_sliding_window(window, dilation):
    """Longformer's dilated sliding window (Beltagy et al. 2020) for
    `attention`'s mask_mod: key j is visible to query row i when
    |i - j| <= window * dilation and (i - j) % dilation == 0 (`window` keys
    on each side, every `dilation`-th)."""
    return MaskMod({"kind": "dilated_sliding_window",
                    "window": _count(window, "window", 0),
                    "dilation": _count(dilation, "dilation", 1)}, {})


def strided(stride):
    """The Sparse Transformer's strided pattern (Child et al. 2019) for
    `attention`'s mask_mod: with d = i - j, keys 0 <= d < stride and every
    stride-th before them (d % stride == 0)."""
    return MaskMod({"kind": "strided", "stride": _count(stride, "stride", 1)},
                   {})


def fixed(stride, summary):
    """The Sparse Transformer's fixed pattern (Child et al. 2019) for
    `attention`'s mask_mod: key j <= i is visible when it is in i's block of
    `stride` keys or among the last `summary` keys of a block."""
    stride = _count(stride, "stride", 1)
    return MaskMod({"kind": "fixed", "stride": stride,
                    "summary": _count(summary, "summary", 1)}, {})


def longformer(window, q_global, kv_global=None):
    """Longformer's attention (Beltagy et al. 2020) for `attention`'s
    mask_mod: a sliding window of `window` keys on each side, plus global
    tokens that see and are seen by every token. q_global: [B, Sq],
    kv_global: [B, Sk] flags (bool or integers, nonzero = global);
    kv_global defaults to q_global (self-attention)."""
    q_flags = _int32(q_global, "q_global", flags=True)
    kv_flags = q_flags if kv_global is None else \
        _int32(kv_global, "kv_global", flags=True)
    return MaskMod({"kind": "longformer", "window": _count(window, "window", 0)},
                   {"q_global": q_flags, "kv_global": kv_flags})


def _mask_mod_spec(mask_mod, taken=()):
    """The spec's "mask_mod" entry (None, a MaskMod's, or a Python function
    traced into MLIR) and the captures it reads (names avoiding `taken`)."""
    if mask_mod is None:
        return None, {}
    if isinstance(mask_mod, MaskMod):
        return dict(mask_mod.spec), mask_mod.captures
    if callable(mask_mod):
        return _trace.trace(mask_mod, "mask_mod", taken)
    raise TypeError(f"mask_mod: expected a function (b, h, q_idx, kv_idx) -> "
                    f"bool, an attn_mlir.MaskMod (document_mask, prefix_lm, "
                    f"dilated_sliding_window, strided, fixed, longformer) or "
                    f"None, got {mask_mod!r}")


class ScoreMod(_NamedMod):
    """A named score modification with run-time inputs for `attention`'s
    score_mod (the spec's "score_mod" entry and its captures). Made by
    t5_bias()."""


def t5_bias(relative_attention_bias, max_distance=128, bidirectional=True):
    """T5's relative position bias (Raffel et al. 2020) for `attention`'s
    score_mod: s + relative_attention_bias[bucket(j - i), h], bucket() T5's
    _relative_position_bucket as Hugging Face's T5Attention computes it.
    relative_attention_bias: the [num_buckets, Hq] table (T5's
    nn.Embedding weight; float32 numpy array or torch tensor)."""
    table = relative_attention_bias
    shape = tuple(table.shape)
    if len(shape) != 2:
        raise ValueError(f"relative_attention_bias: expected [num_buckets, "
                         f"heads], got shape {list(shape)}")
    if _dtype_of(table, "relative_attention_bias") != "f32":
        raise TypeError("relative_attention_bias: expected float32")
    return ScoreMod({"kind": "t5_bias", "num_buckets": int(shape[0]),
                     "max_distance": _count(max_distance, "max_distance", 1),
                     "bidirectional": bool(bidirectional)},
                    {"relative_attention_bias": table})


def _score_mod_spec(score_mod):
    """The spec's "score_mod" entry (None, a dict as alibi() and softcap()
    make, checked by the compiler, or a Python function traced into MLIR)
    and the captures it reads."""
    if score_mod is None:
        return None, {}
    if isinstance(score_mod, ScoreMod):
        return dict(score_mod.spec), score_mod.captures
    if isinstance(score_mod, dict):
        return dict(score_mod), {}
    if callable(score_mod):
        return _trace.trace(score_mod, "score_mod")
    raise TypeError(f"score_mod: expected a function (score, b, h, q_idx, "
                    f"kv_idx) -> score, attn_mlir.alibi(), "
                    f"attn_mlir.softcap(cap), attn_mlir.t5_bias(table) or "
                    f"None, got {score_mod!r}")


def _mods(score_mod, mask_mod):
    """The spec's score_mod and mask_mod entries (None without one) and the
    captures both read, the score_mod's first."""
    score, captures = _score_mod_spec(score_mod)
    mask, mask_captures = _mask_mod_spec(mask_mod, taken=captures)
    return score, mask, dict(captures, **mask_captures)


def spec_for(q, k, v, *, causal=False, align="top_left", window=None, scale=None,
             mask=None, kv_lens=None, return_lse=False, dynamic="kv",
             score_mod=None, mask_mod=None):
    """The spec dict that `attention` compiles for these arguments (see
    there); shapes and dtypes come from q, k, v, mask and kv_lens, and
    `dynamic` ("kv", True or False) says which lengths are run-time values."""
    dyn_b, dyn_q, dyn_k = _dynamic_dims(dynamic)
    qs, ks, vs = tuple(q.shape), tuple(k.shape), tuple(v.shape)
    for name, s in (("query", qs), ("key", ks), ("value", vs)):
        if len(s) != 4:
            raise ValueError(f"{name}: expected rank 4 [B, H, S, D], got shape "
                             f"{list(s)}")
    dtype = _dtype_of(q, "query")
    spec = {"batch": None if dyn_b else qs[0], "q_heads": qs[1],
            "kv_heads": ks[1], "q_len": None if dyn_q else qs[2],
            "kv_len": None if dyn_k else ks[2], "head_dim": qs[3],
            "v_head_dim": vs[3], "dtype": dtype, "lse": bool(return_lse)}
    if scale is not None:
        spec["scale"] = _shapes.finite_scale(scale)
    masks = []
    if causal:
        masks.append({"kind": "causal", "align": align})
    if window is not None:
        try:
            left, right = (window, 0) if not isinstance(window, (tuple, list)) \
                else window
        except ValueError:
            raise ValueError(f"window: expected an int or a (left, right) "
                             f"pair, got {window!r}") from None
        masks.append({"kind": "sliding_window",
                      "left": _shapes.exact_int(left, "window", 0,
                                                _shapes.MAX_WINDOW),
                      "right": _shapes.exact_int(right, "window", 0,
                                                 _shapes.MAX_WINDOW),
                      "align": align})
    if mask is not None:
        ms = tuple(mask.shape)
        if len(ms) != 4:
            raise ValueError(f"mask: expected rank 4 [B|1, Hq|1, Sq|1, Sk], got "
                             f"shape {list(ms)}")
        masks.append({"kind": "tensor", "dtype": _dtype_of(mask, "mask"),
                      "batch_broadcast": ms[0] == 1,
                      "head_broadcast": ms[1] == 1,
                      "query_broadcast": ms[2] == 1})
    if kv_lens is not None:
        masks.append({"kind": "key_padding", "dtype": _dtype_of(kv_lens, "kv_lens")})
    spec["mask"] = masks
    score_entry, mask_entry, _ = _mods(score_mod, mask_mod)
    if score_entry is not None:
        spec["score_mod"] = score_entry
    if mask_entry is not None:
        spec["mask_mod"] = mask_entry
    return spec


_attention_kernels = _collections.OrderedDict()
_attention_hits = 0


def cache_stats(target="cpu"):
    """Counters of the kernel caches behind `attention` and the torch
    operators, summed over the default contexts of `target` (one per thread
    count): "compiles" (the compiler
    ran), "hits" (calls of `attention` / attn_mlir::sdpa served by a kernel
    already compiled in this process), "disk_hits" (kernels loaded from the
    disk cache), and the context's other counters (Context.cache_stats)."""
    default_context(target)
    stats = {}
    with _contexts_lock:
        contexts = [c for (t, _), c in _contexts.items() if t == target]
    for ctx in contexts:
        for name, count in ctx.cache_stats().items():
            stats[name] = stats.get(name, 0) + count
    hits = _attention_hits
    torch_ops = _sys.modules.get(__name__ + ".torch_ops")
    if torch_ops is not None:
        hits += torch_ops._hits
    stats["hits"] = hits
    return stats


def attention(q, k, v, *, causal=False, align="top_left", window=None,
              scale=None, mask=None, kv_lens=None, return_lse=False, out=None,
              dynamic="kv", context=None, score_mod=None, mask_mod=None):
    """softmax(score_mod(scale * q k^T [+ bias]), masked) v, compiled on
    first use for these shapes and options, from the cache afterwards.

    q: [B, Hq, Sq, D], k: [B, Hkv, Sk, D], v: [B, Hkv, Sk, Dv] numpy arrays
    or DLPack tensors of one float dtype (Hq % Hkv == 0: GQA/MQA).
    causal: hide keys j > i (align="top_left", PyTorch's convention) or
    j > i + Sk - Sq (align="bottom_right"). window: int left or (left, right)
    sliding window (same alignment). scale: default 1/sqrt(D).
    mask: [B|1, Hq|1, Sq|1, Sk] bool (True keeps) or float additive bias.
    kv_lens: [B] int32/int64 key lengths (key padding). Masks intersect.
    return_lse: also return the [B, Hq, Sq] float32 log-sum-exp.
    score_mod: a function score_mod(score, b, h, q_idx, kv_idx) -> score
    (FlexAttention's), or a named score modification, attn_mlir.alibi(),
    attn_mlir.softcap(cap) or attn_mlir.t5_bias(table), applied to each
    score before masking (q_idx, kv_idx the absolute query row and key; a
    key a -inf bias hides stays hidden); CPU only.
    mask_mod: a function mask_mod(b, h, q_idx, kv_idx) -> bool (True keeps
    the key), or a named mask modification (with its run-time inputs):
    attn_mlir.document_mask(q_ids, kv_ids=None), prefix_lm(prefix_lens),
    dilated_sliding_window(window, dilation), strided(stride),
    fixed(stride, summary) or longformer(window, q_global, kv_global=None),
    intersected with the other masks; CPU only.
    A function is traced into MLIR on symbolic values (attn_mlir._trace:
    operators, where, numpy ufuncs and torch functions; no Python `if` on
    them) and compiled into the kernel; the numpy arrays and torch tensors
    it reads by index (closure or global names, any torch tensor) are
    run-time inputs: new values of the same shapes and dtypes (new ids,
    lengths, flags, tables) reuse the compiled kernel. Their indices are
    clamped into bounds.
    out: optional output to write. dynamic: which lengths are run-time
    values of the compiled kernel: "kv" (the default) batch and kv_len, so
    that a generation loop (q_len fixed, the cache growing by a token a
    step) compiles once; True also q_len (one kernel for every shape: the
    runtime compiles prefill and one-row decode tiles behind it and picks by
    q_len); False none (a kernel per shape).

    q, k, v (and mask, kv_lens) need ``.shape`` and ``.dtype`` (numpy, torch,
    JAX...); compile() + Kernel take any DLPack tensor.

    Returns the [B, Hq, Sq, Dv] output (same framework as q), or
    (output, lse). A query row without any visible key gives 0 (LSE -inf).
    Raises ValueError for inconsistent shapes/dtypes, RuntimeError when
    compilation fails.
    """
    if isinstance(window, list):
        window = tuple(window)
    # The key holds what the spec depends on: the static sizes (run-time
    # lengths as None), dtypes, and the mask's broadcast pattern.
    dyn_b, dyn_q, dyn_k = _dynamic_dims(dynamic)
    qs, ks, vs = q.shape, k.shape, v.shape
    if len(qs) == 4 and len(ks) == 4 and len(vs) == 4:
        b = None if dyn_b else qs[0]
        sq, sk = None if dyn_q else qs[2], None if dyn_k else ks[2]
        shape_key = (b, qs[1], sq, qs[3], ks[1], sk, ks[3], vs[1], vs[3])
    else:  # spec_for reports the rank
        shape_key = (qs, ks, vs)
    mask_key = None
    if mask is not None:
        ms = mask.shape
        mask_key = (mask.dtype, len(ms)) + tuple(d == 1 for d in ms[:3])
    # The modifications by what they compile to: a named kind's parameters,
    # a traced function's text and its captures' names and shapes (never
    # their values).
    score_entry, mask_entry, captures = _mods(score_mod, mask_mod)
    key = (shape_key, q.dtype, causal, align, window, scale, mask_key,
           None if kv_lens is None else kv_lens.dtype,
           return_lse, dynamic, context,
           _json.dumps(score_entry, sort_keys=True),
           _json.dumps(mask_entry, sort_keys=True))
    kernel = _attention_kernels.get(key)
    if kernel is not None:
        global _attention_hits
        _attention_hits += 1
        _attention_kernels.move_to_end(key)
    else:
        spec = spec_for(q, k, v, causal=causal, align=align, window=window,
                        scale=scale, mask=mask, kv_lens=kv_lens,
                        return_lse=return_lse, dynamic=dynamic,
                        score_mod=score_mod, mask_mod=mask_mod)
        kernel = compile(spec, context=context)
        _attention_kernels[key] = kernel
        _trim(_attention_kernels)
    return kernel(q, k, v, mask, kv_lens, out, None, bool(return_lse),
                  captures or None)


class BlockMask:
    """The mask argument of flex_attention, as create_block_mask makes it:
    the mask_mod and the sizes (B, H, Q_LEN, KV_LEN; 1 broadcasts) it was
    made for. FlexAttention's BlockMask also holds the block structure
    (kv_num_blocks, kv_indices); this one does not compute it yet: the
    kernel evaluates mask_mod on every tile it visits."""

    def __init__(self, mask_mod, B, H, Q_LEN, KV_LEN, BLOCK_SIZE):
        self.mask_mod = mask_mod
        self.shape = (B, H, Q_LEN, KV_LEN)
        self.BLOCK_SIZE = BLOCK_SIZE

    def __repr__(self):
        return (f"BlockMask(shape={self.shape}, "
                f"mask_mod={getattr(self.mask_mod, '__name__', self.mask_mod)})")


def create_block_mask(mask_mod, B, H, Q_LEN, KV_LEN, device="cpu",
                      BLOCK_SIZE=128, _compile=False):
    """FlexAttention's create_block_mask: the BlockMask of `mask_mod`
    (b, h, q_idx, kv_idx) -> bool (True keeps the key) for batch B, H heads
    (None or 1: the same mask for every batch / head), Q_LEN queries and
    KV_LEN keys. The function is traced here (a TypeError names what cannot
    be traced) and compiled into flex_attention's kernel; BLOCK_SIZE (an
    int or a (q, kv) pair) and device are accepted for compatibility."""
    B = 1 if B is None else _shapes.exact_int(B, "B", 1, 2**31 - 1)
    H = 1 if H is None else _shapes.exact_int(H, "H", 1, 2**31 - 1)
    Q_LEN = _shapes.exact_int(Q_LEN, "Q_LEN", 1, 2**31 - 1)
    KV_LEN = _shapes.exact_int(KV_LEN, "KV_LEN", 1, 2**31 - 1)
    sizes = BLOCK_SIZE if isinstance(BLOCK_SIZE, (tuple, list)) \
        else (BLOCK_SIZE, BLOCK_SIZE)
    if len(sizes) != 2:
        raise ValueError(f"BLOCK_SIZE: expected an int or a (q, kv) pair, got "
                         f"{BLOCK_SIZE!r}")
    for size in sizes:
        _shapes.exact_int(size, "BLOCK_SIZE", 1, 2**31 - 1)
    if str(device) != "cpu":
        raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
    _mask_mod_spec(mask_mod)  # traceable, or the TypeError now
    return BlockMask(mask_mod, B, H, Q_LEN, KV_LEN, BLOCK_SIZE)


def flex_attention(query, key, value, score_mod=None, block_mask=None,
                   scale=None, enable_gqa=False, return_lse=False,
                   kernel_options=None):
    """torch.nn.attention.flex_attention's interface on numpy arrays and
    DLPack tensors (CPU): softmax(score_mod(scale * q k^T)) v over the keys
    block_mask's mask_mod keeps, compiled into one kernel (see attention:
    how functions are traced, their captures, dynamic lengths).

    query [B, Hq, Sq, D], key [B, Hkv, Sk, D], value [B, Hkv, Sk, Dv];
    Hq != Hkv needs enable_gqa=True (as in torch). score_mod(score, b, h,
    q_idx, kv_idx) -> score; block_mask from create_block_mask, made for
    Q_LEN = Sq, KV_LEN = Sk and B, H of 1 or the inputs'. scale: default
    1/sqrt(D). A row without a visible key gives 0 (LSE -inf). Returns the
    output, or (output, lse) with return_lse (lse [B, Hq, Sq] float32,
    natural log). kernel_options is accepted and ignored."""
    qs, ks = tuple(query.shape), tuple(key.shape)
    if len(qs) == 4 and len(ks) == 4 and qs[1] != ks[1] and not enable_gqa:
        raise ValueError(f"query has {qs[1]} heads and key {ks[1]}: pass "
                         f"enable_gqa=True for grouped-query attention")
    mask_mod = None
    if block_mask is not None:
        if not isinstance(block_mask, BlockMask):
            raise TypeError(f"block_mask: expected an attn_mlir.BlockMask "
                            f"(create_block_mask), got {block_mask!r:.80}")
        b, h, q_len, kv_len = block_mask.shape
        if len(qs) == 4 and len(ks) == 4 and (
                q_len != qs[2] or kv_len != ks[2] or b not in (1, qs[0])
                or h not in (1, qs[1])):
            raise ValueError(f"block_mask was made for shape "
                             f"{block_mask.shape} (B, H, Q_LEN, KV_LEN), "
                             f"the inputs are B={qs[0]}, H={qs[1]}, "
                             f"Q_LEN={qs[2]}, KV_LEN={ks[2]}")
        mask_mod = block_mask.mask_mod
    return attention(query, key, value, scale=scale, return_lse=return_lse,
                     score_mod=score_mod, mask_mod=mask_mod)


def _register_torch_ops():
    """Imports attn_mlir.torch_ops (which registers the operators) once torch
    is imported: now if it already is, else right after `import torch`
    finishes, through a one-shot import hook (torch is never imported on
    attn_mlir's behalf: numpy users do not pay for it)."""
    import importlib
    import importlib.abc
    import importlib.util
    import warnings

    def register():
        try:
            importlib.import_module(__name__ + ".torch_ops")
        except Exception as e:  # an unsupported torch must not break torch
            warnings.warn(f"attn_mlir: the torch operators are not registered: "
                          f"{e}", RuntimeWarning, stacklevel=3)

    if "torch" in _sys.modules:
        register()
        return

    class _AfterTorchImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != "torch":
                return None
            _sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_register(module):
                exec_module(module)
                register()
            spec.loader.exec_module = exec_and_register
            return spec

    _sys.meta_path.insert(0, _AfterTorchImport())


_register_torch_ops()
