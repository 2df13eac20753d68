#!/usr/bin/env python3
"""Assembles the CUDA attention kernels with ptxas and checks the resources.

For every supported configuration (head_dim 64 / 128, f16 / bf16 / f32,
no mask / causal, sm_80 / sm_90) or the ones selected with --only, it runs

    attn-run SPEC --target cuda --chip CHIP --emit-ptx K.ptx
    ptxas -arch=CHIP -O3 -v K.ptx -o K.cubin

and asserts, from the `ptxas -v` report and the launch configuration that
attn-run prints: 0 bytes of spill stores and spill loads and no stack frame,
at most 255 registers per thread, registers x threads per block within the
SM's 64K registers, and static + dynamic shared memory within what one block
may use on the chip (163 KB on sm_80, 227 KB on sm_90). Prints one line per
kernel (the figures of docs/gpu-performance-model.md) and exits non-zero
when any check fails.
"""

import argparse
import json
import os
import re
import subprocess
import sys

SHARED_LIMIT = {"sm_80": 163 * 1024, "sm_90": 227 * 1024}
REGISTERS_PER_SM = 65536
MAX_REGISTERS = 255

# The benchmark shape of each head_dim (the kernels are specialised on the
# static sizes; the resource figures do not depend on the sequence length
# beyond the tile choice).
SHAPES = {
    64: {"batch": 1, "q_heads": 8, "kv_heads": 8, "q_len": 1024,
         "kv_len": 1024},
    128: {"batch": 1, "q_heads": 16, "kv_heads": 16, "q_len": 4096,
          "kv_len": 4096},
}


def configurations():
    for chip in ("sm_80", "sm_90"):
        for dtype in ("f16", "bf16", "f32"):
            for head_dim in (64, 128):
                for mask in ("none", "causal"):
                    yield chip, dtype, head_dim, mask


# Beyond the matrix above, the kernels with the most masking state (they
# carry more registers): GQA with dynamic sizes, a sliding window, key
# padding and the log-sum-exp; a ragged kv_len; a bottom-right causal mask
# with key padding. Checked for sm_90 and every dtype.
EXTRA_SPECS = {
    "window-padding-lse-dynamic": {
        "batch": None, "q_heads": 8, "kv_heads": 2, "q_len": None,
        "kv_len": None, "head_dim": 128, "lse": True,
        "mask": [{"kind": "sliding_window", "left": 256, "right": 0},
                 {"kind": "key_padding"}]},
    "ragged-kv": {"batch": 1, "q_heads": 8, "q_len": 1000, "kv_len": 1000,
                  "head_dim": 128, "mask": {"kind": "none"}},
    "causal-br-padding-lse": {
        "batch": 2, "q_heads": 4, "q_len": 100, "kv_len": 300,
        "head_dim": 64, "lse": True,
        "mask": [{"kind": "causal", "align": "bottom_right"},
                 {"kind": "key_padding"}]},
}


def check(attn_run, ptxas, workdir, chip, dtype, head_dim, mask):
    if head_dim in SHAPES:
        name = f"d{head_dim}-{dtype}-{mask}-{chip}"
        spec = dict(SHAPES[head_dim], head_dim=head_dim, dtype=dtype,
                    mask={"kind": mask})
    else:  # an EXTRA_SPECS entry, named by `mask`
        name = f"{mask}-{dtype}-{chip}"
        spec = dict(EXTRA_SPECS[mask], dtype=dtype)
    spec_path = os.path.join(workdir, name + ".json")
    ptx_path = os.path.join(workdir, name + ".ptx")
    cubin_path = os.path.join(workdir, name + ".cubin")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    run = subprocess.run(
        [attn_run, spec_path, "--target", "cuda", "--chip", chip,
         "--emit-ptx", ptx_path],
        capture_output=True, text=True)
    if run.returncode != 0:
        return name, None, [f"attn-run failed: {run.stderr.strip()}"]
    launch = json.loads(run.stdout.strip().splitlines()[-1])
    asm = subprocess.run(
        [ptxas, f"-arch={chip}", "-O3", "-v", ptx_path, "-o", cubin_path],
        capture_output=True, text=True)
    report = asm.stdout + asm.stderr
    if asm.returncode != 0:
        return name, None, [f"ptxas failed: {report.strip()}"]

    def number(pattern):
        m = re.search(pattern, report)
        return int(m.group(1)) if m else None

    figures = {
        "registers": number(r"Used (\d+) registers"),
        "spill_stores": number(r"(\d+) bytes spill stores"),
        "spill_loads": number(r"(\d+) bytes spill loads"),
        "stack": number(r"(\d+) bytes stack frame"),
        "static_smem": number(r"(\d+) bytes smem") or 0,
        "dynamic_smem": launch["shared_bytes"],
        "threads": launch["block"][0] * launch["block"][1] * launch["block"][2],
        "tiles": launch["tile_sizes"],
        "grid": launch["grid"],
        "entry": launch["entry"],
    }
    problems = []
    for key in ("registers", "spill_stores", "spill_loads", "stack"):
        if figures[key] is None:
            problems.append(f"no '{key}' in the ptxas report")
    if problems:
        return name, figures, problems
    if figures["spill_stores"] or figures["spill_loads"]:
        problems.append(f"spills: {figures['spill_stores']} bytes stored, "
                        f"{figures['spill_loads']} bytes loaded")
    if figures["stack"]:
        problems.append(f"stack frame of {figures['stack']} bytes")
    if figures["registers"] > MAX_REGISTERS:
        problems.append(f"{figures['registers']} registers per thread")
    if figures["registers"] * figures["threads"] > REGISTERS_PER_SM:
        problems.append("the block needs more registers than an SM has")
    smem = figures["static_smem"] + figures["dynamic_smem"]
    if smem > SHARED_LIMIT[chip]:
        problems.append(f"{smem} bytes of shared memory, the limit on {chip} "
                        f"is {SHARED_LIMIT[chip]}")
    return name, figures, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn-run", required=True)
    parser.add_argument("--ptxas", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--only", help="substring of the kernel names to run")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    failed = 0
    table = {}
    extras = [("sm_90", dtype, None, key) for key in EXTRA_SPECS
              for dtype in ("f16", "bf16", "f32")]
    for config in list(configurations()) + extras:
        chip, dtype, head_dim, mask = config
        name = (f"d{head_dim}-{dtype}-{mask}-{chip}" if head_dim
                else f"{mask}-{dtype}-{chip}")
        if args.only and args.only not in name:
            continue
        name, figures, problems = check(args.attn_run, args.ptxas,
                                        args.workdir, *config)
        table[name] = figures
        if figures and "registers" in figures and not problems:
            print(f"{name} registers={figures['registers']} "
                  f"spill_stores={figures['spill_stores']} "
                  f"spill_loads={figures['spill_loads']} "
                  f"smem={figures['static_smem'] + figures['dynamic_smem']} "
                  f"threads={figures['threads']} "
                  f"tiles={','.join(map(str, figures['tiles']))} OK")
        else:
            failed += 1
            print(f"{name} FAILED: {'; '.join(problems)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
