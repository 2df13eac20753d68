"""torch.ops.attn_mlir.sdpa against torch.nn.functional.scaled_dot_product_attention
across shapes, masks and dtypes; torch.compile; opcheck; the transformers swap.
Skipped when torch is not installed (Debian's python3 in CI)."""
import math

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
F = torch.nn.functional

import attn_mlir.torch_ops as torch_ops  # noqa: E402  (registers the op)

sdpa = torch.ops.attn_mlir.sdpa


def reference(q, k, v, **kw):
    """PyTorch's SDPA (math backend) in float64."""
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        mask = kw.pop("attn_mask", None)
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.double()
        return F.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                              attn_mask=mask, **kw)


def check_f32(got, want, tol=2e-5):
    err = (got.double() - want).abs().max().item()
    assert err <= tol * (1 + want.abs().max().item()), f"max abs error {err}"


SHAPES = [  # B, Hq, Hkv, L, S, E, Ev
    (1, 1, 1, 1, 1, 16, 16),
    (2, 4, 4, 17, 33, 32, 32),
    (3, 12, 12, 25, 25, 32, 32),
    (1, 8, 2, 64, 127, 64, 64),
    (2, 2, 1, 3, 257, 80, 48),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("masking", ["none", "causal", "bool_pad", "bool_full",
                                     "bias", "bool_2d"])
def test_matches_torch_sdpa_f32(shape, masking):
    b, hq, hkv, lq, s, e, ev = shape
    g = torch.Generator().manual_seed(hash((shape, masking)) % 2**31)
    q = torch.randn(b, hq, lq, e, generator=g)
    k = torch.randn(b, hkv, s, e, generator=g)
    v = torch.randn(b, hkv, s, ev, generator=g)
    kw = {"enable_gqa": hq != hkv}
    if masking == "causal":
        kw["is_causal"] = True
    elif masking == "bool_pad":  # key padding, as tokenizers produce it
        lens = torch.randint(1, s + 1, (b,), generator=g)
        kw["attn_mask"] = (torch.arange(s)[None, :] < lens[:, None])[:, None, None, :]
    elif masking == "bool_full":
        m = torch.rand(b, hq, lq, s, generator=g) > 0.4
        m[..., 0] = True  # no fully masked row (PyTorch versions differ there)
        kw["attn_mask"] = m
    elif masking == "bias":
        kw["attn_mask"] = torch.randn(b, 1, lq, s, generator=g)
    elif masking == "bool_2d":
        kw["attn_mask"] = torch.ones(lq, s, dtype=torch.bool).tril(diagonal=s - lq)
    got = sdpa(q, k, v, **kw)
    assert got.shape == (b, hq, lq, ev) and got.dtype == torch.float32
    check_f32(got, reference(q, k, v, **kw))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("masking", ["none", "causal", "bool_pad"])
def test_half_precision(dtype, masking):
    """FlashAttention's rule: within 2x the error of PyTorch's own SDPA in
    the same precision (both against float64 on the rounded inputs)."""
    g = torch.Generator().manual_seed(7)
    b, h, lq, s, e = 2, 4, 37, 53, 64
    q, k, v = (torch.randn(b, h, n, e, generator=g).to(dtype) for n in (lq, s, s))
    kw = {}
    if masking == "causal":
        kw["is_causal"] = True
    elif masking == "bool_pad":
        kw["attn_mask"] = (torch.arange(s)[None, :] < torch.tensor([s, 20])[:, None])[:, None, None, :]
    got = sdpa(q, k, v, **kw)
    assert got.dtype == dtype
    want = reference(q, k, v, **dict(kw))
    torch_err = (F.scaled_dot_product_attention(q, k, v, **kw).double() - want).abs().max().item()
    err = (got.double() - want).abs().max().item()
    assert err <= 2 * torch_err + 1e-3, f"{err} vs PyTorch {torch_err}"


def test_rank3_key_is_per_head_as_in_pytorch():
    """Query [2, 2, 5, 8] with key / value [2, 7, 8]: PyTorch aligns the
    leading dimensions from the right (one key per head, shared by the
    batch); the operator read it per batch (max diff 1.82)."""
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 2, 5, 8, generator=g)
    k, v = torch.randn(2, 7, 8, generator=g), torch.randn(2, 7, 8, generator=g)
    got = sdpa(q, k, v)
    assert got.shape == F.scaled_dot_product_attention(q, k, v).shape
    check_f32(got, reference(q, k, v))
    # Broadcast batch dimensions of rank 5 and a mask of rank 3.
    q5 = torch.randn(2, 3, 2, 5, 8, generator=g)
    k5, v5 = (torch.randn(3, 1, 6, 8, generator=g) for _ in range(2))
    m = torch.rand(2, 5, 6, generator=g) > 0.3
    m[..., 0] = True
    check_f32(sdpa(q5, k5, v5, attn_mask=m), reference(q5, k5, v5, attn_mask=m))


