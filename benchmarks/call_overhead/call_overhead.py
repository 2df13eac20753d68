#!/usr/bin/env python3
"""Per-call overhead of the embedding paths, and cold/warm disk cache times.

On a tiny problem (B=1, H=1, S=16, D=16: the arithmetic is negligible) it
times one call of a cached kernel through
  C++      attn::Kernel::run                  (attn-call-overhead)
  C API    attn_kernel_run                    (attn-call-overhead)
  Python   kernel(q, k, v, out=out) / kernel(q, k, v) / attn_mlir.attention
           on numpy arrays, and kernel(...) on torch tensors (DLPack)
  PyTorch  torch.ops.attn_mlir.sdpa(q, k, v) (and PyTorch's own SDPA)
and prints microseconds per call and the overhead over the direct C++ call.
Then it compiles one spec in two fresh processes sharing an empty
$ATTN_MLIR_CACHE_DIR and prints the cold (compile) and warm (disk cache)
times.

    PYTHONPATH=build/python python3 benchmarks/call_overhead/call_overhead.py
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def per_call_us(fn, iterations):
    for _ in range(iterations // 10 + 1):
        fn()
    batches = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        batches.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(batches)


COLD_WARM_CHILD = r"""
import json, sys, time
start = time.perf_counter()
import attn_mlir
ctx = attn_mlir.Context()
imported = time.perf_counter()
k = ctx.compile(sys.argv[1])
done = time.perf_counter()
print(json.dumps({"get_kernel_ms": (done - imported) * 1e3,
                  "compile_ms": k.compile_ms, "load_ms": k.load_ms,
                  "from_disk_cache": k.from_disk_cache}))
"""


def cold_warm(spec, env_path):
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, ATTN_MLIR_CACHE_DIR=str(Path(tmp) / "cache"),
                   PYTHONPATH=env_path)
        return [json.loads(subprocess.run(
            [sys.executable, "-c", COLD_WARM_CHILD, json.dumps(spec)], env=env,
            check=True, capture_output=True, text=True).stdout) for _ in range(2)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--size", type=int, default=16, help="S (= q_len = kv_len)")
    ap.add_argument("--head-dim", type=int, default=16)
    args = ap.parse_args()
    pypath = str(Path(args.build_dir) / "python")
    sys.path.insert(0, pypath)
    import numpy as np
    import attn_mlir

    s, d, n = args.size, args.head_dim, args.iterations
    native = json.loads(subprocess.run(
        [str(Path(args.build_dir) / "bin" / "attn-call-overhead"), str(s), str(d),
         str(n)], check=True, capture_output=True, text=True).stdout)
    rows = [("C++ Kernel::run", native["cpp_run_us"]),
            ("C API attn_kernel_run", native["c_api_run_us"])]

    ctx = attn_mlir.Context(cache_dir="")
    kernel = attn_mlir.compile({"batch": 1, "q_heads": 1, "q_len": s, "kv_len": s,
                                "head_dim": d}, context=ctx)
    q = np.full((1, 1, s, d), 0.5, np.float32)
    out = np.empty_like(q)
    rows.append(("Python kernel(q, k, v, out=out) numpy",
                 per_call_us(lambda: kernel(q, q, q, out=out), n)))
    rows.append(("Python kernel(q, k, v) numpy (allocates)",
                 per_call_us(lambda: kernel(q, q, q), n)))
    rows.append(("Python attn_mlir.attention(q, k, v) numpy",
                 per_call_us(lambda: attn_mlir.attention(q, q, q, context=ctx), n)))
    try:
        import torch
        import attn_mlir.torch_ops  # noqa: F401
        qt = torch.full((1, 1, s, d), 0.5)
        ot = torch.empty_like(qt)
        rows.append(("Python kernel(q, k, v, out=out) torch tensors",
                     per_call_us(lambda: kernel(qt, qt, qt, out=ot), n)))

        class DLPackOnly:  # forces the generic __dlpack__ path
            def __init__(self, t):
                self.t = t

            def __dlpack__(self, *a, **k):
                return self.t.__dlpack__(*a, **k)

        qd, od = DLPackOnly(qt), DLPackOnly(ot)
        rows.append(("Python kernel(q, k, v, out=out) via __dlpack__ (torch)",
                     per_call_us(lambda: kernel(qd, qd, qd, out=od), n)))
        op = torch.ops.attn_mlir.sdpa
        with torch.no_grad():
            rows.append(("PyTorch torch.ops.attn_mlir.sdpa",
                         per_call_us(lambda: op(qt, qt, qt), n)))
            rows.append(("PyTorch F.scaled_dot_product_attention (reference)",
                         per_call_us(lambda: torch.nn.functional.scaled_dot_product_attention(
                             qt, qt, qt), n)))
    except ImportError:
        print("(torch not installed: no PyTorch rows)")

    base = native["cpp_run_us"]
    print(f"per-call time of a cached kernel, B=1 H=1 S={s} D={d} f32, "
          f"median of 7 x {n} calls ({native['threads']} worker threads)")
    print(f"{'path':55s} {'us/call':>9s} {'overhead vs C++':>16s}")
    for name, us in rows:
        print(f"{name:55s} {us:9.2f} {us - base:+16.2f}")
    print(f"{'C++ Runtime::getKernel (in-memory hit)':55s} "
          f"{native['cpp_get_kernel_hit_us']:9.2f}")
    print(f"{'C API attn_kernel_compile_json (in-memory hit)':55s} "
          f"{native['c_api_compile_hit_us']:9.2f}")

    print()
    for spec in ({"batch": 4, "q_heads": 12, "q_len": 25, "kv_len": 25, "head_dim": 32,
                  "mask": {"kind": "key_padding"}},
                 {"batch": 1, "q_heads": 8, "q_len": 1024, "kv_len": 1024,
                  "head_dim": 64, "mask": {"kind": "causal"}}):
        cold, warm = cold_warm(spec, pypath)
        assert not cold["from_disk_cache"] and warm["from_disk_cache"]
        print(f"disk cache, {json.dumps(spec)}:")
        print(f"  cold process: {cold['get_kernel_ms']:8.1f} ms to get the kernel "
              f"(compile {cold['compile_ms']:.1f} ms + JIT load {cold['load_ms']:.1f} ms)")
        print(f"  warm process: {warm['get_kernel_ms']:8.1f} ms (compiler not run; "
              f"JIT load {warm['load_ms']:.1f} ms), "
              f"{cold['get_kernel_ms'] - warm['get_kernel_ms']:.1f} ms saved")


if __name__ == "__main__":
    main()
