#!/usr/bin/env bash
# gpt2 bench policies --backend cuda on HF's tiny fixture (2 layers, 2 heads, context 64), against
# the same bench on the cpu backend with the same fp16 cache:
#  - the same runs, no timing on the emulator;
#  - perplexity within fp16 noise (0.5% relative) of the cpu's, run by run;
#  - memory is the pool's pages: bytes = pages x 8192 in fp16 (2 (K, V) x 2 heads x 16 tokens x
#    64 x 2 bytes), x 4224 in int8 (64 codes and a 2-byte scale per row), plus under minicache
#    16 bytes (2 heads' K and V norm ratios, fp32) per merged token; full, share, h2o
#    (compacted) and minicache hold exactly the cpu's pages, the window policies at most one page
#    more per layer (two with sinks): eviction frees whole pages only.
#  - --past 150: every window and sinks run decodes 150 tokens past the 64-token context, and
#    restarts when its context reaches 65 tokens, keeping K = W (or S + W): once at step 64,
#    then every 65 - K steps (arithmetic); the other runs do not go past.
# usage: test_bench_policies_gpu.sh GPT2 TINY_HF_DIR   (exits 77 with no CUDA device)
set -u
gpt2=$1
tiny=$2
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

python3 -c "
import random
random.seed(5)
print(' '.join(random.choice('a b c d e f g h l m n o'.split()) for _ in range(100)))" >"$work/text"
args=(-m "$tiny" -f "$work/text" --pyramid 1,0.5 --share-l0 0 --minicache-l0 0 --kv fp16 --budgets 25,50)
if ! "$gpt2" bench policies "${args[@]}" --backend cuda --past 150 -o "$work/cuda" >"$work/table" 2>"$work/err"; then
  if grep -q "no CUDA device" "$work/err"; then
    echo "test_bench_policies_gpu: no CUDA device, skipped"
    exit 77
  fi
  fail "bench policies --backend cuda: $(cat "$work/err")"
fi
"$gpt2" bench policies "${args[@]}" --backend cpu -o "$work/cpu" >/dev/null 2>"$work/err" \
  || fail "bench policies --backend cpu: $(cat "$work/err")"
python3 - "$work" <<'PY' || fail "bench policies --backend cuda against cpu"
import json, sys
work = sys.argv[1]
cuda = {x["policy"]: x for x in json.load(open(f"{work}/cuda/bench_policies.json"))["runs"]}
cpu = {x["policy"]: x for x in json.load(open(f"{work}/cpu/bench_policies.json"))["runs"]}
assert sorted(cuda) == sorted(cpu), (sorted(cuda), sorted(cpu))
for name, g in cuda.items():
    c = cpu[name]
    assert "decode_tok_per_s" not in g, name  # the emulator: no timings
    assert abs(g["ppl"] / c["ppl"] - 1) < 5e-3, (name, g["ppl"], c["ppl"])
    page = {"fp16": 8192, "int8": 2 * 2 * 16 * (64 + 2)}[g["kv"]]
    ratios = g["peak_kv_bytes"] - g["peak_kv_pages"] * page
    assert ratios == 0 or (name.startswith("minicache") and ratios > 0 and ratios % 16 == 0), (name, g)
    extra = g["peak_kv_pages"] - c["peak_kv_pages"]
    exact = name == "full" or name.startswith(("share", "h2o", "minicache"))
    most = 0 if exact else 2 * (2 if name.startswith("sinks") else 1)
    assert 0 <= extra <= most, (name, g["peak_kv_pages"], c["peak_kv_pages"])
    past = g.get("past_context")
    if name.startswith(("window", "sinks")):
        keep = sum(int(part.split(":")[1]) for part in name.split(","))
        restarts = 1 + (150 - 1 - 64) // (65 - keep)
        assert past and past["tokens"] == 150 and past["restarts"] == restarts, (name, past, restarts)
        assert past["restart_tokens"] == keep and "tok_per_s" not in past, (name, past)
    else:
        assert past is None, (name, past)
PY
[ "$failures" -eq 0 ] && echo "test_bench_policies_gpu: all checks passed"
exit $((failures > 0))
