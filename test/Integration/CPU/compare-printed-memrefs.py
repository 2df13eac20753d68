"""Compares the numbers two printMemrefF32 outputs print (after the
"data =" line): exits 1 when the counts differ or any |a - b| exceeds the
tolerance, printing the largest difference either way.

    compare-printed-memrefs.py A.txt B.txt TOLERANCE
"""
import re
import sys


def numbers(path):
    text = open(path).read()
    if "data =" not in text:
        sys.exit(f"{path}: no printed memref")
    body = text.split("data =", 1)[1]
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|nan|-?inf", body)]


a, b = numbers(sys.argv[1]), numbers(sys.argv[2])
tol = float(sys.argv[3])
if len(a) != len(b) or not a:
    sys.exit(f"different element counts: {len(a)} vs {len(b)}")
err = max(abs(x - y) for x, y in zip(a, b))
print(f"{len(a)} elements, max |difference| {err:g}")
sys.exit(0 if err <= tol else 1)
