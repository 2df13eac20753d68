#!/usr/bin/env bash
# Runs attn-mlir on the attention of every layer of all-MiniLM-L6-v2 (real
# activations in test/data/minilm, extracted by extract_minilm.py) and prints
# the max abs error against the model's own attention output, per layer.
#
#   examples/minilm/run_minilm.sh [path/to/attn-run]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN=${1:-$ROOT/build/bin/attn-run}
DATA=$ROOT/test/data/minilm
TOL=1e-5

python3 - "$DATA/sentences.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"all-MiniLM-L6-v2, {len(d['sentences'])} sentences padded to "
      f"{len(d['input_ids'][0])} tokens (key padding mask from the tokenizer):")
for s in d["sentences"]:
    print("  -", s)
PY
echo
printf '%-7s %-16s %-12s %-12s %s\n' layer max_abs_err compile_ms run_ms gflops
fail=0
for layer in 0 1 2 3 4 5; do
  out=$("$RUN" "$DATA/spec.json" --q "$DATA/layer${layer}_q.npy" \
        --k "$DATA/layer${layer}_k.npy" --v "$DATA/layer${layer}_v.npy" \
        --kv-lens "$DATA/kv_lens.npy" --expect "$DATA/layer${layer}_out.npy" \
        --repeat 20)
  field() { echo "$out" | sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }
  err=$(field max_abs_err)
  printf '%-7s %-16.3g %-12.1f %-12.3f %.2f\n' "$layer" "$err" "$(field compile_ms)" \
    "$(field run_ms)" "$(field gflops)"
  awk -v e="$err" -v t="$TOL" 'BEGIN { exit !(e + 0 <= t + 0) }' || fail=1
done
echo
if [ $fail = 0 ]; then
  echo "PASS: every layer within max abs error $TOL of the model's output"
else
  echo "FAIL: some layer exceeds max abs error $TOL"
  exit 1
fi
