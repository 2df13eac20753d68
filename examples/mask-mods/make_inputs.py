"""Inputs and the f64 expected output of examples/mask-mods/*.json.

    python3 make_inputs.py document|prefix_lm OUT_DIR

writes q.npy, k.npy, v.npy, the spec's captures (q_document_ids.npy and
kv_document_ids.npy, or prefix_lens.npy) and expected.npy, computed here in
numpy float64 from the definition of the mask_mod (docs/design.md, section 6):
    document:  keep q_document_ids[b, i] == kv_document_ids[b, j]
    prefix_lm: keep j <= i or j < prefix_lens[b]
intersected with the spec's causal mask where it has one.
"""
import json
import os
import sys

import numpy as np


def main():
    kind, out = sys.argv[1], sys.argv[2]
    spec = json.load(open(os.path.join(os.path.dirname(__file__),
                                       kind + ".json")))
    rng = np.random.default_rng(0)
    b = spec["batch"]
    hq, hkv = spec["q_heads"], spec.get("kv_heads", spec["q_heads"])
    s = spec["q_len"] or 200  # dynamic lengths: run at 200
    d = spec["head_dim"]
    q = rng.standard_normal((b, hq, s, d)).astype(np.float32)
    k = rng.standard_normal((b, hkv, s, d)).astype(np.float32)
    v = rng.standard_normal((b, hkv, s, d)).astype(np.float32)
    i = np.arange(s)[:, None]
    j = np.arange(s)[None, :]
    keep = np.ones((b, s, s), dtype=bool)
    if kind == "document":
        # Four documents of uneven lengths packed in one sequence.
        ids = np.repeat(np.arange(4, dtype=np.int32), [70, 13, 100, s - 183])
        ids = np.broadcast_to(ids, (b, s)).copy()
        np.save(os.path.join(out, "q_document_ids.npy"), ids)
        np.save(os.path.join(out, "kv_document_ids.npy"), ids)
        keep &= ids[:, :, None] == ids[:, None, :]
    else:
        prefix = np.array([64, 0][:b], dtype=np.int32)
        np.save(os.path.join(out, "prefix_lens.npy"), prefix)
        keep &= (j <= i) | (j < prefix[:, None, None])
    if spec.get("mask", {}).get("kind") == "causal":
        keep &= j <= i
    scores = np.einsum("bhid,bhjd->bhij", q.astype(np.float64),
                       np.repeat(k, hq // hkv, axis=1).astype(np.float64))
    scores = scores / np.sqrt(d)
    scores = np.where(keep[:, None], scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    expected = p @ np.repeat(v, hq // hkv, axis=1).astype(np.float64)
    for name, a in (("q", q), ("k", k), ("v", v),
                    ("expected", expected.astype(np.float32))):
        np.save(os.path.join(out, name + ".npy"), a)


if __name__ == "__main__":
    main()