def test_oversubscribed_torch_threads_are_clamped():
    """torch.set_num_threads beyond 4 per core (PyTorch allows it): the
    operator runs with the most threads a Context accepts, silently."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(attn_mlir_max_threads() + 5)
        q = torch.randn(1, 2, 4, 16)
        check_f32(sdpa(q, q, q), reference(q, q, q))
    finally:
        torch.set_num_threads(before)


def test_self_overlapping_output_is_refused():
    """attention(..., out=) with an expand()ed output: every row at one
    address; the threads raced. Refused as aliasing is."""
    import attn_mlir
    q = torch.randn(1, 2, 8, 16)
    out = torch.empty(1, 1, 1, 16).expand(1, 2, 8, 16)
    with pytest.raises(ValueError, match="output: overlaps itself"):
        attn_mlir.attention(q, q, q, out=out)


def test_flash_attn_window_must_be_integers():
    """window_size=(1.5, 0) was truncated to (1, 0) silently."""
    q = torch.randn(1, 4, 2, 16)
    with pytest.raises(ValueError, match="window_size: expected an integer"):
        torch_ops.flash_attn_func(q, q, q, window_size=(1.5, 0))
    with pytest.raises(ValueError, match="softmax_scale: must be a finite"):
        torch_ops.flash_attn_func(q, q, q, softmax_scale=float("nan"))


def test_nested_tensors_say_what_to_use():
    """Nested (jagged) tensors raised a bare NotImplementedError."""
    parts = [torch.randn(2, 5, 16), torch.randn(2, 3, 16)]
    strided = torch.nested.nested_tensor(parts)
    with pytest.raises(ValueError, match="nested .jagged. tensors are not supported"):
        sdpa(strided, strided, strided)
    with pytest.raises(ValueError, match="kv_lens"):
        torch_ops.sdpa(strided, strided, strided)
    jagged = torch.nested.nested_tensor([p.transpose(0, 1) for p in parts],
                                        layout=torch.jagged).transpose(1, 2)
    with pytest.raises(ValueError, match="nested .jagged. tensors are not supported"):
        torch_ops.sdpa(jagged, jagged, jagged)


def attn_mlir_max_threads():
    import attn_mlir
    return attn_mlir.max_threads()


def test_scale_strided_and_rank3():
    g = torch.Generator().manual_seed(3)
    # BERT's layout: [B, S, H*D] projections viewed as [B, H, S, D].
    x = torch.randn(2, 9, 3 * 4 * 16, generator=g)
    q, k, v = (t.view(2, 9, 4, 16).transpose(1, 2) for t in x.split(64, dim=-1))
    assert not q.is_contiguous()
    got = sdpa(q, k, v, scale=0.5)
    check_f32(got, reference(q, k, v, scale=0.5))
    q3, k3, v3 = (torch.randn(3, 7, 16, generator=g) for _ in range(3))
    got = sdpa(q3, k3, v3, is_causal=True)
    assert got.shape == (3, 7, 16)
    check_f32(got, reference(q3, k3, v3, is_causal=True))


def test_strided_last_dimension_is_copied():
    # SDPA accepts any layout; the kernels need unit-stride rows.
    q = torch.randn(1, 2, 16, 8).transpose(2, 3)
    assert q.stride(3) != 1
    check_f32(sdpa(q, q, q, is_causal=True), reference(q, q, q, is_causal=True))


def test_fully_masked_rows_give_zero():
    q, k, v = (torch.randn(1, 2, 4, 16) for _ in range(3))
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 2, :] = True
    got = sdpa(q, k, v, attn_mask=mask)
    assert torch.all(got[:, :, [0, 1, 3]] == 0)
    check_f32(got[:, :, 2], reference(q, k, v)[:, :, 2])


def test_requires_grad_inputs_in_inference():
    q = torch.randn(1, 2, 5, 16, requires_grad=True)
    with torch.no_grad():
        out = sdpa(q, q, q)
    check_f32(out, reference(q.detach(), q.detach(), q.detach()))


def test_inputs_requiring_grad_raise_instead_of_losing_the_gradient():
    # Issue: weight.grad stayed None after backward through the operator.
    # Until a backward pass exists, autograd-recorded calls raise.
    lin = torch.nn.Linear(16, 16)
    q = lin(torch.randn(1, 2, 5, 16))
    with pytest.raises(RuntimeError, match="no backward pass yet"):
        sdpa(q, q, q, is_causal=True)
    k = torch.randn(1, 2, 5, 16)
    with pytest.raises(RuntimeError, match="no backward pass yet"):
        sdpa(k, k, k, attn_mask=torch.zeros(5, 5, requires_grad=True))
    compiled = torch.compile(lambda a: sdpa(a, a, a), backend="aot_eager")
    with pytest.raises(Exception, match="no backward pass yet"):
        compiled(q)
    import attn_mlir
    with pytest.raises(ValueError, match="query: requires grad"):
        attn_mlir.attention(q, k, k)
    with pytest.raises(ValueError, match="value: requires grad"):
        attn_mlir.attention(k, k, q)
    with torch.inference_mode():
        check_f32(sdpa(lin(k), k, k), reference(lin(k), k, k))
        check_f32(attn_mlir.attention(k, k, k), reference(k, k, k))


def test_errors():
    q = torch.randn(1, 2, 4, 16)
    with pytest.raises(ValueError, match="dropout_p must be 0.0"):
        sdpa(q, q, q, dropout_p=0.1)
    with pytest.raises(ValueError, match="cannot be combined with is_causal"):
        sdpa(q, q, q, attn_mask=torch.ones(4, 4, dtype=torch.bool), is_causal=True)
    with pytest.raises(ValueError, match="float32, float16, bfloat16"):
        sdpa(q.half(), q, q)
    with pytest.raises(ValueError, match="need enable_gqa=True"):
        sdpa(torch.randn(1, 4, 4, 16), torch.randn(1, 2, 4, 16), torch.randn(1, 2, 4, 16))
    with pytest.raises(ValueError, match="does not broadcast"):
        sdpa(q, q, q, attn_mask=torch.ones(3, 4, dtype=torch.bool))


def test_call_count_and_kernel_cache():
    torch_ops.reset_call_count()
    q = torch.randn(2, 3, 6, 16)
    for _ in range(3):
        sdpa(q, q, q)
    assert torch_ops.call_count() == 3


def test_generation_loop_compiles_once():
    # Default: batch and kv_len are run-time values (one compile for a
    # decode loop whose KV cache grows by a token a step).
    import attn_mlir
    q = torch.randn(1, 4, 1, 32)
    before = attn_mlir.cache_stats()
    for kv in range(5, 25):
        k = torch.randn(1, 4, kv, 32)
        check_f32(sdpa(q, k, k), reference(q, k, k))
    after = attn_mlir.cache_stats()
    assert after["compiles"] - before["compiles"] <= 1
    assert after["hits"] - before["hits"] >= 19
    with pytest.raises(ValueError, match="expected 'kv', True or False"):
        torch_ops.set_dynamic_shapes("sometimes")


def test_dynamic_shapes_mode():
    torch_ops.set_dynamic_shapes(True)
    try:
        for n in (5, 9, 31):
            q = torch.randn(1, 2, n, 16)
            check_f32(sdpa(q, q, q, is_causal=True), reference(q, q, q, is_causal=True))
    finally:
        torch_ops.set_dynamic_shapes("kv")


def test_opcheck():
    q = torch.randn(2, 4, 8, 16)
    k = torch.randn(2, 2, 12, 16)
    mask = torch.rand(2, 1, 8, 12) > 0.2
    q1 = torch.randn(2, 1, 8, 16)   # one query head for every key head
    k3 = torch.randn(2, 12, 16)     # rank 3: one key per head (broadcast)
    for args, kwargs in [((q, k, k), {"enable_gqa": True}),
                         ((q, k, k, mask), {"enable_gqa": True}),
                         ((q, q, q), {"is_causal": True, "scale": 0.2}),
                         ((q1, k, k), {}),
                         ((q[:, :2], k3, k3), {})]:
        torch.library.opcheck(sdpa.default, args, kwargs,
                              test_utils=("test_schema", "test_faketensor",
                                          "test_aot_dispatch_static"))


def test_torch_compile_traces_the_op():
    def block(x, wq, wk, wv):
        b, s, _ = x.shape
        q, k, v = (torch.matmul(x, w).view(b, s, 2, 16).transpose(1, 2) for w in (wq, wk, wv))
        return sdpa(q, k, v, is_causal=True).transpose(1, 2).reshape(b, s, 32)

    x = torch.randn(2, 10, 32)
    ws = [torch.randn(32, 32) / math.sqrt(32) for _ in range(3)]
    eager = block(x, *ws)
    torch_ops.reset_call_count()
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    got = compiled(x, *ws)
    assert torch_ops.call_count() == 1  # the real kernel ran once, in the graph
    torch.testing.assert_close(got, eager, rtol=0, atol=1e-6)
    from torch._dynamo.testing import EagerAndRecordGraphs
    backend = EagerAndRecordGraphs()
    torch._dynamo.reset()
    torch.compile(block, backend=backend, fullgraph=True)(x, *ws)
    assert "attn_mlir.sdpa" in backend.graphs[0].code


def test_hf_bert_swap_matches_stock_model():
    pytest.importorskip("transformers", reason="transformers is not installed")
    import attn_mlir.hf
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=3,
                     num_attention_heads=4, intermediate_size=128,
                     attn_implementation="sdpa")
    model = BertModel(cfg).eval()
    ids = torch.randint(0, 100, (3, 11))
    am = torch.ones(3, 11, dtype=torch.long)
    am[1, 7:] = 0
    am[2, 3:] = 0
    with torch.no_grad():
        stock = model(input_ids=ids, attention_mask=am).last_hidden_state
        attn_mlir.hf.use_attn_mlir(model)
        assert model.config._attn_implementation == "attn_mlir"
        torch_ops.reset_call_count()
        ours = model(input_ids=ids, attention_mask=am).last_hidden_state
    assert torch_ops.call_count() == 3  # every layer went through the op
    err = (ours - stock).abs().max().item()
    assert err <= 1e-5, err


def test_patch_sdpa_context():
    import attn_mlir.hf
    q = torch.randn(1, 2, 5, 16)
    torch_ops.reset_call_count()
    with attn_mlir.hf.patch_sdpa():
        out = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert torch_ops.call_count() == 1
    assert F.scaled_dot_product_attention is not None
    check_f32(out, reference(q, q, q, is_causal=True))


class DLPackOnly:
    """A tensor that offers nothing but the DLPack protocol (so the
    extension cannot take its torch.Tensor fast path)."""

    def __init__(self, t):
        self.t, self.shape, self.dtype = t, t.shape, t.dtype

    def __dlpack__(self, *args, **kwargs):
        return self.t.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_on_torch_tensors_through_dlpack(dtype):
    import attn_mlir
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(2, 3, 9, 32, generator=g).to(dtype) for _ in range(3))
    kt = k.transpose(1, 2).contiguous().transpose(1, 2)  # [B, S, H, D] storage
    assert not kt.is_contiguous()
    kernel = attn_mlir.compile({"batch": 2, "q_heads": 3, "q_len": 9, "kv_len": 9,
                                "head_dim": 32, "dtype": "bf16" if dtype == torch.bfloat16
                                else "f32", "lse": True})
    out = torch.empty(2, 3, 9, 32, dtype=dtype)
    lse = torch.empty(2, 3, 9)
    got, got_lse = kernel(DLPackOnly(q), DLPackOnly(kt), DLPackOnly(v),
                          out=DLPackOnly(out), lse=DLPackOnly(lse), return_lse=True)
    assert got.t is out and got_lse.t is lse
    want = reference(q, k, v)
    tol = 2e-5 if dtype == torch.float32 else 1e-2
    assert (out.double() - want).abs().max().item() <= tol
    ref_lse = torch.logsumexp(q.double() @ k.double().transpose(2, 3) / math.sqrt(32), -1)
    assert (lse.double() - ref_lse).abs().max().item() <= 1e-2


def test_attention_on_torch_tensors_returns_torch():
    import attn_mlir
    q = torch.randn(1, 2, 7, 16)
    out = attn_mlir.attention(q, q, q, causal=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    check_f32(out, reference(q, q, q, is_causal=True))
    qb = q.to(torch.bfloat16)
    outb, lse = attn_mlir.attention(qb, qb, qb, return_lse=True)
    assert outb.dtype == torch.bfloat16 and lse.dtype == torch.float32
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="the tensor is on a device"):
            attn_mlir.attention(q.cuda(), q.cuda(), q.cuda())


def test_scale_zero_and_float64():
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 3, 9, 16, generator=g) for _ in range(3))
    # scale=0: equal weights over the visible keys (PyTorch accepts it).
    check_f32(sdpa(q, k, v, scale=0.0), reference(q, k, v, scale=0.0))
    check_f32(sdpa(q, k, v, scale=0.0, is_causal=True),
              reference(q, k, v, scale=0.0, is_causal=True))
    # float64: computed in float32, cast back, with a warning.
    qd, kd, vd = q.double(), k.double(), v.double()
    with pytest.warns(UserWarning, match="computed in float32"):
        got = sdpa(qd, kd, vd, is_causal=True)
    assert got.dtype == torch.float64
    check_f32(got, reference(q, k, v, is_causal=True))
    bias = torch.randn(9, 9, dtype=torch.float64, generator=g)
    with pytest.warns(UserWarning, match="computed in float32"):
        got = sdpa(qd, kd, vd, attn_mask=bias)
    check_f32(got, reference(q, k, v, attn_mask=bias))
    with pytest.raises(ValueError, match="share one dtype"):
        sdpa(qd, k, v)


def test_threads_follow_torch_get_num_threads():
    old = torch.get_num_threads()
    q = torch.randn(1, 2, 33, 16)
    try:
        torch.set_num_threads(1)
        check_f32(sdpa(q, q, q, is_causal=True), reference(q, q, q, is_causal=True))
        assert torch_ops._context("cpu").num_threads == 1
        torch_ops.set_num_threads(2)
        assert torch_ops._context("cpu").num_threads == 2
        check_f32(sdpa(q, q, q, is_causal=True), reference(q, q, q, is_causal=True))
        with pytest.raises(ValueError, match="positive int"):
            torch_ops.set_num_threads(0)
    finally:
        torch.set_num_threads(old)
        torch_ops.set_num_threads(None)


def _fa_reference(q, k, v, causal, window_size, cache_seqlens, scale):
    """float64 FlashAttention semantics through the numpy oracle: layouts
    [B, S, H, D], band aligned bottom-right, -1 = no window limit."""
    from conftest import reference_attention
    left, right = window_size
    big = q.shape[1] + k.shape[1]
    window = None
    if left >= 0 or right >= 0:
        window = (big if left < 0 else left, big if right < 0 else right)
    out, lse = reference_attention(
        q.transpose(1, 2).double().numpy(), k.transpose(1, 2).double().numpy(),
        v.transpose(1, 2).double().numpy(), scale=scale, causal=causal,
        align="bottom_right", window=window,
        kv_lens=None if cache_seqlens is None else cache_seqlens.numpy())
    return torch.from_numpy(out).transpose(1, 2), torch.from_numpy(lse)


@pytest.mark.parametrize("sq,case", [
    (7, dict()), (7, dict(causal=True)), (7, dict(window_size=(5, 0))),
    (7, dict(causal=True, window_size=(3, 2))), (7, dict(window_size=(-1, 2))),
    (7, dict(window_size=(4, -1))), (7, dict(lens=True)),
    (1, dict(causal=True, lens=True)), (19, dict(causal=True)),
    (25, dict(causal=True)),  # Sq > Sk: the first rows see no key
])
def test_flash_attn_func_matches_reference(sq, case):
    case = dict(case)
    g = torch.Generator().manual_seed(sq + 13 * len(case))
    b, sk, hq, hkv, d, dv = 2, 19, 4, 2, 32, 24
    q = torch.randn(b, sq, hq, d, generator=g)
    k = torch.randn(b, sk, hkv, d, generator=g)
    v = torch.randn(b, sk, hkv, dv, generator=g)
    lens = torch.tensor([19, 11], dtype=torch.int32) if case.pop("lens", False) else None
    out, lse = torch_ops.flash_attn_func(q, k, v, softmax_scale=0.3,
                                         cache_seqlens=lens,
                                         return_softmax_lse=True, **case)
    want, want_lse = _fa_reference(q, k, v, case.get("causal", False),
                                   case.get("window_size", (-1, -1)), lens, 0.3)
    assert out.shape == (b, sq, hq, dv) and lse.shape == (b, hq, sq)
    check_f32(out, want)
    finite = torch.isfinite(want_lse)
    assert torch.equal(torch.isfinite(lse), finite)
    assert (lse[finite].double() - want_lse[finite]).abs().max() <= 1e-4
    assert torch.all(out.transpose(1, 2)[~finite] == 0)
    # Without the LSE: the output alone.
    alone = torch_ops.flash_attn_func(q, k, v, softmax_scale=0.3,
                                      cache_seqlens=lens, **case)
    torch.testing.assert_close(alone, out, rtol=0, atol=0)


def test_flash_attn_func_errors_and_tracing():
    q = torch.randn(1, 5, 2, 16)
    lens = torch.tensor([3], dtype=torch.int32)
    with pytest.raises(ValueError, match="seqlen_q == 1"):
        torch_ops.flash_attn_func(q, q, q, causal=True, cache_seqlens=lens)
    with pytest.raises(ValueError, match="dropout_p must be 0.0"):
        torch_ops.flash_attn_func(q, q, q, 0.1)
    with pytest.raises(ValueError, match="rank 4"):
        torch_ops.flash_attn_func(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="not a multiple"):
        torch_ops.flash_attn_func(torch.randn(1, 5, 3, 16), q, q)
    with pytest.raises(ValueError, match="cache_seqlens must be"):
        torch_ops.flash_attn_func(q, q, q, cache_seqlens=torch.ones(2))
    torch.library.opcheck(torch.ops.attn_mlir.flash_attn.default,
                          (q, q, q, 0.25, True, 2, 0, None, True),
                          test_utils=("test_schema", "test_faketensor",
                                      "test_aot_dispatch_static"))
    compiled = torch.compile(lambda a: torch_ops.flash_attn_func(a, a, a, causal=True),
                             backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(q), torch_ops.flash_attn_func(q, q, q, causal=True))


@pytest.mark.parametrize("order", ["attn_mlir_first", "torch_first"])
def test_import_attn_mlir_registers_the_operators(order):
    import subprocess
    import sys
    imports = ("import attn_mlir, torch" if order == "attn_mlir_first"
               else "import torch, attn_mlir")
    code = (f"{imports}; q = torch.randn(1, 2, 3, 8); "
            "print(torch.ops.attn_mlir.sdpa(q, q, q).shape, "
            "torch.ops.attn_mlir.flash_attn(q, q, q)[0].shape)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "torch.Size([1, 2, 3, 8]) torch.Size([1, 2, 3, 8])" in r.stdout
    # Without torch attn_mlir does not import it.
    r = subprocess.run([sys.executable, "-c", "import attn_mlir, sys; "
                        "print('torch' in sys.modules)"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_document_mask_on_torch_tensors():
    # attn_mlir.attention with a document mask_mod on torch tensors (int64
    # ids, narrowed to int32 on the torch side) against SDPA with the dense
    # mask the documents make.
    import attn_mlir
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 23, 32) for _ in range(3))
    ids = torch.tensor([[0] * 7 + [1] * 16, [0] * 20 + [1] * 3])
    got = attn_mlir.attention(q, k, v, causal=True,
                              mask_mod=attn_mlir.document_mask(ids))
    dense = (ids[:, :, None] == ids[:, None, :])[:, None] & torch.ones(
        23, 23, dtype=torch.bool).tril()
    assert isinstance(got, torch.Tensor)
    check_f32(got, reference(q, k, v, attn_mask=dense))
