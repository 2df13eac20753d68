#!/usr/bin/env python3
"""Are two attn-mlir builds' kernels byte-identical? For refactors that must
not change what is emitted.

    python3 benchmarks/same_kernels.py --old /tmp/old/build --new build \\
        [--cpu-targets x86-64-v3,x86-64-v4] [--no-cuda] [--only SUBSTRING]

For every spec below (the shapes of compare.py, then one small case per mask
family, element type, decode / split-KV, GQA and dynamic lengths) and every
CPU target level asked for (default: the levels this CPU can run), both
builds' attn-run compile the kernel with --compile-only into a fresh disk
cache each; the object files (the cache entry after its header, which names
the compiler's git revision) are compared byte for byte. With CUDA (the
default; no device needed) the PTX of --target cuda --emit-ptx is compared
for sm_80 and sm_90 on the specs CUDA supports. Prints one line per kernel
(`same` or `DIFFERS` with both sizes) and a count.

Exit status: 0 when every kernel is identical, 1 when one differs, 2 when a
binary is missing or a compile fails in one build but not the other (a spec
both builds refuse is reported as `refused` and skipped).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def spec(b, hq, hkv, sq, sk, d, dtype="f32", mask=None, **extra):
    s = {"batch": b, "q_heads": hq, "kv_heads": hkv, "q_len": sq,
         "kv_len": sk, "head_dim": d, "v_head_dim": d, "dtype": dtype}
    if mask is not None:
        s["mask"] = mask
    s.update(extra)
    return s


CAUSAL_BR = {"kind": "causal", "align": "bottom_right"}


def specs():
    """(name, spec) pairs: compare.py's shapes, then the feature cases."""
    from compare import shapes  # noqa: PLC0415 (as ab_compare.py does)
    out = [(name, s) for name, s, _ in shapes()]
    for dtype in ("f32", "f16", "bf16"):
        out += [
            (f"odd causal tl {dtype}",
             spec(2, 4, 2, 77, 91, 64, dtype, {"kind": "causal"})),
            (f"odd causal br lse {dtype}",
             spec(2, 4, 4, 77, 91, 64, dtype, CAUSAL_BR, lse=True)),
            (f"window {dtype}",
             spec(1, 4, 4, 100, 100, 64, dtype,
                  {"kind": "sliding_window", "left": 16, "right": 3})),
            (f"bool mask {dtype}",
             spec(2, 4, 4, 33, 65, 64, dtype, {"kind": "tensor"})),
            (f"bias + key padding {dtype}",
             spec(2, 4, 4, 33, 65, 128, dtype,
                  [{"kind": "tensor", "dtype": dtype, "head_broadcast": False},
                   {"kind": "key_padding"}])),
            (f"decode split-KV {dtype}", spec(2, 8, 2, 1, 3000, 128, dtype)),
            (f"dynamic lengths causal {dtype}",
             spec(None, 4, 2, None, None, 64, dtype, CAUSAL_BR)),
            (f"dynamic decode {dtype}",
             spec(None, 8, 8, 1, None, 64, dtype, {"kind": "key_padding"})),
        ]
    return out


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True)
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


def cpu_object(binary, spec_path, level, directory):
    """The object bytes of the kernel of spec_path for level, or an error."""
    cache = tempfile.mkdtemp(dir=directory)
    cmd = [binary, spec_path, "--compile-only", "--cache-dir", cache]
    if level:
        cmd += ["--cpu-target", level]
    rc, _, err = run(cmd)
    if rc != 0:
        return None, err.strip().splitlines()[-1] if err.strip() else f"rc {rc}"
    # A kernel of dynamic lengths is several objects (the prefill and the
    # decode variant): each entry's key text, less the compiler line, names
    # it in both builds.
    objects = {}
    for entry in os.listdir(cache):
        if not entry.endswith(".kernel"):
            continue
        with open(os.path.join(cache, entry), "rb") as f:
            data = f.read()
        start = data.find(b"\x7fELF")
        if start < 0:
            return None, f"{entry}: no ELF object in the cache entry"
        key = b"\n".join(line for line in data[:start].split(b"\n")
                         if not line.startswith(b"compiler:"))
        objects[key] = data[start:]
    if not objects:
        return None, "no cache entry"
    return b"".join(objects[k] for k in sorted(objects)), None


def ptx(binary, spec_path, chip, directory):
    fd, path = tempfile.mkstemp(suffix=".ptx", dir=directory)
    os.close(fd)
    rc, _, err = run([binary, spec_path, "--target", "cuda", "--chip", chip,
                      "--emit-ptx", path])
    if rc != 0:
        return None, err.strip().splitlines()[-1] if err.strip() else f"rc {rc}"
    with open(path, "rb") as f:
        return f.read(), None


def runnable_levels():
    """The levels this CPU can run (attn_mlir.cpu_target())."""
    import attn_mlir  # noqa: PLC0415
    return attn_mlir.cpu_target()["available"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True,
                        help="old build directory (BUILD/bin/attn-run)")
    parser.add_argument("--new", required=True, help="new build directory")
    parser.add_argument("--cpu-targets", default=None,
                        help="comma-separated levels (default: every level "
                             "this CPU can run)")
    parser.add_argument("--no-cuda", action="store_true",
                        help="skip the PTX comparison")
    parser.add_argument("--only", default=None,
                        help="only specs whose name contains this")
    args = parser.parse_args()

    binaries = {}
    for side in ("old", "new"):
        b = os.path.join(getattr(args, side), "bin", "attn-run")
        if not os.access(b, os.X_OK):
            sys.exit(f"same_kernels: no attn-run at {b}")
        binaries[side] = b
    if args.cpu_targets:
        levels = args.cpu_targets.split(",")
    else:
        levels = runnable_levels()

    same = differs = refused = 0
    failed = False
    with tempfile.TemporaryDirectory() as directory:
        cases = [(n, s) for n, s in specs()
                 if not args.only or args.only in n]
        for i, (name, s) in enumerate(cases):
            spec_path = os.path.join(directory, f"spec{i}.json")
            with open(spec_path, "w") as f:
                json.dump(s, f)
            kernels = [(lv or "host", lambda b, lv=lv: cpu_object(
                b, spec_path, lv, directory)) for lv in levels]
            if not args.no_cuda:
                kernels += [(f"cuda {chip}", lambda b, chip=chip: ptx(
                    b, spec_path, chip, directory))
                    for chip in ("sm_80", "sm_90")]
            for label, build in kernels:
                old, old_err = build(binaries["old"])
                new, new_err = build(binaries["new"])
                if old_err and new_err:
                    refused += 1
                    print(f"refused  {name} [{label}]: {new_err[:100]}")
                    continue
                if old_err or new_err:
                    failed = True
                    print(f"FAILED   {name} [{label}]: old: {old_err} new: "
                          f"{new_err}")
                    continue
                if old == new:
                    same += 1
                    print(f"same     {name} [{label}] ({len(new)} bytes)")
                else:
                    differs += 1
                    print(f"DIFFERS  {name} [{label}] (old {len(old)} bytes, "
                          f"new {len(new)} bytes)")
            sys.stdout.flush()
    print(f"{same} identical, {differs} different, {refused} refused by "
          f"both builds")
    if failed:
        return 2
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
