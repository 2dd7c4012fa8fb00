#!/usr/bin/env bash
# gpt2 bench roofline at tiny shapes (HF's fixture: 2 layers, n_embd 128, 2 heads, vocab 1000),
# as a functional test (its timings mean nothing here, least of all on the emulator):
#  - -o writes bench_roofline.json with the run record, the settings, both ceilings and the nine
#    kernels of a decode step and of a prefill, each with its bytes and FLOPs (recomputed here
#    from the shapes), positive medians, every sample, and rates and intensities consistent with
#    them and the ceilings; "emulated" matches the build in the table and the chart titles;
#  - the roofline has every kernel that does arithmetic (not the KV write), and both charts are
#    PNGs;
#  - bad flags get one clear line and a non-zero exit.
# usage: test_bench_roofline_gpu.sh GPT2 FIXTURE_DIR   (exits 77 where there is no CUDA device)
set -u
gpt2=$1 model=$2
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

roofline() { "$gpt2" bench roofline "$@"; }
small=(--batch 2 --context 40 --rows 24 --repeats 2 --warmup 1 --copy-mib 4 --gemm-size 64)

if ! roofline -m "$model" "${small[@]}" -o "$work/result" >"$work/table" 2>"$work/err"; then
  if grep -q "no CUDA device" "$work/err"; then
    echo "test_bench_roofline_gpu: no CUDA device, skipped"
    exit 77
  fi
  fail "bench roofline: $(cat "$work/err")"
fi

python3 - "$work" <<'PY' || fail "bench roofline output"
import json, math, struct, sys
work = sys.argv[1]
table = open(f"{work}/table").read()
r = json.load(open(f"{work}/result/bench_roofline.json"))

def positive(value, what):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    assert number and value > 0 and math.isfinite(value), (what, value)

def close(a, b, what):
    assert abs(a - b) <= 1e-6 * max(abs(a), abs(b)), (what, a, b)

assert r["bench"] == "roofline", r["bench"]
emulated = r["emulated"]
assert ("not GPU timings" in table) == emulated, (emulated, table)
assert "bench roofline" in r["run"]["command_line"], r["run"]
m, s, c = r["model"], r["settings"], r["ceilings"]
assert (m["n_layer"], m["n_embd"], m["n_head"], m["vocab_size"]) == (2, 128, 2, 1000), m
assert (s["batch"], s["context"], s["rows"], s["warmup"], s["repeats"]) == (2, 40, 24, 1, 2), s
positive(c["copy_bytes_per_s"], "copy ceiling")
positive(c["gemm_flops_per_s"], "GEMM ceiling")
assert (c["copy_mib"], c["gemm_size"]) == (4, 64), c

# Bytes and FLOPs from the shapes: C 128, H 2, V 1000; decode 2 rows of context 40, prefill 24.
C, H, V = 128, 2, 1000
def linear(R, K, N, residual):
    return N * K * 2 + R * K * 2 + N * 2 + R * N * 2 * (2 if residual else 1), 2 * R * K * N
def expected(phase, kernel):
    prefill = phase == "prefill"
    R = 24 if prefill else 2
    D = 1 if prefill else R
    if kernel == "layernorm": return 2 * R * C * 2 + 2 * C * 2, 7 * R * C, R
    if kernel == "qkv": return (*linear(R, C, 3 * C, False), R)
    if kernel == "kv_write": return 4 * R * C * 2 + R * 8, 0, R
    if kernel == "attention":
        cached = R if prefill else R * 40
        scores = (R * (R + 1) // 2 if prefill else R * 40) * H
        return 2 * R * C * 2 + 2 * cached * C * 2, scores * (4 * 64 + 5), R
    if kernel == "attn_proj": return (*linear(R, C, C, True), R)
    if kernel == "mlp_fc": return (*linear(R, C, 4 * C, False), R)
    if kernel == "mlp_proj": return (*linear(R, 4 * C, C, True), R)
    if kernel == "lm_head": return V * C * 2 + D * C * 2 + D * V * 4, 2 * D * C * V, D
    assert kernel == "sample", kernel
    return 2 * D * V * 4 + D * 8, 2 * D * V, D

names = ["layernorm", "qkv", "kv_write", "attention", "attn_proj", "mlp_fc", "mlp_proj",
         "lm_head", "sample"]
ks = r["kernels"]
assert [(k["phase"], k["kernel"]) for k in ks] == [(p, n) for p in ("decode", "prefill")
                                                   for n in names], ks
for k in ks:
    what = f"{k['phase']} {k['kernel']}"
    bytes_, flops, rows = expected(k["phase"], k["kernel"])
    assert (k["bytes"], k["flops"], k["rows"]) == (bytes_, flops, rows), (what, k)
    for key in ("median_us", "min_us", "max_us", "gb_per_s", "pct_copy"):
        positive(k[key], f"{what} {key}")
    assert len(k["samples_us"]) == 2 and min(k["samples_us"]) > 0, what
    seconds = k["median_us"] * 1e-6
    close(k["gb_per_s"], bytes_ / seconds / 1e9, f"{what} GB/s")
    close(k["pct_copy"], 100 * bytes_ / seconds / c["copy_bytes_per_s"], f"{what} %copy")
    if flops:
        close(k["intensity"] * bytes_, flops, f"{what} intensity")
        close(k["tflop_per_s"], flops / seconds / 1e12, f"{what} TFLOP/s")
        close(k["pct_gemm"], 100 * flops / seconds / c["gemm_flops_per_s"], f"{what} %gemm")

# The table: one row per kernel and phase.
rows = [l.split() for l in table.splitlines()]
assert len([f for f in rows if f and f[0] in ("decode", "prefill")]) == 18, table

# The charts.
files = [chart["file"] for chart in r["charts"]]
assert files == ["bench_roofline.png", "bench_roofline_bandwidth.png"], files
roof = r["charts"][0]
assert roof["kind"] == "roofline" and len(roof["points"]) == 16, roof["points"]
close(roof["ceilings"]["bandwidth_bytes_per_s"], c["copy_bytes_per_s"], "roof bandwidth")
close(roof["ceilings"]["flops_per_s"], c["gemm_flops_per_s"], "roof flops")
assert not any("kv_write" in p["name"] for p in roof["points"]), roof["points"]
for chart in r["charts"]:
    assert chart["title"].startswith("emulated: not GPU timings") == emulated, chart["title"]
    raw = open(f"{work}/result/{chart['file']}", "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", chart["file"]
    assert struct.unpack(">II", raw[16:24]) == (1200, 750), chart["file"]
PY

# Bad flags: one line each, non-zero exit, nothing run.
expect_error "model twice" "give -m DIR or --model-config NAME, not both" \
  roofline -m "$model" --model-config 124M
expect_error "bad config" "--model-config '2B': expected 124M" roofline --model-config 2B
expect_error "context" "must be at most the model's context of 64" roofline -m "$model" --context 65
expect_error "batch" "flag '--batch': '0' is not an integer" roofline --batch 0
expect_error "gemm size" "--gemm-size 100: must be a multiple of 8" roofline --gemm-size 100
expect_error "unknown flag" "unknown argument '--steps'" roofline --steps 3

[ "$failures" -eq 0 ] || exit 1
echo "test_bench_roofline_gpu: ok"
