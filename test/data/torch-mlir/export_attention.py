"""Exports attention written with plain PyTorch ops to linalg on tensors
with torch-mlir, as the fixtures of test/Transforms/fuse-attention*.mlir
were made:

    pip install torch && pip install --no-deps torch-mlir
    python export_attention.py {plain,causal,causal_br,window,triu,random,bias,padding,gqa,sdpa,sdpa_causal,sdpa_mask,window_lr}

plain: q @ k^T / sqrt(d), softmax, @ v (q, k, v [1, 2, 8, 16]); causal:
the scores * (1 / sqrt(d)) masked_fill'ed with -inf above the diagonal of a
torch.tril; causal_br: 4 queries against 8 keys, tril(diagonal=4)
(bottom-right); window: tril & triu(diagonal=-2) (a sliding window of 2
keys to the left); window_lr: tril(diagonal=1) & triu(diagonal=-2) (2
left, 1 right); triu: keys at or after the query (not a band the
compiler has); random: a constant random boolean mask; bias: an additive
[B, 1, 1, Sk] bias argument after the scale; padding: a boolean
[B, 1, 1, Sk] keep argument through masked_fill(~keep, -inf) (B = 2 for
these two); gqa: 4 query heads on 2 key/value heads, K and V repeated as
transformers' repeat_kv does; sdpa, sdpa_causal, sdpa_mask:
torch.nn.functional.scaled_dot_product_attention itself (plain, is_causal,
a boolean [B, 1, Sq, Sk] attn_mask argument), which torch-mlir decomposes
(sqrt(scale) on Q and K^T, the mask as an additive 0 / -inf tensor, rows
with no visible key zeroed).
"""
import math
import sys

import torch
from torch_mlir import fx

MODE = sys.argv[1]
SQ = 4 if MODE == "causal_br" else 8


_GEN = torch.Generator().manual_seed(0)
_RANDOM = torch.rand(SQ, 8, generator=_GEN) > 0.3
_RANDOM[:, 0] = True


def keep_mask(sq, sk):
    ones = torch.ones(sq, sk, dtype=torch.bool)
    if MODE in ("causal", "causal_br"):
        return ones.tril(diagonal=sk - sq)
    if MODE == "window":
        return ones.tril() & ones.triu(diagonal=-2)
    if MODE == "window_lr":
        return ones.tril(diagonal=1) & ones.triu(diagonal=-2)
    if MODE == "triu":
        return ones.triu()
    return _RANDOM


def repeat_kv(x, group):
    b, kv, s, d = x.shape
    return x[:, :, None, :, :].expand(b, kv, group, s, d).reshape(b, kv * group, s, d)


class Attention(torch.nn.Module):
    def forward(self, q, k, v, extra=None):
        if MODE.startswith("sdpa"):
            return torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=extra, is_causal=MODE == "sdpa_causal")
        if MODE == "gqa":
            k, v = repeat_kv(k, 2), repeat_kv(v, 2)
        if MODE == "bias":
            s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1]) + extra
            return torch.matmul(torch.softmax(s, dim=-1), v)
        if MODE == "padding":
            s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            s = s.masked_fill(~extra, float("-inf"))
            return torch.matmul(torch.softmax(s, dim=-1), v)
        if MODE == "plain":
            s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        else:
            s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
            s = s.masked_fill(~keep_mask(q.shape[-2], k.shape[-2]), float("-inf"))
        return torch.matmul(torch.softmax(s, dim=-1), v)


B = 2 if MODE in ("bias", "padding") else 1
q = torch.randn(B, 4 if MODE == "gqa" else 2, SQ, 16)
k, v = torch.randn(B, 2, 8, 16), torch.randn(B, 2, 8, 16)
args = (q, k, v)
if MODE == "bias":
    args += (torch.randn(B, 1, 1, 8),)
elif MODE == "padding":
    args += (torch.ones(B, 1, 1, 8, dtype=torch.bool),)
elif MODE == "sdpa_mask":
    args += (torch.ones(B, 1, SQ, 8, dtype=torch.bool),)
print(fx.export_and_import(Attention(), *args, output_type="linalg-on-tensors"))
