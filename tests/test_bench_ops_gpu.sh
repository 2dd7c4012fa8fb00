#!/usr/bin/env bash
# gpt2 bench ops end to end at tiny shapes, as a functional test (its timings mean nothing here,
# least of all on the emulator):
#  - every group runs; the table has the decode attention rows and one row per other variant, the
#    correctness line, and on the emulation build the line saying that these are not GPU timings;
#  - -o writes bench_ops.json with the run record, the device, the settings, both ceilings, every
#    variant checked and timed (positive medians, every sample, GB/s and % of copy consistent with
#    the bytes and the ceiling, TFLOP/s for the GEMMs), the speedups, and "emulated" matching the
#    build in the chart titles; every chart is a PNG;
#  - sampling (argmax and the top-k/top-p draw) at the LM head's V, checked against the host
#    sampler;
#  - --corrupt GROUP makes that group's checks fail: exit 1, the failures named, nothing of that
#    group timed, "checks_passed": false (each harness's reference check catches a wrong result);
#  - bad flags get one clear line and a non-zero exit.
# usage: test_bench_ops_gpu.sh GPT2   (exits 77 where there is no CUDA device)
set -u
gpt2=$1
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

# Tiny shapes: 2 heads, contexts 32 and 64 plus a "long" 300 (two decode partitions), batches 1
# and 4, C 128, 16 prefill rows, two GEMV shapes and a small LM head, small ceilings.
small=(--contexts 32,64 --long-context 300 --batches 1,4 --repeats 2 --warmup 1 --heads 2
       --embd 128 --rows 16 --gemv-shapes 128x384,384x128 --lm-head 128x1000 --copy-mib 4
       --gemm-size 64)
ops() { "$gpt2" bench ops "$@"; }

if ! ops "${small[@]}" -o "$work/result" >"$work/table" 2>"$work/err"; then
  if grep -q "no CUDA device" "$work/err"; then
    echo "test_bench_ops_gpu: no CUDA device, skipped"
    exit 77
  fi
  fail "bench ops: $(cat "$work/err")"
fi

python3 - "$work" <<'PY' || fail "bench ops output"
import json, math, struct, sys
work = sys.argv[1]
table = open(f"{work}/table").read()
r = json.load(open(f"{work}/result/bench_ops.json"))

def positive(value, what):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    assert number and value > 0 and math.isfinite(value), (what, value)

def close(a, b, what):
    assert abs(a - b) <= 1e-6 * max(abs(a), abs(b)), (what, a, b)

assert r["bench"] == "ops", r["bench"]
emulated = r["emulated"]
assert isinstance(emulated, bool)
assert ("not GPU timings" in table) == emulated, (emulated, table)
if emulated:
    assert "not GPU timings" in r["note"], r["note"]
run = r["run"]
assert "bench ops" in run["command_line"] and run["gpu"]["name"], run
assert r["device"]["name"] and r["device"]["l2_bytes"] > 0, r["device"]
s = r["settings"]
assert (s["warmup"], s["repeats"], s["n_head"], s["block_size"]) == (1, 2, 2, 16), s
assert (s["contexts"], s["long_context"], s["batches"]) == ([32, 64], 300, [1, 4]), s
assert (s["embd"], s["rows"], s["gemv_rows"]) == (128, 16, [1, 8]), s
assert s["groups"] == ["decode_attention", "kv_write", "gemv", "residual_layernorm",
                       "gemm_bias_gelu", "sampling"], s["groups"]
positive(s["flush_bytes"], "flush_bytes")
assert r["checks_passed"] is True and r["checks_failed"] == 0, r["checks_failed"]
assert "correctness: " in table and " variants matched their CPU reference" in table, table

c = r["ceilings"]
copy, gemm = c["copy"], c["gemm"]
assert copy["timed"] and copy["shape"] == {"mib": 4}, copy
close(copy["bytes"], 2 * 4 * 2**20, "copy bytes")
close(c["copy_bytes_per_s"], copy["bytes"] / (copy["median_us"] * 1e-6), "copy rate")
assert gemm["timed"] and gemm["check"]["passed"] and gemm["shape"] == {"m": 64, "n": 64, "k": 64}
close(c["gemm_flops_per_s"], 2 * 64**3 / (gemm["median_us"] * 1e-6), "gemm rate")

