#!/usr/bin/env bash
# gpt2 bench e2e end to end on HF's tiny save_pretrained fixture (2 layers, 64 positions), as a
# functional test (its timings mean nothing here, least of all on the emulator):
#  - the table has a row of positive numbers per batch size, TTFT and TPOT, and on the emulation
#    build the line saying that these are not GPU timings;
#  - -o writes bench_e2e.json (schema 2, docs/bench/README.md), with the run record, the
#    settings, and per variant a positive TTFT, TPOT (the batch-1 median), per batch size positive
#    step times (p90 >= median), us/token, tok/s and every sample, the phases of the eager steps
#    (each the sum of its ranges, all of them the host-timed step), and no cache against the KV
#    cache (per-position medians and per-T totals recomputed here from the samples); "emulated"
#    matches the build, and the chart titles say so; every chart is a PNG;
#  - --no-graph, --unfused and --kv int8 reach the engine's options and the JSON; --compare-kv
#    runs fp16, int8 fused and int8 unfused, and every chart has a series (or a bar) for each;
#  - bad flags get one clear line and a non-zero exit.
# usage: test_bench_gpu.sh GPT2 FIXTURE_DIR   (exits 77 where there is no CUDA device)
set -u
gpt2=$1 model=$2
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

bench() { "$gpt2" bench e2e -m "$model" "$@"; }

if ! bench --batch 1,4 --context 8 --steps 4 --phase-steps 2 --cache-tokens 3,6 --cache-runs 2 \
    -o "$work/result" >"$work/table" 2>"$work/err"; then
  if grep -q "no CUDA device" "$work/err"; then
    echo "test_bench_gpu: no CUDA device, skipped"
    exit 77
  fi
  fail "bench e2e: $(cat "$work/err")"
fi
bench --batch 2 --context 4 --steps 2 --warmup 1 --ttft-runs 1 --no-graph --unfused --kv int8 \
  --phase-steps 1 --cache-runs 0 -o "$work/eager_result" >"$work/eager_table" 2>"$work/err" \
  || fail "--no-graph --unfused --kv int8: $(cat "$work/err")"
bench --batch 2 --context 4 --steps 2 --warmup 1 --ttft-runs 1 --compare-kv --phase-steps 1 \
  --cache-tokens 2 --cache-runs 1 -o "$work/compare_result" >"$work/compare_table" 2>"$work/err" \
  || fail "--compare-kv: $(cat "$work/err")"

python3 - "$work" <<'PY' || fail "bench e2e output"
import json, struct, sys
work = sys.argv[1]
table = open(f"{work}/table").read()
r = json.load(open(f"{work}/result/bench_e2e.json"))

def positive(value, what):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    assert number and value > 0, (what, value)

def close(a, b, what):
    assert abs(a - b) <= 1e-6 * max(abs(a), abs(b)) + 1e-9, (what, a, b)

def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

# The table: one row per batch size, of positive numbers.
rows = {}
for line in table.splitlines():
    fields = line.split()
    if len(fields) == 6 and fields[0].isdigit():
        rows[int(fields[0])] = [float(x) for x in fields[1:]]
assert sorted(rows) == [1, 4], table
for batch, values in rows.items():
    for v in values:
        positive(v, f"table row {batch}")
assert "TTFT" in table and "TPOT" in table, table

# The JSON.
assert r["bench"] == "e2e" and r["schema"] == 2, (r["bench"], r.get("schema"))
emulated = r["emulated"]
assert isinstance(emulated, bool)
assert ("not GPU timings" in table) == emulated, (emulated, table)
run = r["run"]
assert "bench e2e" in run["command_line"] and run["gpu"]["name"], run
s = r["settings"]
settings = (s["context"], s["steps"], s["warmup"], s["decode_graph"], s["phase_steps"],
            s["cache_runs"], s["cache_tokens"], s["batches"], s["compare_kv"])
assert settings == (8, 4, 4, True, 2, 2, [3, 6], [1, 4], False), s
assert r["model"]["n_layer"] == 2 and r["model"]["vocab_size"] == 1000, r["model"]
positive(r["model"]["weight_bytes"], "weight_bytes")
[v] = r["variants"]
assert (v["engine"], v["kv_format"], v["fused"], v["decode_graph"]) == (
    "gpt2-cuda", "fp16", True, True), v
positive(v["kv_pool_bytes"], "kv_pool_bytes")
t = v["ttft"]
for key in ("median_ms", "p90_ms", "min_ms", "max_ms", "mean_ms"):
    positive(t[key], f"ttft {key}")
