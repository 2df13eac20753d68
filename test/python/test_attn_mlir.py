"""attn_mlir with numpy (and DLPack producers): compile, call, attention(),
strides, dtypes, masks, LSE, errors, the GIL and the disk cache."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import attn_mlir
from conftest import reference_attention

TOL = 2e-5


def rand(rng, *shape, dtype=np.float32):
    return rng.uniform(-1, 1, size=shape).astype(dtype)


def assert_close(got, want, tol=TOL):
    got = np.asarray(got, dtype=np.float64)
    err = np.abs(got - want).max()
    assert err <= tol * (1 + np.abs(want).max()), f"max abs error {err}"


def test_version():
    v = attn_mlir.version()
    assert v.startswith("attn-mlir ") and "LLVM" in v


def test_compile_and_call(rng):
    spec = {"batch": 2, "q_heads": 4, "kv_heads": 2, "q_len": 17, "kv_len": 33,
            "head_dim": 32, "dtype": "f32"}
    kernel = attn_mlir.compile(spec)
    assert isinstance(kernel, attn_mlir.Kernel)
    assert json.loads(kernel.spec_json)["q_heads"] == 4
    assert len(kernel.tile_sizes) == 4 and all(t > 0 for t in kernel.tile_sizes)
    assert kernel.target == "cpu"
    assert kernel.operand_info("key") == ((2, 2, 33, 32), "float32")
    assert kernel.operand_info("mask") is None
    assert kernel.workspace_bytes(2, 17, 33) == 0
    assert kernel.flops(2, 17, 33) == 4 * 2 * 4 * 17 * 33 * 32
    q, k, v = rand(rng, 2, 4, 17, 32), rand(rng, 2, 2, 33, 32), rand(rng, 2, 2, 33, 32)
    out = kernel(q, k, v)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == (2, 4, 17, 32)
    assert_close(out, reference_attention(q, k, v)[0])
    # JSON text works as well, and the same spec is the same compiled code.
    again = attn_mlir.compile(json.dumps(spec))
    assert again.tile_sizes == kernel.tile_sizes


def test_cpu_target_levels(rng):
    """cpu_target() names the CPU and the level used; every level this CPU
    runs compiles and matches the reference; another is refused by name."""
    info = attn_mlir.cpu_target()
    assert info["cpu"] and info["available"][0] == "x86-64-v3"
    assert info["target"] == info["available"][-1]
    spec = {"batch": 1, "q_heads": 2, "q_len": 33, "kv_len": 70, "head_dim": 32,
            "mask": {"kind": "causal", "align": "bottom_right"}}
    q, k, v = rand(rng, 1, 2, 33, 32), rand(rng, 1, 2, 70, 32), rand(rng, 1, 2, 70, 32)
    for level in info["available"]:
        out = attn_mlir.compile(spec, cpu_target=level)(q, k, v)
        assert_close(out, reference_attention(q, k, v, causal=True,
                                              align="bottom_right")[0])
    with pytest.raises(ValueError, match="unknown cpu_target 'pentium'"):
        attn_mlir.compile(spec, cpu_target="pentium")
    if "x86-64-v4-amx" not in info["available"]:
        with pytest.raises(ValueError, match="needs amx-tile, which this CPU"):
            attn_mlir.compile(spec, cpu_target="x86-64-v4-amx")


def test_attention_compiles_once(rng):
    q, k, v = rand(rng, 1, 2, 9, 16), rand(rng, 1, 2, 12, 16), rand(rng, 1, 2, 12, 16)
    ctx = attn_mlir.Context(threads=2, cache_dir="")
    before = ctx.cache_stats()["compiles"]
    out1 = attn_mlir.attention(q, k, v, causal=True, context=ctx)
    out2 = attn_mlir.attention(q, k, v, causal=True, context=ctx)
    assert ctx.cache_stats()["compiles"] == before + 1
    np.testing.assert_array_equal(out1, out2)  # bitwise identical reruns
    assert_close(out1, reference_attention(q, k, v, causal=True)[0])


@pytest.mark.parametrize("options", [
    dict(causal=True),
    dict(causal=True, align="bottom_right"),
    dict(window=3),
    dict(window=(2, 1), align="bottom_right"),
    dict(scale=0.3),
    dict(scale=0.0),  # PyTorch accepts it: equal weights over visible keys
    dict(scale=-0.5, causal=True),
])
def test_attention_mask_kinds(rng, options):
    q, k, v = rand(rng, 2, 3, 11, 16), rand(rng, 2, 3, 19, 16), rand(rng, 2, 3, 19, 24)
    out = attn_mlir.attention(q, k, v, **options)
    assert out.shape == (2, 3, 11, 24)
    assert_close(out, reference_attention(q, k, v, **options)[0])


def test_bool_mask_bias_kv_lens_and_lse(rng):
    b, h, sq, sk, d = 3, 4, 7, 13, 32
    q, k, v = rand(rng, b, h, sq, d), rand(rng, b, 2, sk, d), rand(rng, b, 2, sk, d)
    mask = rng.uniform(size=(b, 1, sq, sk)) > 0.3
    lens = np.array([13, 5, 1], dtype=np.int64)
    out, lse = attn_mlir.attention(q, k, v, mask=mask, kv_lens=lens, return_lse=True)
    ref, ref_lse = reference_attention(q, k, v, mask=mask, kv_lens=lens)
    assert_close(out, ref)
    assert lse.shape == (b, h, sq) and lse.dtype == np.float32
    finite = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), finite)
    assert np.abs(lse[finite] - ref_lse[finite]).max() <= 1e-5
    # A float mask is an additive bias, here per head and query.
    bias = rand(rng, 1, h, sq, sk) * 3
    out = attn_mlir.attention(q, k, v, mask=bias)
    assert_close(out, reference_attention(q, k, v, mask=bias)[0])


@pytest.mark.parametrize("options", [
    dict(score_mod=attn_mlir.alibi()),
    dict(score_mod=attn_mlir.alibi(), causal=True, align="bottom_right"),
    dict(score_mod=attn_mlir.softcap(2.0), window=(3, 1)),
])
def test_score_mod(rng, options):
    # 6 query heads over 2 kv heads: ALiBi's slopes for a head count that
    # is not a power of two; odd lengths.
    q, k, v = rand(rng, 2, 6, 11, 16) * 3, rand(rng, 2, 2, 19, 16) * 3, rand(rng, 2, 2, 19, 8)
    out, lse = attn_mlir.attention(q, k, v, return_lse=True, **options)
    ref, ref_lse = reference_attention(q, k, v, **options)
    assert_close(out, ref)
    finite = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), finite)
    assert np.abs(lse[finite] - ref_lse[finite]).max() <= 1e-4


def test_score_mod_rejected(rng):
    q = rand(rng, 1, 1, 4, 16)
    with pytest.raises(TypeError, match="score_mod"):
        attn_mlir.attention(q, q, q, score_mod="alibi")
    with pytest.raises(ValueError):
        attn_mlir.softcap(float("inf"))


def test_document_mask(rng):
    # Two batches of packed documents; odd lengths; GQA; causal on top; a
    # query whose document no key has (row 3 of batch 1) gives 0, LSE -inf.
    b, sq, sk = 2, 13, 13
    q, k, v = rand(rng, b, 4, sq, 16) * 3, rand(rng, b, 2, sk, 16) * 3, rand(rng, b, 2, sk, 8)
    ids = np.array([[0] * 5 + [1] * 4 + [2] * 4, [0] * 2 + [1] * 11], dtype=np.int64)
    q_ids = ids.copy()
    q_ids[1, 3] = 7
    mod = attn_mlir.document_mask(q_ids, ids)
    out, lse = attn_mlir.attention(q, k, v, causal=True, return_lse=True, mask_mod=mod)
    ref, ref_lse = reference_attention(q, k, v, causal=True, q_document_ids=q_ids,
                                       kv_document_ids=ids)
    assert_close(out, ref)
    assert np.all(out[1, :, 3] == 0) and np.all(lse[1, :, 3] == -np.inf)
    finite = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), finite)
    assert np.abs(lse[finite] - ref_lse[finite]).max() <= 1e-4
    # New ids reuse the kernel.
    compiles = attn_mlir.cache_stats()["compiles"]
    ids2 = np.repeat(np.arange(3, dtype=np.int32), [1, 6, 6])[None].repeat(b, 0)
    out, _ = attn_mlir.attention(q, k, v, causal=True, return_lse=True,
                                 mask_mod=attn_mlir.document_mask(ids2))
    assert_close(out, reference_attention(q, k, v, causal=True, q_document_ids=ids2,
                                          kv_document_ids=ids2)[0])
    assert attn_mlir.cache_stats()["compiles"] == compiles


def test_prefix_lm(rng):
    b, s = 3, 17
    q, k, v = rand(rng, b, 2, s, 32), rand(rng, b, 2, s, 32), rand(rng, b, 2, s, 32)
    prefix = [5, 0, 40]
    out = attn_mlir.attention(q, k, v, mask_mod=attn_mlir.prefix_lm(prefix))
    assert_close(out, reference_attention(q, k, v, prefix_lens=prefix)[0])


@pytest.mark.parametrize("make, pattern", [
    (lambda: attn_mlir.dilated_sliding_window(3, 2),
     {"kind": "dilated_sliding_window", "window": 3, "dilation": 2}),
    (lambda: attn_mlir.strided(4), {"kind": "strided", "stride": 4}),
    (lambda: attn_mlir.fixed(8, 2), {"kind": "fixed", "stride": 8, "summary": 2}),
])
def test_index_pattern_mask_mods(rng, make, pattern):
    q, k, v = rand(rng, 2, 4, 29, 32), rand(rng, 2, 2, 29, 32), rand(rng, 2, 2, 29, 16)
    out = attn_mlir.attention(q, k, v, mask_mod=make())
    assert_close(out, reference_attention(q, k, v, pattern=pattern)[0])


def test_longformer(rng):
    b, s = 2, 31
    q, k, v = rand(rng, b, 2, s, 32), rand(rng, b, 2, s, 32), rand(rng, b, 2, s, 32)
    glob = np.zeros((b, s), dtype=bool)
    glob[0, [0, 17]] = True
    glob[1, 30] = True
    out = attn_mlir.attention(q, k, v, kv_lens=np.array([s, 20], np.int32),
                              mask_mod=attn_mlir.longformer(3, glob))
    ref = reference_attention(q, k, v, kv_lens=[s, 20], q_global=glob, kv_global=glob,
                              pattern={"kind": "longformer", "window": 3})[0]
    assert_close(out, ref)
    # Another window is another kernel; other flags are not.
    compiles = attn_mlir.cache_stats()["compiles"]
    attn_mlir.attention(q, k, v, kv_lens=np.array([s, 20], np.int32),
                        mask_mod=attn_mlir.longformer(3, ~glob))
    assert attn_mlir.cache_stats()["compiles"] == compiles
    out = attn_mlir.attention(q, k, v, kv_lens=np.array([s, 20], np.int32),
                              mask_mod=attn_mlir.longformer(5, glob))
    assert attn_mlir.cache_stats()["compiles"] == compiles + 1
    assert_close(out, reference_attention(q, k, v, kv_lens=[s, 20], q_global=glob,
                                          kv_global=glob,
                                          pattern={"kind": "longformer", "window": 5})[0])


@pytest.mark.parametrize("bidirectional", [True, False])
def test_t5_bias(rng, bidirectional):
    # Lengths past max_distance reach every bucket; with a document mask
    # the kernel reads the captures of both regions.
    b, sq, sk = 2, 45, 150
    q, k, v = rand(rng, b, 4, sq, 32), rand(rng, b, 2, sk, 32), rand(rng, b, 2, sk, 16)
    table = rng.standard_normal((32, 4)).astype(np.float32)
    out = attn_mlir.attention(q, k, v, score_mod=attn_mlir.t5_bias(
        table, max_distance=64, bidirectional=bidirectional))
    ref = reference_attention(q, k, v, t5=(table, 64, bidirectional))[0]
    assert_close(out, ref)
    ids = np.repeat(np.arange(3, dtype=np.int32), [50, 50, 50])[None].repeat(b, 0)
    out = attn_mlir.attention(
        q, k, v, causal=True, align="bottom_right",
        score_mod=attn_mlir.t5_bias(table, max_distance=64, bidirectional=bidirectional),
        mask_mod=attn_mlir.document_mask(ids[:, -sq:], ids))
    ref = reference_attention(q, k, v, causal=True, align="bottom_right",
                              t5=(table, 64, bidirectional),
                              q_document_ids=ids[:, -sq:], kv_document_ids=ids)[0]
    assert_close(out, ref)
    with pytest.raises(ValueError, match="relative_attention_bias: expected"):
        attn_mlir.t5_bias(table[0])


def test_mask_mod_errors(rng):
    q = rand(rng, 2, 1, 4, 16)
    with pytest.raises(TypeError, match="mask_mod"):
        attn_mlir.attention(q, q, q, mask_mod={"kind": "document"})
    with pytest.raises(TypeError, match="q_document_ids: expected integer ids"):
        attn_mlir.document_mask(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="prefix_lens: values beyond int32"):
        attn_mlir.prefix_lm([2**40, 0])
    with pytest.raises(ValueError, match="dilation: 0 is outside 1"):
        attn_mlir.dilated_sliding_window(2, 0)
    with pytest.raises(ValueError, match="stride: expected an integer"):
        attn_mlir.strided(2.5)
    # A summary above the stride: the compiler's check names both.
    with pytest.raises(ValueError, match=r"'mask_mod.summary' \(9\)"):
        attn_mlir.attention(q, q, q, mask_mod=attn_mlir.fixed(8, 9))
    # Ids of the wrong shape: the runtime names the capture.
    with pytest.raises(ValueError, match=r"kv_document_ids: shape \[2, 3\]"):
        attn_mlir.attention(q, q, q, mask_mod=attn_mlir.document_mask(
            np.zeros((2, 4), np.int32), np.zeros((2, 3), np.int32)))
    # Kernel-level captures: by name or in order, and their errors.
    kernel = attn_mlir.compile({"batch": 2, "q_heads": 1, "q_len": 4, "kv_len": 4,
                                "head_dim": 16, "mask_mod": {"kind": "prefix_lm"}})
    assert kernel.captures == [("prefix_lens", (2,), "int32")]
    lens = np.array([1, 4], dtype=np.int32)
    a = kernel(q, q, q, captures={"prefix_lens": lens})
    assert np.array_equal(a, kernel(q, q, q, captures=[lens]))
    with pytest.raises(ValueError, match="captures: the kernel reads no capture 'lens'"):
        kernel(q, q, q, captures={"lens": lens})
    with pytest.raises(ValueError, match="prefix_lens: missing from captures"):
        kernel(q, q, q, captures={})
    with pytest.raises(ValueError, match="captures: 0 given"):
        kernel(q, q, q)


def test_fully_masked_rows_are_zero(rng):
    q, k, v = rand(rng, 1, 1, 4, 16), rand(rng, 1, 1, 4, 16), rand(rng, 1, 1, 4, 16)
    mask = np.zeros((1, 1, 4, 4), dtype=bool)
    mask[..., 1, :2] = True
    out, lse = attn_mlir.attention(q, k, v, mask=mask, return_lse=True)
    assert np.all(out[0, 0, [0, 2, 3]] == 0)
    assert np.all(np.isneginf(lse[0, 0, [0, 2, 3]]))
    assert not np.isnan(out).any()


def test_strided_inputs_and_output_in_place(rng):
    # q, k, v as views of one fused [B, S, 3, H, D] projection: no copy.
    b, s, h, d = 2, 10, 3, 16
    qkv = rand(rng, b, s, 3, h, d)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    assert not q.flags.c_contiguous
    # The output written straight into a [B, S, H, D] buffer through strides.
    out_buf = np.zeros((b, s, h, d), dtype=np.float32)
    out_view = out_buf.transpose(0, 2, 1, 3)
    result = attn_mlir.attention(q, k, v, out=out_view)
    assert result is out_view
    ref = reference_attention(q, k, v)[0]
    assert_close(out_buf.transpose(0, 2, 1, 3), ref)


def test_dynamic_sizes(rng):
    kernel = attn_mlir.compile({"batch": None, "q_heads": 2, "q_len": None,
                                "kv_len": None, "head_dim": 16,
                                "mask": {"kind": "causal"}})
    assert kernel.operand_info("query") == ((None, 2, None, 16), "float32")
    for b, sq, sk in [(1, 5, 5), (3, 17, 40), (2, 1, 1)]:
        q, k, v = rand(rng, b, 2, sq, 16), rand(rng, b, 2, sk, 16), rand(rng, b, 2, sk, 16)
        assert_close(kernel(q, k, v), reference_attention(q, k, v, causal=True)[0])


def test_generation_loop_compiles_once(rng):
    # Issue: a new kernel (~400 ms) at every decode step, as kv_len grows.
    # By default batch and kv_len are run-time values: after the first step
    # nothing compiles, and every step matches the reference.
    q = rand(rng, 1, 4, 1, 32)
    before = attn_mlir.cache_stats()
    for kv in range(7, 27):
        k, v = rand(rng, 1, 2, kv, 32), rand(rng, 1, 2, kv, 32)
        out = attn_mlir.attention(q, k, v, causal=True, align="bottom_right")
        assert_close(out, reference_attention(q, k, v, causal=True,
                                              align="bottom_right")[0])
    after = attn_mlir.cache_stats()
    assert after["compiles"] - before["compiles"] <= 1
    assert after["hits"] - before["hits"] >= 19
    # A new batch size reuses the kernel too; dynamic=False specialises.
    k = rand(rng, 3, 2, 9, 32)
    attn_mlir.attention(rand(rng, 3, 4, 1, 32), k, k, causal=True,
                        align="bottom_right")
    assert attn_mlir.cache_stats()["compiles"] == after["compiles"]
    attn_mlir.attention(q, k[:1], k[:1], dynamic=False)
    assert attn_mlir.cache_stats()["compiles"] == after["compiles"] + 1
    assert attn_mlir.spec_for(q, k, k)["kv_len"] is None
    assert attn_mlir.spec_for(q, k, k, dynamic=False)["kv_len"] == 9
    with pytest.raises(ValueError, match="dynamic: expected"):
        attn_mlir.attention(q, k, k, dynamic="yes")


def test_float16(rng):
    q, k, v = (rand(rng, 1, 2, 33, 64, dtype=np.float16) for _ in range(3))
    out = attn_mlir.attention(q, k, v)
    assert out.dtype == np.float16
    ref = reference_attention(q, k, v)[0]
    # Rounding of the f16 output dominates.
    assert np.abs(out.astype(np.float64) - ref).max() <= 2e-3


class DLPackOnly:
    """A tensor that offers nothing but the DLPack protocol."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype = array.shape, array.dtype

    def __dlpack__(self, *args, **kwargs):
        return self.array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def test_dlpack_inputs(rng):
    q, k, v = rand(rng, 2, 2, 8, 16), rand(rng, 2, 2, 8, 16), rand(rng, 2, 2, 8, 16)
    kernel = attn_mlir.compile({"batch": 2, "q_heads": 2, "q_len": 8, "kv_len": 8,
                                "head_dim": 16})
    # Strided (transposed) through DLPack too.
    kt = np.ascontiguousarray(k.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    out = kernel(DLPackOnly(q), DLPackOnly(kt), DLPackOnly(v))
    assert_close(out, reference_attention(q, k, v)[0])


def test_gil_released_while_running(rng):
    # A Python thread keeps appending timestamps; if the call held the GIL,
    # none could fall in the middle of it.
    ctx = attn_mlir.Context(threads=1, cache_dir="")
    s, d = 2048, 64
    q = rand(rng, 1, 2, s, d)
    kernel = attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": s, "kv_len": s,
                                "head_dim": d}, context=ctx)
    kernel(q, q, q)  # warm up
    samples = []
    stop = threading.Event()

    def watcher():
        while not stop.is_set():
            samples.append(time.perf_counter())

    t = threading.Thread(target=watcher)
    t.start()
    time.sleep(0.02)
    start = time.perf_counter()
    kernel(q, q, q)
    end = time.perf_counter()
    stop.set()
    t.join()
    margin = 0.2 * (end - start)
    inside = sum(start + margin < x < end - margin for x in samples)
    assert inside > 100, f"{inside} samples inside a {1e3 * (end - start):.1f} ms call"


