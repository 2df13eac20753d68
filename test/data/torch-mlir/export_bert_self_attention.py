"""Exports one transformers BertSelfAttention layer (eager attention, hidden
32, 2 heads, seeded random weights) with an additive [B, 1, 1, S] mask to
linalg on tensors with torch-mlir: the fixture of
test/Integration/CPU/fuse-attention-run-bert.mlir (through
make_run_test.py).

    pip install torch transformers && pip install --no-deps torch-mlir
    python export_bert_self_attention.py > bert.mlir
"""
import torch
from torch_mlir import fx
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertSelfAttention

torch.manual_seed(0)
config = BertConfig(hidden_size=32, num_attention_heads=2,
                    attn_implementation="eager")
layer = BertSelfAttention(config).eval()


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = layer

    def forward(self, hidden, mask):
        return self.attention(hidden, attention_mask=mask)[0]


hidden = torch.randn(2, 8, 32)
mask = torch.zeros(2, 1, 1, 8)
print(fx.export_and_import(Layer(), hidden, mask, output_type="linalg-on-tensors"))
