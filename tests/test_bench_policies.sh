#!/usr/bin/env bash
# gpt2 bench policies end to end on HF's tiny fixture (2 layers, 2 heads, context 64) and a
# 151-token text of three segments:
#  - every run is in the JSON and the table, with no timing fields (the cpu backend);
#  - perplexities against `gpt2 ppl --ctx 64 --stride 64` (the same positions, scored by the
#    sliding-window code, each policy run there with the first call ppl chooses, here one token
#    per call): equal to 1e-6 relative;
#  - the bytes, pages and rows held against arithmetic: a row is 2 (K, V) x 2 heads x 64 values
#    (4 bytes fp32; 64 + 2 bytes int8), pages of 16 tokens per layer; window:B holds B per layer,
#    share:0 one layer's 64, pyramid:1,0.5 at 25% a --kv-budget of floor(16 x 2 / 1.5) = 21
#    (layers keep 21 and 10);
#  - at 100% the window policies are full itself; share differs from full; the charts exist;
#  - bad flags get one clear line and a non-zero exit.
# usage: test_bench_policies.sh GPT2 TINY_HF_DIR
set -u
gpt2=$1
tiny=$2
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

python3 -c "
import random
random.seed(3)
print(' '.join(random.choice('a b c d e f g h l m n o'.split()) for _ in range(150)))" >"$work/text"
args=(-m "$tiny" -f "$work/text" --pyramid 1,0.5 --share-l0 0 --minicache-l0 0)
"$gpt2" bench policies "${args[@]}" -o "$work/result" >"$work/table" 2>"$work/err" \
  || fail "bench policies: $(cat "$work/err")"
for p in full window:16 h2o:8,window:8 sinks:4,window:12 share:0 share:0,qalign minicache:0; do
  "$gpt2" ppl "${args[@]:0:4}" --ctx 64 --stride 64 --kv-policy "$p" --json >"$work/ppl_$p.json" \
    2>"$work/err" || fail "ppl --kv-policy $p: $(cat "$work/err")"
done
"$gpt2" ppl "${args[@]:0:4}" --ctx 64 --stride 64 --kv-policy pyramid:1,0.5 --kv-budget 21 --json \
  >"$work/ppl_pyramid.json" 2>"$work/err" || fail "ppl pyramid: $(cat "$work/err")"
"$gpt2" ppl "${args[@]:0:4}" --ctx 64 --stride 64 --kv-policy share:0 --kv int8 --json \
  >"$work/ppl_share_int8.json" 2>"$work/err" || fail "ppl share int8: $(cat "$work/err")"

python3 - "$work" <<'PY' || fail "bench policies output"
import json, math, os, sys
work = sys.argv[1]
r = json.load(open(f"{work}/result/bench_policies.json"))
table = open(f"{work}/table").read()
assert r["bench"] == "policies" and "bench policies" in r["run"]["command_line"], r["run"]
s = r["settings"]
assert (s["tokens"], s["segments"], s["budgets_percent"], s["backend"], s["kv"]) == (
    151, 3, [25, 50, 100], "cpu", "fp32"), s
runs = {x["policy"]: x for x in r["runs"]}
names = ["full"] + [n for B in (16, 32, 64) for n in (
    f"window:{B}", f"sinks:4,window:{B - 4}", f"h2o:{B // 2},window:{B - B // 2}")] + [
    "pyramid:1,0.5, kv-budget 21", "pyramid:1,0.5, kv-budget 42", "pyramid:1,0.5, kv-budget 64",
    "share:0", "share:0 (int8)", "share:0,qalign", "share:0,qalign (int8)", "minicache:0"]
assert sorted(runs) == sorted(names), sorted(runs)
for name, x in runs.items():
    assert name in table, name
    assert "tok_per_s" not in x and x["scored_positions"] == 148, x
    assert all(v is not None for v in x.values()), x
    assert all(math.isfinite(x[k]) for k in ("ppl", "mean_kl", "max_kl", "top1_agreement")), x

def ppl(name):
    return json.load(open(f"{work}/ppl_{name}.json"))["ppl"]
for p, name in [("full", "full"), ("window:16", "window:16"), ("h2o:8,window:8", "h2o:8,window:8"),
                ("sinks:4,window:12", "sinks:4,window:12"), ("share:0", "share:0"),
                ("share:0,qalign", "share:0,qalign"), ("minicache:0", "minicache:0"),
                ("pyramid", "pyramid:1,0.5, kv-budget 21"), ("share_int8", "share:0 (int8)")]:
    assert abs(runs[name]["ppl"] / ppl(p) - 1) < 1e-6, (name, runs[name]["ppl"], ppl(p))

row = {"fp32": 2 * 2 * 64 * 4, "int8": 2 * 2 * (64 + 2)}
def held(name, rows_per_layer, kv="fp32"):
    x = runs[name]
    want = (sum(rows_per_layer), sum((n + 15) // 16 for n in rows_per_layer),
            sum(rows_per_layer) * row[kv])
    got = (x["peak_kv_rows"], x["peak_kv_pages"], x["peak_kv_bytes"])
    assert got == want, (name, got, want)
held("full", [64, 64])
held("window:16", [16, 16])
held("h2o:16,window:16", [32, 32])
held("sinks:4,window:60", [64, 64])
held("pyramid:1,0.5, kv-budget 21", [21, 10])
held("share:0", [64])
held("share:0 (int8)", [64], "int8")
full = runs["full"]
assert (full["mean_kl"], full["top1_agreement"]) == (0, 1), full
for name in ("window:64", "sinks:4,window:60", "h2o:32,window:32"):
    assert runs[name]["ppl"] == full["ppl"] and runs[name]["mean_kl"] == 0, runs[name]
assert runs["share:0"]["mean_kl"] > 1e-4, runs["share:0"]
assert runs["window:16"]["mean_kl"] > runs["window:32"]["mean_kl"] > 0, runs
charts = [c["file"] for c in r["charts"]]
assert charts == ["bench_policies_ppl.png", "bench_policies_memory.png",
                  "bench_policies_pareto.png"], charts
for c in charts:
    assert os.path.getsize(f"{work}/result/{c}") > 1000, c
PY

bench() { "$gpt2" bench policies -m "$tiny" -f "$work/text" "$@"; }
expect_error "cuda fp32" "--kv fp32 is the cpu backend's" bench --backend cuda --kv fp32
expect_error "budget list" "flag '--budgets'" bench --budgets 0,50
expect_error "budget too small" "the sinks policy needs at least 8" bench --budgets 10 --pyramid 1,0.5
expect_error "memory budget" "--memory-budget 30 is not one of --budgets" bench --memory-budget 30
expect_error "past on cpu" "--past decodes on the CUDA pool" bench --past 100
expect_error "pyramid groups" "4 ratios for 2 layers" bench
expect_error "share pair" "L0 1 leaves no pair" bench --pyramid 1,0.5 --share-l0 1
expect_error "no text" "heldout.txt" "$gpt2" bench policies -m "$tiny"
[ "$failures" -eq 0 ] || exit 1
echo "test_bench_policies: all checks passed"
