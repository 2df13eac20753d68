#!/usr/bin/env python3
"""Old-versus-new timing of two attn-mlir builds on the shapes of compare.py.

    git worktree add /tmp/old main && cmake -S /tmp/old -B /tmp/old/build ...
    python3 benchmarks/ab_compare.py --old /tmp/old/build --new build \\
        [--rounds 5] [--repeat 10] [--only SUBSTRING] [--threads N]

Each shape's spec and random inputs are written once; then the two builds'
attn-run (BUILD/bin/attn-run) run the same spec on the same inputs,
alternately (old, new, old, new, ...) for --rounds rounds, so that a noisy
period of a shared machine hits both alike. Each run reports the median of
--repeat timed calls (attn-run's run_ms); the table gives, per shape, the
median over the rounds of old and new, and new / old (below 1: new is
faster). Timings on a shared VM move 5-20% between runs: compare within one
run of this script, never against a number from another run.

The long-context shape of compare.py (S = 32768) is skipped unless --only
names it. Exit status 2 for a missing binary or a failed run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np



def run_ms(binary, spec_path, inputs, repeat, threads):
    cmd = [binary, spec_path, "--q", inputs[0], "--k", inputs[1], "--v",
           inputs[2], "--repeat", str(repeat)]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"ab_compare: {binary} failed on {spec_path}: "
                 f"{(proc.stderr or proc.stdout).strip()[:500]}")
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)["run_ms"]
    sys.exit(f"ab_compare: no run_ms in the output of {binary}")


def write_inputs(directory, name, spec, rng):
    dtype = np.float32  # main() runs the f32 shapes only
    b, hq, hkv = spec["batch"], spec["q_heads"], spec["kv_heads"]
    sq, sk, d, dv = spec["q_len"], spec["kv_len"], spec["head_dim"], spec["v_head_dim"]
    paths = []
    for tag, shape in (("q", (b, hq, sq, d)), ("k", (b, hkv, sk, d)),
                       ("v", (b, hkv, sk, dv))):
        path = os.path.join(directory, f"{name}.{tag}.npy")
        np.save(path, rng.standard_normal(shape, dtype=dtype))
        paths.append(path)
    spec_path = os.path.join(directory, f"{name}.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    return spec_path, paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="build directory of the old tree")
    ap.add_argument("--new", required=True, help="build directory of the new tree")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    if args.rounds < 1 or args.repeat < 1:
        sys.exit("ab_compare: --rounds and --repeat must be >= 1")
    binaries = {}
    for side in ("old", "new"):
        path = os.path.join(getattr(args, side), "bin", "attn-run")
        if not os.access(path, os.X_OK):
            print(f"ab_compare: --{side}: no executable {path}", file=sys.stderr)
            sys.exit(2)
        binaries[side] = path

    # compare.py owns the list of benchmark shapes; it imports attn_mlir,
    # which the new build provides.
    sys.path.insert(0, os.path.join(args.new, "python"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from compare import shapes

    rng = np.random.default_rng(0)
    rows = []
    if args.only and not any(args.only in name for name, _, _ in shapes()):
        sys.exit(f"ab_compare.py: error: --only '{args.only}' matches no shape")
    with tempfile.TemporaryDirectory(prefix="attn-ab-") as tmp:
        for i, (name, spec, role) in enumerate(shapes()):
            if args.only and args.only not in name:
                continue
            if role == "long" and not args.only:
                continue
            if spec["dtype"] != "f32":
                continue  # attn-run reads inputs in the spec dtype; numpy has no bf16
            spec_path, inputs = write_inputs(tmp, f"s{i}", spec, rng)
            times = {"old": [], "new": []}
            for _ in range(args.rounds):
                for side in ("old", "new"):
                    times[side].append(run_ms(binaries[side], spec_path, inputs,
                                              args.repeat, args.threads))
            old, new = (statistics.median(times[s]) for s in ("old", "new"))
            rows.append((name, old, new, new / old))
            print(f"{name:32s} old {old:9.3f} ms  new {new:9.3f} ms  "
                  f"new/old {new / old:5.3f}", flush=True)

    print("\n| shape | old ms | new ms | new / old |\n|---|---|---|---|")
    for name, old, new, ratio in rows:
        print(f"| {name} | {old:.3f} | {new:.3f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