def test_errors(rng, tmp_path):
    kernel = attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 4, "kv_len": 6,
                                "head_dim": 16})
    q, k, v = rand(rng, 1, 2, 4, 16), rand(rng, 1, 2, 6, 16), rand(rng, 1, 2, 6, 16)
    with pytest.raises(ValueError, match=r"key: shape \[1, 2, 5, 16\] does not match \[1, 2, 6, 16\]"):
        kernel(q, k[:, :, :5], v)
    with pytest.raises(ValueError, match="value: dtype f16 does not match the spec's f32"):
        kernel(q, k, v.astype(np.float16))
    with pytest.raises(ValueError, match="innermost stride must be 1"):
        kernel(q, rand(rng, 1, 2, 6, 32)[..., ::2], v)
    with pytest.raises(ValueError, match="unsupported dtype"):
        kernel(q.astype(np.float64), k, v)
    with pytest.raises(ValueError, match="query: expected rank 4"):
        kernel(q[0], k, v)
    with pytest.raises(TypeError, match="query: expected a numpy array or a tensor"):
        kernel(q.tolist(), k, v)
    ro = np.zeros((1, 2, 4, 16), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="output: the array is not writable"):
        kernel(q, k, v, out=ro)
    with pytest.raises(ValueError, match="mask: given, but the spec has no tensor mask"):
        kernel(q, k, v, np.ones((1, 1, 4, 6), bool))
    with pytest.raises(ValueError, match="compiled without the log-sum-exp"):
        kernel(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match="operand: expected one of"):
        kernel.operand_info("bias")
    # Specs.
    with pytest.raises(ValueError, match="'head_dim'"):
        attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 4, "kv_len": 6, "head_dim": 0})
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 4, "kv_len": 6,
                           "head_dim": 16, "colour": 1})
    with pytest.raises(ValueError, match="not valid JSON"):
        attn_mlir.compile("{")
    # Compilation and targets.
    with pytest.raises(ValueError, match="tile sizes must be 4 positive integers"):
        attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 4, "kv_len": 6,
                           "head_dim": 16}, tile_sizes=(1, 1, -8, 16))
    with pytest.raises(ValueError, match="target: expected 'cpu' or 'cuda'"):
        attn_mlir.Context("tpu")
    cuda = attn_mlir.Context("cuda", cache_dir="")
    try:
        cuda.compile(kernel.spec_json)
    except RuntimeError as e:
        assert "cuda" in str(e)
    # Cache directories.
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(RuntimeError, match="world-writable .mode 0777.: refusing to use it"):
        attn_mlir.Context(cache_dir=str(open_dir))
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeError, match="cannot create directory"):
        attn_mlir.Context(cache_dir=str(tmp_path / "file" / "sub"))