assert len(t["samples_ms"]) == 5 and all(x > 0 for x in t["samples_ms"]), t
close(t["median_ms"], median(t["samples_ms"]), "ttft median")
assert [d["batch"] for d in v["decode"]] == [1, 4], v["decode"]
for d in v["decode"]:
    for key in ("median_step_us", "p90_step_us", "min_step_us", "max_step_us", "mean_step_us",
                "us_per_token", "tok_per_s", "prefill_ms"):
        positive(d[key], f"batch {d['batch']} {key}")
    assert d["min_step_us"] <= d["median_step_us"] <= d["p90_step_us"] <= d["max_step_us"], d
    assert len(d["step_us"]) == 4 and all(x > 0 for x in d["step_us"]), d
    close(d["median_step_us"], median(d["step_us"]), "step median")
    assert abs(d["tok_per_s"] * d["median_step_us"] * 1e-6 - d["batch"]) < 1e-6 * d["batch"], d
    assert abs(d["us_per_token"] * d["batch"] - d["median_step_us"]) < 1e-6 * d["median_step_us"], d
    assert d["nonfinite_rows"] == 0, d
    # The table shows the same numbers (rounded).
    shown = rows[d["batch"]][0]
    assert abs(shown - d["median_step_us"]) <= 0.05 + 1e-9 * d["median_step_us"], (rows, d)

# TPOT: the batch-1 median step.
assert v["tpot"]["source"] == "decode steps at batch 1", v["tpot"]
close(v["tpot"]["median_us"], v["decode"][0]["median_step_us"], "tpot")
close(v["tpot"]["tok_per_s"], 1e6 / v["tpot"]["median_us"], "tpot tok/s")

# Phases: each phase is the sum of its ranges (other: the embedding plus the host time outside
# the events), and the phases add up to the host-timed step. With 1 or 2 steps a median is the
# mean, so these sums hold exactly.
ranges = {"attention": ["qkv", "kv_write", "attention", "attn_proj"],
          "mlp": ["mlp_fc", "mlp_proj"], "layernorm": ["ln_1", "ln_2"],
          "lm_head_sampling": ["lm_head", "sample"]}
def check_phases(p, steps):
    assert p["steps"] == steps and len(p["step_samples_us"]) == steps, p
    assert set(p["range_us"]) == {x for xs in ranges.values() for x in xs} | {"embedding"}, p
    assert set(p["phase_us"]) == set(ranges) | {"other"}, p
    for name, value in p["range_us"].items():
        positive(value, f"range {name}")
    for phase, names in ranges.items():
        close(p["phase_us"][phase], sum(p["range_us"][n] for n in names), phase)
    assert p["phase_us"]["other"] >= p["range_us"]["embedding"] - 1e-6, p
    close(sum(p["phase_us"].values()), sum(p["step_samples_us"]) / steps, "phases add up")
assert [p["batch"] for p in v["phases"]] == [1, 4], v["phases"]
for p in v["phases"]:
    check_phases(p, 2)

# No cache against the KV cache: T = 6, 2 runs; medians and totals recomputed from the samples.
c = v["cache"]
assert (c["prompt_tokens"], c["runs"], c["tokens"]) == (1, 2, 6), c
for side in ("no_cache", "cached"):
    samples = c[f"{side}_samples_us"]
    assert len(samples) == 2 and all(len(x) == 6 and min(x) > 0 for x in samples), samples
    for i in range(6):
        close(c[f"{side}_us"][i], median([x[i] for x in samples]), f"{side} position {i}")
assert [x["tokens"] for x in c["totals"]] == [3, 6], c["totals"]
for x in c["totals"]:
    T = x["tokens"]
    for side in ("no_cache", "cached"):
        want = median([sum(run[:T]) / 1e3 for run in c[f"{side}_samples_us"]])
        close(x[f"{side}_ms"], want, f"total {side} T={T}")
    close(x["speedup"], x["no_cache_ms"] / x["cached_ms"], f"speedup T={T}")
assert 0 <= c["same_ids"] <= 12, c["same_ids"]

# The charts: PNG files of the default size, titled as the build's timings deserve.
files = [chart["file"] for chart in r["charts"]]
assert files == ["bench_e2e_throughput.png", "bench_e2e_step_latency.png",
                 "bench_e2e_memory_latency.png", "bench_e2e_phases.png",
                 "bench_e2e_cache_by_position.png", "bench_e2e_cache_total.png",
                 "bench_e2e_cache_speedup.png"], files
def check_charts(result, folder):
    for chart in result["charts"]:
        assert chart["title"].startswith("emulated: not GPU timings") == result["emulated"], chart
        raw = open(f"{folder}/{chart['file']}", "rb").read()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", chart["file"]
        assert struct.unpack(">II", raw[16:24]) == (1200, 750), chart["file"]