def check_op(o):
    what = f"{o['group']} {o['variant']} {o['shape_text']}"
    assert o["check"]["passed"] is True and o["check"]["detail"], what
    assert o["timed"] is True, what
    for key in ("median_us", "p90_us", "min_us", "max_us", "mean_us", "bytes", "gb_per_s",
                "pct_copy"):
        positive(o[key], f"{what} {key}")
    assert o["min_us"] <= o["median_us"] <= o["max_us"], what
    assert len(o["samples_us"]) == 2 and all(x > 0 for x in o["samples_us"]), what
    close(o["gb_per_s"], o["bytes"] / (o["median_us"] * 1e-6) / 1e9, f"{what} GB/s")
    close(o["pct_copy"], 100 * o["gb_per_s"] * 1e9 / c["copy_bytes_per_s"], f"{what} %copy")
    if o["flops"] is not None:
        positive(o["tflop_per_s"], f"{what} TFLOP/s")
        close(o["tflop_per_s"], o["flops"] / (o["median_us"] * 1e-6) / 1e12, f"{what} TFLOP/s")
        close(o["pct_gemm"], 100 * o["tflop_per_s"] * 1e12 / c["gemm_flops_per_s"], what)

by_group = {}
for o in r["ops"]:
    check_op(o)
    by_group.setdefault(o["group"], []).append(o)

attention = {(o["shape"]["batch"], o["shape"]["context"], o["variant"]) for o in
             by_group["decode_attention"]}
assert attention == {(b, t, v) for b in (1, 4) for t in (32, 64, 300)
                     for v in ("fp16", "int8_fused", "int8_unfused")}, attention
for o in by_group["decode_attention"]:
    b, t = o["shape"]["batch"], o["shape"]["context"]
    per_row = {"fp16": 2 * 64 * 2, "int8_fused": 2 * 66, "int8_unfused": 2 * (66 + 256)}
    assert o["bytes"] >= b * t * 2 * per_row[o["variant"]], o
writes = {(next(iter(o["shape"])), o["shape"][next(iter(o["shape"]))], o["variant"])
          for o in by_group["kv_write"]}
assert writes == {(k, n, v) for k, n in (("decode tokens", 1), ("decode tokens", 4),
                                         ("prefill tokens", 16))
                  for v in ("fp16", "int8_fused", "int8_unfused")}, writes
gemv = {(o["shape"].get("kind"), o["shape"]["rows"], o["shape"]["k"], o["shape"]["n"],
         o["variant"]) for o in by_group["gemv"]}
assert gemv == {(kind, rows, k, n, v) for kind, k, n in ((None, 128, 384), (None, 384, 128),
                                                         ("lm head", 128, 1000))
                for rows in (1, 8) for v in ("gemv", "cublaslt")}, gemv
for o in by_group["gemv"] + by_group["gemm_bias_gelu"]:
    assert o["flops"] == 2 * o["shape"]["rows"] * o["shape"]["k"] * o["shape"]["n"], o
ln = {(o["shape"]["rows"], o["shape"]["c"], o["variant"]) for o in by_group["residual_layernorm"]}
assert ln == {(t, 128, v) for t in (1, 4, 16) for v in ("fused", "unfused")}, ln
gg = {(o["shape"]["rows"], o["shape"]["k"], o["shape"]["n"], o["variant"])
      for o in by_group["gemm_bias_gelu"]}
assert gg == {(16, 128, 512, "fused"), (16, 128, 512, "unfused")}, gg
# Sampling at the LM head's V, one launch per --batches row count; bytes: the logits read once
# and the ids written (and the uniforms read for a draw).
samp = {(o["shape"]["rows"], o["shape"]["v"], o["variant"]) for o in by_group["sampling"]}
assert samp == {(b, 1000, v) for b in (1, 4) for v in ("argmax", "top_k_top_p")}, samp
for o in by_group["sampling"]:
    b = o["shape"]["rows"]
    assert o["bytes"] == b * 1000 * 4 + b * (4 if o["variant"] == "argmax" else 8), o
    assert o["flops"] is None, o

# Speedups: both of int8 fused attention at every shape, and one per pair elsewhere.
pairs = {(x["group"], x["shape_text"], x["of"], x["over"]): x["speedup"] for x in r["speedups"]}
for (g, shape, of, over), value in pairs.items():
    positive(value, f"speedup {g} {shape} {of}/{over}")
    times = {o["variant"]: o["median_us"] for o in by_group[g] if o["shape_text"] == shape}
    close(value, times[over] / times[of], f"speedup {g} {shape}")