CHILD = r"""
import json, sys, time, attn_mlir
ctx = attn_mlir.Context()
start = time.perf_counter()
k = ctx.compile(json.dumps({"batch": 1, "q_heads": 3, "q_len": 21, "kv_len": 21,
                            "head_dim": 48, "mask": {"kind": "causal"}}))
ms = (time.perf_counter() - start) * 1e3
print(json.dumps({"from_disk_cache": k.from_disk_cache, "compile_ms": k.compile_ms,
                  "get_ms": ms, "cache_dir": ctx.cache_dir, **ctx.cache_stats()}))
"""


def test_disk_cache_across_processes(tmp_path):
    cache = tmp_path / "kernels"
    env = dict(os.environ, ATTN_MLIR_CACHE_DIR=str(cache))
    runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD], env=env,
                                      check=True, capture_output=True,
                                      text=True).stdout)
            for _ in range(2)]
    cold, warm = runs
    assert cold["cache_dir"] == str(cache)
    assert not cold["from_disk_cache"] and cold["compiles"] == 1
    assert cold["disk_writes"] == 1
    assert warm["from_disk_cache"] and warm["compiles"] == 0
    assert warm["compile_ms"] == 0 and warm["disk_hits"] == 1
    assert warm["get_ms"] < cold["get_ms"]
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".kernel"
    # A corrupt entry (one flipped byte) is a miss: rebuilt and replaced.
    data = bytearray(entries[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    entries[0].write_bytes(bytes(data))
    rebuilt = json.loads(subprocess.run([sys.executable, "-c", CHILD], env=env,
                                        check=True, capture_output=True,
                                        text=True).stdout)
    assert not rebuilt["from_disk_cache"] and rebuilt["disk_rejected"] == 1
    assert rebuilt["disk_writes"] == 1


FORK_CHILD = r"""
import os, sys, numpy as np, attn_mlir
rng = np.random.default_rng(0)
ctx = attn_mlir.Context(threads=2, cache_dir="")
spec = {"batch": 2, "q_heads": 4, "q_len": 256, "kv_len": 256, "head_dim": 32}
kernel = attn_mlir.compile(spec, context=ctx)
q = rng.uniform(-1, 1, (2, 4, 256, 32)).astype(np.float32)
ref = kernel(q, q, q)                     # the worker threads are running now
pid = os.fork()
if pid == 0:
    # The child: the parent's worker threads do not exist here.
    assert np.array_equal(kernel(q, q, q), ref)
    spec["q_len"] = 100
    other = attn_mlir.compile(spec, context=ctx)
    other(q[:, :, :100], q, q)
    sys.exit(0)                           # normal interpreter shutdown
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_kernels_work_after_fork():
    r = subprocess.run([sys.executable, "-c", FORK_CHILD], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "child 0" in r.stdout, r.stdout + r.stderr


# Regressions of the hostile-input probe (each failed before its fix).

def _reference(q, k, v):
    s = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k.astype(np.float64))
    s /= np.sqrt(q.shape[-1])
    s -= s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhqk,bhkd->bhqd", p, v.astype(np.float64))


def test_split_kv_with_padded_query_tile(rng):
    # q_len 5..15 against >= 1024 keys: split-KV with a padded 16-row query
    # tile once read an uninitialised workspace (max |out| ~ 8e28 or NaN).
    for sq in (5, 7, 15):
        q = rand(rng, 1, 2, sq, 16)
        k = rand(rng, 1, 2, 1100, 16)
        out = attn_mlir.attention(q, k, k)
        ref = _reference(q, k, k)
        assert np.abs(out - ref).max() <= 2e-5 * (1 + np.abs(ref).max()), sq


def test_thread_count_is_bounded():
    with pytest.raises(ValueError, match="threads: 3000000000 is more than 4 per core"):
        attn_mlir.Context(threads=3_000_000_000)


def test_output_must_not_alias_an_input(rng):
    kernel = attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 6, "kv_len": 6,
                                "head_dim": 16})
    q, k, v = rand(rng, 1, 2, 6, 16), rand(rng, 1, 2, 6, 16), rand(rng, 1, 2, 6, 16)
    for name, alias in (("key", k), ("value", v), ("query", q)):
        before = alias.copy()
        with pytest.raises(ValueError, match="output: shares memory with " + name):
            kernel(q, k, v, out=alias)
        assert np.array_equal(alias, before)


def test_output_must_not_overlap_itself(rng):
    """An output whose strides put two elements at one address (a zero
    stride, as expand() or as_strided give) is refused: the threads raced
    and every row held the last row written."""
    kernel = attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 8, "kv_len": 8,
                                "head_dim": 16})
    q, k, v = rand(rng, 1, 2, 8, 16), rand(rng, 1, 2, 8, 16), rand(rng, 1, 2, 8, 16)
    row = np.zeros((1, 1, 1, 16), np.float32)
    strided = np.lib.stride_tricks.as_strided(row, shape=(1, 2, 8, 16),
                                              strides=(0, 0, 0, 4))
    with pytest.raises(ValueError, match="output: overlaps itself"):
        kernel(q, k, v, out=strided)
    # Interleaved strides overlap too; a transposed (non-overlapping) view is
    # accepted.
    base = np.zeros(2 * 8 * 16, np.float32)
    interleaved = np.lib.stride_tricks.as_strided(base, shape=(1, 2, 8, 16),
                                                  strides=(0, 32, 4, 4))
    with pytest.raises(ValueError, match="output: overlaps itself"):
        kernel(q, k, v, out=interleaved)
    heads_inner = np.zeros((1, 8, 2, 16), np.float32).transpose(0, 2, 1, 3)
    out = kernel(q, k, v, out=heads_inner)
    assert_close(out, reference_attention(q, k, v)[0])


def test_spec_limits_hold_for_every_path(rng):
    q = rand(rng, 1, 2, 4, 16)
    # A huge static q_heads with small arrays: an error, no allocation.
    huge = attn_mlir.compile({"batch": 1, "q_heads": 2**31 - 1, "q_len": 4,
                              "kv_len": 4, "head_dim": 16})
    with pytest.raises(ValueError, match="query: shape"):
        huge(q, q, q)
    with pytest.raises(ValueError, match="nested deeper than 16 levels"):
        attn_mlir.compile("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="duplicate key 'q_len'"):
        attn_mlir.compile('{"batch": 1, "q_heads": 2, "q_len": 4, "q_len": 5, '
                          '"kv_len": 4, "head_dim": 16}')
    with pytest.raises(ValueError, match=r"got \"x{64}\.\.\."):
        attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 4, "kv_len": 4,
                           "head_dim": 16, "dtype": "x" * 100000})
    with pytest.raises(ValueError, match="'mask.left' must be a non-negative integer"):
        attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 4, "kv_len": 4,
                           "head_dim": 16, "mask": {"kind": "sliding_window",
                                                    "left": 2**32, "right": 0}})
    with pytest.raises(ValueError, match="query and key tile sizes must be at most 1024"):
        attn_mlir.compile({"batch": 1, "q_heads": 2, "q_len": 4, "kv_len": 4,
                           "head_dim": 16}, tile_sizes=(1, 1, 100000, 100000))


def test_kernel_caches_are_bounded_and_clearable(rng):
    """The kernels of `attention` and a Context are bounded (least recently
    used dropped) and can be cleared: they grew by ~0.3 MiB per shape with no
    way to free them."""
    ctx = attn_mlir.Context(threads=1, cache_dir="", max_cached_kernels=2)
    for sq in (1, 2, 3):
        ctx.compile(json.dumps({"batch": 1, "q_heads": 1, "q_len": sq, "kv_len": 8,
                                "head_dim": 16}))
    assert ctx.cache_stats()["memory_entries"] == 2
    ctx.clear_cache()
    assert ctx.cache_stats()["memory_entries"] == 0
    with pytest.raises(ValueError, match="expected an int >= 0"):
        attn_mlir.set_max_cached_kernels(-1)
    attn_mlir.set_max_cached_kernels(2)
    try:
        for sq in (1, 2, 3):
            q = rand(rng, 1, 1, sq, 16)
            attn_mlir.attention(q, q, q, dynamic=False)
        assert len(attn_mlir._attention_kernels) == 2
        attn_mlir.clear_cache()
        assert len(attn_mlir._attention_kernels) == 0
        assert attn_mlir.default_context().cache_stats()["memory_entries"] == 0
    finally:
        attn_mlir.set_max_cached_kernels(256)