check_charts(r, f"{work}/result")
# The pareto: each batch at the KV its sequences hold (batch x (context + warmup + steps + phase
# steps) tokens x 1024 bytes: 2 layers x 2 heads x K, V x 64 fp16 values) and its us per token.
[pareto] = [ch for ch in r["charts"] if ch["file"] == "bench_e2e_memory_latency.png"]
[series] = pareto["series"]
tokens = 8 + 4 + 4 + 2
for x, y, d in zip(series["x"], series["y"], v["decode"]):
    close(x, d["batch"] * tokens * 1024 / 2**20, "pareto KV MiB")
    close(y, d["us_per_token"], "pareto us per token")
phases = next(ch for ch in r["charts"] if ch["file"] == "bench_e2e_phases.png")
assert phases["stacked"] and len(phases["series"]) == 5, phases
assert phases["categories"] == ["batch 1", "batch 4"], phases["categories"]

# --no-graph --unfused --kv int8, without the cache comparison and without batch 1: no TPOT.
e = json.load(open(f"{work}/eager_result/bench_e2e.json"))
es = e["settings"]
assert (es["decode_graph"], es["warmup"], es["ttft_runs"], es["cache_runs"]) == (False, 1, 1, 0), es
[ev] = e["variants"]
assert (ev["kv_format"], ev["fused"], ev["decode_graph"], ev["cache"]) == (
    "int8", False, False, None), ev
assert [d["batch"] for d in ev["decode"]] == [2] and len(ev["decode"][0]["step_us"]) == 2, ev
positive(ev["decode"][0]["tok_per_s"], "eager tok_per_s")
assert ev["tpot"]["median_us"] is None, ev["tpot"]
check_phases(ev["phases"][0], 1)
eager_table = open(f"{work}/eager_table").read()
assert "eager launches" in eager_table and "int8 KV, unfused kernels" in eager_table, eager_table
check_charts(e, f"{work}/eager_result")
assert len(e["charts"]) == 4, [ch["file"] for ch in e["charts"]]

# --compare-kv: the three variants, each measured, each a series of every line chart and a bar
# of the phases; TPOT from the cached run's decode step (no batch 1).
k = json.load(open(f"{work}/compare_result/bench_e2e.json"))
assert k["settings"]["compare_kv"] is True
assert [(x["kv_format"], x["fused"]) for x in k["variants"]] == [
    ("fp16", True), ("int8", True), ("int8", False)], k["variants"]
for x in k["variants"]:
    positive(x["decode"][0]["tok_per_s"], f"{x['name']} tok/s")
    check_phases(x["phases"][0], 1)
    assert x["tpot"]["source"].startswith("the KV cache run"), x["tpot"]
    close(x["tpot"]["median_us"], x["cache"]["cached_samples_us"][0][1], "tpot from the cache")
check_charts(k, f"{work}/compare_result")
for chart in k["charts"]:
    if chart["kind"] == "line":
        assert len(chart["series"]) in (3, 6), (chart["file"], len(chart["series"]))
    else:
        assert len(chart["categories"]) == 3, chart["categories"]
PY

# Bad flags: one line each, non-zero exit, nothing run.
expect_error "batch list" "flag '--batch': '1,,4' is not a list" bench --batch 1,,4
expect_error "batch zero" "flag '--batch': '0' is not a list" bench --batch 0
expect_error "batch twice" "flag '--batch': '2,2' is not a list" bench --batch 2,2
expect_error "steps" "flag '--steps': '0' is not an integer" bench --steps 0
expect_error "kv fp32" "--kv fp32 is the CPU reference's" bench --kv fp32
expect_error "too long" "= 82 tokens exceed the model's context of 64" \
  bench --batch 1 --context 60 --steps 10
expect_error "compare and kv" "--compare-kv runs fp16, int8 fused and int8 unfused" \
  bench --compare-kv --kv int8
expect_error "cache tokens" "flag '--cache-tokens': '0' is not a list" bench --cache-tokens 0
expect_error "phase steps" "flag '--phase-steps': '-1' is not an integer" bench --phase-steps -1
expect_error "model twice" "give -m DIR or --model-config NAME, not both" \
  bench --model-config 124M
expect_error "bad config" "--model-config '2B': expected 124M, 355M, 774M or 1558M" \
  "$gpt2" bench e2e --model-config 2B
expect_error "no benchmark" "missing benchmark" "$gpt2" bench
expect_error "unknown benchmark" "unknown benchmark 'speed'" "$gpt2" bench speed

[ "$failures" -eq 0 ] || exit 1
echo "test_bench_gpu: ok"