assert sum(g == "decode_attention" for g, *_ in pairs) == 12, pairs
assert sum(g == "kv_write" for g, *_ in pairs) == 6, pairs
assert sum(g == "gemv" for g, *_ in pairs) == 6, pairs
assert sum(g == "residual_layernorm" for g, *_ in pairs) == 3, pairs

# The table: the decode attention rows (batch, context, 9 numbers, 2 speedups).
rows = [l.split() for l in table.splitlines()]
att = [f for f in rows if len(f) == 13 and f[0].isdigit() and f[1].isdigit()]
assert sorted((int(f[0]), int(f[1])) for f in att) == sorted(
    (b, t) for b in (1, 4) for t in (32, 64, 300)), table
for f in att:
    for v in f[2:]:
        positive(float(v), f"table row {f[:2]}")
others = [f for f in rows if f and f[0] in ("kv_write", "gemv", "residual_layernorm",
                                             "gemm_bias_gelu", "sampling")]
assert len(others) == len(r["ops"]) - len(by_group["decode_attention"]), others

# The charts: every one a PNG of the default size, titled as the build's timings deserve.
files = [chart["file"] for chart in r["charts"]]
assert files == ["bench_ops_attention_batch1.png", "bench_ops_attention_batch4.png",
                 "bench_ops_attention_speedup_fp16.png", "bench_ops_attention_speedup_unfused.png",
                 "bench_ops_gemv.png", "bench_ops_sampling.png", "bench_ops_fused_unfused.png",
                 "bench_ops_bandwidth.png"], files
for chart in r["charts"]:
    assert chart["title"].startswith("emulated: not GPU timings") == emulated, chart["title"]
    raw = open(f"{work}/result/{chart['file']}", "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", chart["file"]
    assert struct.unpack(">II", raw[16:24]) == (1200, 750), chart["file"]
PY

# Each harness's check catches a wrong result: one output value changed, the group's checks fail,
# nothing of it is timed, the command exits 1 (after writing what it has).
for group in attention kv-write gemv layernorm gemm sample; do
  if ops "${small[@]}" --only "$group" --corrupt "$group" -o "$work/corrupt-$group" \
      >"$work/corrupt_table" 2>"$work/corrupt_err"; then
    fail "--corrupt $group: exit 0"
    continue
  fi
  grep -q "check failed: " "$work/corrupt_err" || fail "--corrupt $group: $(cat "$work/corrupt_err")"
  grep -q "failed the check against the CPU reference" "$work/corrupt_err" \
    || fail "--corrupt $group: no summary line: $(cat "$work/corrupt_err")"
  python3 - "$work/corrupt-$group/bench_ops.json" <<'PY' || fail "--corrupt $group: JSON"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["checks_passed"] is False and r["checks_failed"] == len(r["ops"]) > 0, r["checks_failed"]
assert all(not o["check"]["passed"] and not o["timed"] for o in r["ops"]), r["ops"]
assert len(r["settings"]["groups"]) == 1, r["settings"]["groups"]
PY
done

# stdout on /dev/full fails loudly.
expect_write_error "write error" ops "${small[@]}" --only layernorm

# Bad flags: one line each, non-zero exit, nothing run.
expect_error "batches list" "flag '--batches': '1,,4' is not a list" ops --batches 1,,4
expect_error "batches zero" "flag '--batches': '0' is not a list" ops --batches 0
expect_error "contexts twice" "flag '--contexts': '64,64' is not a list" ops --contexts 64,64
expect_error "gemv rows" "flag '--gemv-rows': '9' is not a list" ops --gemv-rows 9
expect_error "gemv shape" "flag '--gemv-shapes': '100x3' is not a list of shapes" \
  ops --gemv-shapes 100x3
expect_error "lm head" "flag '--lm-head': '768' is not a shape" ops --lm-head 768
expect_error "only" "flag '--only': 'attention,foo' is not a list" ops --only attention,foo
expect_error "corrupt unknown" "flag '--corrupt': 'all' is not one of" ops --corrupt all
expect_error "corrupt not run" "--corrupt gemv: that group is not run" \
  ops --only attention --corrupt gemv
expect_error "embd" "--embd 12: must be a multiple of 8" ops --embd 12
expect_error "rows" "flag '--rows': '8' is not an integer" ops --rows 8
expect_error "model config" "--model-config '2B': expected 124M" ops --model-config 2B
expect_error "unknown flag" "unknown argument '--steps'" ops --steps 3

[ "$failures" -eq 0 ] || exit 1
echo "test_bench_ops_gpu: ok"
