#!/usr/bin/env bash
# gpt2 bench e2e end to end on HF's tiny save_pretrained fixture (2 layers, 64 positions), as a
# functional test (its timings mean nothing here, least of all on the emulator):
#  - the table has a row of positive numbers per batch size, and on the emulation build the line
#    saying that these are not GPU timings;
#  - -o writes bench_e2e.json, with the run record, the settings, a positive TTFT and, per batch
#    size, positive step times (p90 >= median), us/token, tok/s and every sample; "emulated"
#    matches the build, and the chart titles say so; the two charts are PNGs;
#  - --no-graph, --unfused and --kv int8 reach the engine's options and the JSON;
#  - bad flags get one clear line and a non-zero exit.
# usage: test_bench_gpu.sh GPT2 FIXTURE_DIR   (exits 77 where there is no CUDA device)
set -u
gpt2=$1 model=$2
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

bench() { "$gpt2" bench e2e -m "$model" "$@"; }

if ! bench --batch 1,4 --context 8 --steps 4 -o "$work/result" >"$work/table" 2>"$work/err"; then
  if grep -q "no CUDA device" "$work/err"; then
    echo "test_bench_gpu: no CUDA device, skipped"
    exit 77
  fi
  fail "bench e2e: $(cat "$work/err")"
fi
bench --batch 2 --context 4 --steps 2 --warmup 1 --ttft-runs 1 --no-graph --unfused --kv int8 \
  -o "$work/eager_result" >"$work/eager_table" 2>"$work/err" \
  || fail "--no-graph --unfused --kv int8: $(cat "$work/err")"

python3 - "$work" <<'PY' || fail "bench e2e output"
import json, re, struct, sys
work = sys.argv[1]
table = open(f"{work}/table").read()
r = json.load(open(f"{work}/result/bench_e2e.json"))

def positive(value, what):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    assert number and value > 0, (what, value)

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
assert "TTFT" in table, table

# The JSON.
assert r["bench"] == "e2e", r["bench"]
emulated = r["emulated"]
assert isinstance(emulated, bool)
note = "not GPU timings"
assert (note in table) == emulated, (emulated, table)
for chart in r["charts"]:
    assert chart["title"].startswith("emulated: not GPU timings") == emulated, chart["title"]
run = r["run"]
assert "bench e2e" in run["command_line"] and run["gpu"]["name"], run
s = r["settings"]
settings = (s["context"], s["steps"], s["warmup"], s["decode_graph"], s["fused"])
assert settings == (8, 4, 4, True, True), s
assert r["model"]["n_layer"] == 2 and r["model"]["vocab_size"] == 1000, r["model"]
positive(r["model"]["weight_bytes"], "weight_bytes")
positive(s["kv_pool_bytes"], "kv_pool_bytes")
t = r["ttft"]
for key in ("median_ms", "p90_ms", "min_ms", "max_ms", "mean_ms"):
    positive(t[key], f"ttft {key}")
assert len(t["samples_ms"]) == 5 and all(x > 0 for x in t["samples_ms"]), t
assert [d["batch"] for d in r["decode"]] == [1, 4], r["decode"]
for d in r["decode"]:
    for key in ("median_step_us", "p90_step_us", "min_step_us", "max_step_us", "mean_step_us",
                "us_per_token", "tok_per_s", "prefill_ms"):
        positive(d[key], f"batch {d['batch']} {key}")
    assert d["min_step_us"] <= d["median_step_us"] <= d["p90_step_us"] <= d["max_step_us"], d
    assert len(d["step_us"]) == 4 and all(x > 0 for x in d["step_us"]), d
    assert abs(d["tok_per_s"] * d["median_step_us"] * 1e-6 - d["batch"]) < 1e-6 * d["batch"], d
    assert abs(d["us_per_token"] * d["batch"] - d["median_step_us"]) < 1e-6 * d["median_step_us"], d
    assert d["nonfinite_rows"] == 0, d
    # The table shows the same numbers (rounded).
    shown = rows[d["batch"]][0]
    assert abs(shown - d["median_step_us"]) <= 0.05 + 1e-9 * d["median_step_us"], (rows, d)

# The charts: PNG files of the default size.
for chart in r["charts"]:
    raw = open(f"{work}/result/{chart['file']}", "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", chart["file"]
    assert struct.unpack(">II", raw[16:24]) == (1200, 750), chart["file"]

# --no-graph --unfused.
e = json.load(open(f"{work}/eager_result/bench_e2e.json"))
es = e["settings"]
assert (es["decode_graph"], es["fused"], es["warmup"], es["ttft_runs"]) == (False, False, 1, 1), es
assert es["kv_format"] == "int8", es
assert [d["batch"] for d in e["decode"]] == [2] and len(e["decode"][0]["step_us"]) == 2, e["decode"]
positive(e["decode"][0]["tok_per_s"], "eager tok_per_s")
assert "eager launches, unfused kernels, int8 KV" in open(f"{work}/eager_table").read()
PY

# Bad flags: one line each, non-zero exit, nothing run.
expect_error "batch list" "flag '--batch': '1,,4' is not a list" bench --batch 1,,4
expect_error "batch zero" "flag '--batch': '0' is not a list" bench --batch 0
expect_error "batch twice" "flag '--batch': '2,2' is not a list" bench --batch 2,2
expect_error "steps" "flag '--steps': '0' is not an integer" bench --steps 0
expect_error "kv fp32" "--kv fp32 is the CPU reference's" bench --kv fp32
expect_error "too long" "= 74 tokens exceed the model's context of 64" \
  bench --batch 1 --context 60 --steps 10
expect_error "model twice" "give -m DIR or --model-config NAME, not both" \
  bench --model-config 124M
expect_error "bad config" "--model-config '2B': expected 124M, 355M, 774M or 1558M" \
  "$gpt2" bench e2e --model-config 2B
expect_error "no benchmark" "missing benchmark" "$gpt2" bench
expect_error "unknown benchmark" "unknown benchmark 'roofline'" "$gpt2" bench roofline

[ "$failures" -eq 0 ] || exit 1
echo "test_bench_gpu: ok"
