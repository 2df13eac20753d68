"""Compares the numbers two printMemrefF32 outputs print (after the
"data =" line): exits 1 when the counts differ or any element differs by
more than the tolerance, printing the largest difference either way.

    compare-printed-memrefs.py A.txt B.txt TOLERANCE

NaN matches only NaN, and an infinity only the same infinity: any other
pairing counts as an infinite difference (an unfused output with NaN rows
must not compare equal to a fused one with zeros).
"""
import math
import re
import sys


def numbers(path):
    text = open(path).read()
    if "data =" not in text:
        sys.exit(f"{path}: no printed memref")
    body = text.split("data =", 1)[1]
    return [float(x) for x in
            re.findall(r"-?nan|-?inf|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", body)]


def difference(x, y):
    if math.isnan(x) or math.isnan(y):
        return 0.0 if math.isnan(x) and math.isnan(y) else math.inf
    if math.isinf(x) or math.isinf(y):
        return 0.0 if x == y else math.inf
    return abs(x - y)


a, b = numbers(sys.argv[1]), numbers(sys.argv[2])
tol = float(sys.argv[3])
if len(a) != len(b) or not a:
    sys.exit(f"different element counts: {len(a)} vs {len(b)}")
diffs = [difference(x, y) for x, y in zip(a, b)]
err = max(diffs)
nan_a, nan_b = sum(map(math.isnan, a)), sum(map(math.isnan, b))
print(f"{len(a)} elements, max |difference| {err:g}, NaN: {nan_a} vs {nan_b}")
sys.exit(0 if err <= tol else 1)
