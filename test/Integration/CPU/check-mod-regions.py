"""Checks the printed outputs of mod-regions-run.mlir against an f64
evaluation, in plain Python, of the same attention definitions
(FlexAttention's: s = score_mod(scale * q.k, b, h, i, j); keys with
mask_mod false hidden; a row with no visible key gives output 0 and
log-sum-exp -inf).

    check-mod-regions.py PRINTED.txt

Exits 1 naming the first variant whose output or log-sum-exp differs by more
than 1e-4 (inputs are f32 sines, accumulation f32).
"""
import math
import re
import sys

B, HQ, HKV, SQ, SK, D = 2, 4, 2, 7, 9, 8
SCALE = 1.0 / math.sqrt(D)
SLOPES = [0.5, 0.25, 0.125, 0.0625]
DOC = [0, 0, 0, 1, 1, 2, 2, 2, 2]
TOL = 1e-4


def tensor(heads, seq, phase):
    return [[[[math.sin(0.37 * (((b * heads + h) * seq + s) * D + d) + phase)
               for d in range(D)] for s in range(seq)]
             for h in range(heads)] for b in range(B)]


Q, K, V = tensor(HQ, SQ, 0.0), tensor(HKV, SK, 1.0), tensor(HKV, SK, 2.0)


def attention(score_mod, mask_mod):
    out, lse = [], []
    for b in range(B):
        for h in range(HQ):
            hk = h // (HQ // HKV)
            for i in range(SQ):
                s = []
                for j in range(SK):
                    if not mask_mod(b, h, i, j):
                        continue
                    x = SCALE * sum(Q[b][h][i][d] * K[b][hk][j][d]
                                    for d in range(D))
                    s.append((score_mod(x, b, h, i, j), j))
                if not s:
                    out += [0.0] * D
                    lse.append(-math.inf)
                    continue
                m = max(x for x, _ in s)
                p = [(math.exp(x - m), j) for x, j in s]
                l = sum(w for w, _ in p)
                out += [sum(w * V[b][hk][j][e] for w, j in p) / l
                        for e in range(D)]
                lse.append(m + math.log(l))
    return out, lse


def alibi(x, b, h, i, j):
    return x + SLOPES[h] * (j - i)


VARIANTS = [
    ("softcap", lambda x, *_: 1.5 * math.tanh(x / 1.5), lambda *_: True),
    ("alibi", alibi, lambda *_: True),
    ("document", lambda x, *_: x, lambda b, h, i, j: DOC[i] == DOC[j]),
    ("empty rows", lambda x, *_: x, lambda b, h, i, j: j + 3 <= i),
    ("alibi + batch bias, causal and document",
     lambda x, b, h, i, j: alibi(x, b, h, i, j) + 0.25 * b,
     lambda b, h, i, j: j <= i and DOC[i] == DOC[j]),
    ("alibi, bottom-right causal", alibi,
     lambda b, h, i, j: j <= i + SK - SQ),
]


def printed(path):
    text = open(path).read()
    blocks = text.split("data =")[1:]
    return [[float(x) for x in
             re.findall(r"-?nan|-?inf|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?",
                        block.split("Unranked Memref")[0])]
            for block in blocks]


def close(x, y):
    if math.isinf(x) or math.isinf(y) or math.isnan(x) or math.isnan(y):
        return x == y
    return abs(x - y) <= TOL


def main():
    blocks = printed(sys.argv[1])
    if len(blocks) != 2 * len(VARIANTS):
        sys.exit(f"expected {2 * len(VARIANTS)} printed tensors, got "
                 f"{len(blocks)}")
    for n, (name, score_mod, mask_mod) in enumerate(VARIANTS):
        expected = attention(score_mod, mask_mod)
        for what, want, got in zip(("output", "lse"), expected,
                                   blocks[2 * n:2 * n + 2]):
            if len(want) != len(got):
                sys.exit(f"{name}: {what} has {len(got)} elements, expected "
                         f"{len(want)}")
            for idx, (x, y) in enumerate(zip(want, got)):
                if not close(x, y):
                    sys.exit(f"{name}: {what}[{idx}] = {y}, expected {x}")
        print(f"{name}: ok")


if __name__ == "__main__":
    main()
