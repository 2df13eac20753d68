import torch, math, sys
from torch_mlir import fx
class Attn(torch.nn.Module):
    def forward(self, q, k, v):
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        p = torch.softmax(s, dim=-1)
        return torch.matmul(p, v)
class Causal(torch.nn.Module):
    def forward(self, q, k, v):
        s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        n = q.shape[-2]
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
        return torch.matmul(torch.softmax(s, dim=-1), v)
q, k, v = torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16)
which = sys.argv[1]
m = fx.export_and_import({"plain": Attn, "causal": Causal}[which](), q, k, v, output_type="linalg-on-tensors")
print(m)
