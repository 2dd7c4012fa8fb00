#!/usr/bin/env bash
# gpt2 bench kv end to end:
#  - at the 124M shape (no weights, no device): the JSON's bytes per token equal the arithmetic
#    2 n_layer n_embd 2 (fp16) and 2 n_layer n_head 66 (int8: 64 codes and an fp16 scale per
#    head), int8 admits >= 1.9x the fp16 sequences at every length and policy, the window
#    policies at least as many as full, the allocator agrees with the formula, and the table
#    and charts are there;
#  - on HF's tiny fixture with --allocate and an 8 MiB budget: both engines' pools were
#    allocated with every block the budget holds and confirmed every capacity, with their
#    weight and activation bytes in the memory rows;
#  - bad flags get one clear line and a non-zero exit.
# usage: test_bench_kv_gpu.sh GPT2 TINY_HF_DIR   (exits 77 after the allocator checks where there
# is no CUDA device for --allocate)
set -u
gpt2=$1
tiny=$2
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error
kv() { "$gpt2" bench kv "$@"; }

kv --model-config 124M -o "$work/124M" >"$work/table" 2>"$work/err" || fail "124M: $(cat "$work/err")"
python3 - "$work/124M" "$work/table" <<'PY' || fail "124M output"
import json, struct, sys
out, table = sys.argv[1], open(sys.argv[2]).read()
r = json.load(open(f"{out}/bench_kv.json"))
assert r["bench"] == "kv" and isinstance(r["emulated"], bool), r["bench"]
assert ("not timings" in table) == r["emulated"], table
assert "bench kv" in r["run"]["command_line"], r["run"]
m = r["model"]
assert (m["config"], m["n_layer"], m["n_head"], m["n_embd"]) == ("124M", 12, 12, 768), m
s = r["settings"]
assert (s["kv_mem_bytes"], s["lengths"], s["window"], s["allocate"]) == (
    2**30, [128, 256, 512, 1024], 256, False), s
per_token = {f["format"]: f["bytes_per_token"] for f in r["formats"]}
L, H, C = 12, 12, 768
assert per_token == {"fp16": 2 * L * C * 2, "int8": 2 * L * H * 66} == {"fp16": 36864,
                                                                         "int8": 19008}, per_token
cap = {(c["format"], c["policy"], c["length"]): c for c in r["capacity"]}
policies = ["full", "window:256", "sinks:4,window:256"]
assert set(cap) == {(f, p, t) for f in ("fp16", "int8") for p in policies for t in s["lengths"]}
for (f, p, t), c in cap.items():
    assert c["sequences"] == c["formula_sequences"] > 0, c
    assert c["tokens_held"] == (t if p == "full" else min(t, 256 + 4 * p.startswith("sinks"))), c
    if f == "fp16":
        assert cap[("int8", p, t)]["sequences"] >= 1.9 * c["sequences"], (p, t)
    if p != "full":
        assert c["sequences"] >= cap[(f, "full", t)]["sequences"], (f, p, t)
assert cap[("fp16", "full", 1024)]["sequences"] == 2**30 // (16 * 2 * C * 2) // (L * 64), cap
assert r["allocation"] is None and all(x["weights_bytes"] is None for x in r["memory"]), r
for x in r["memory"]:
    blocks = L * -(-x["length"] // 16)
    assert (x["kv_fp16_blocks"], x["kv_int8_blocks"]) == (blocks, blocks), x
    assert x["kv_fp16_bytes"] == x["length"] * 36864 and x["kv_int8_bytes"] == x["length"] * 19008, x
rows = [l.split() for l in table.splitlines()]
assert sum(1 for f in rows if f[:1] in (["fp16"], ["int8"]) and f[1] in policies) == 6, table
assert "agrees everywhere" in table, table
assert [c["file"] for c in r["charts"]] == ["bench_kv_capacity.png", "bench_kv_bytes_per_token.png",
                                           "bench_kv_memory.png"], r["charts"]
for chart in r["charts"]:
    assert chart["title"].startswith("emulated: not GPU timings") == r["emulated"], chart["title"]
    assert "not timings" in chart["subtitle"], chart["subtitle"]
    raw = open(f"{out}/{chart['file']}", "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", raw[16:24]) == (1200, 750)
PY

# Bad flags: one line each, non-zero exit, nothing run.
expect_error "lengths list" "flag '--lengths': '16,,32' is not a list" kv --lengths 16,,32
expect_error "lengths past the context" "--lengths: 2048 is past the model's context of 1024" \
  kv --model-config 124M --lengths 128,2048
expect_error "budget too small" "--kv-mem 1024: holds 0 fp16 blocks" kv --model-config 124M --kv-mem 1K
expect_error "kv-mem" "flag '--kv-mem'" kv --model-config 124M --kv-mem 8X
expect_error "model config" "--model-config '2B': expected 124M" kv --model-config 2B
expect_error "unknown flag" "unknown argument '--steps'" kv --steps 3

# The engine's own pools, on the tiny fixture.
if ! kv -m "$tiny" --kv-mem 8M --lengths 16,32,64 --window 16 --allocate -o "$work/tiny" \
    >"$work/table" 2>"$work/err"; then
  if grep -q "no CUDA device" "$work/err"; then
    [ "$failures" -eq 0 ] || exit 1
    echo "test_bench_kv_gpu: no CUDA device, --allocate skipped"
    exit 77
  fi
  fail "tiny --allocate: $(cat "$work/err")"
fi
python3 - "$work/tiny" <<'PY' || fail "tiny --allocate output"
import json, sys
r = json.load(open(f"{sys.argv[1]}/bench_kv.json"))
formats = {f["format"]: f for f in r["formats"]}
assert r["model"]["n_layer"] == 2 and r["settings"]["allocate"] is True, r["model"]
full = {(c["format"], c["length"]): c["sequences"] for c in r["capacity"] if c["policy"] == "full"}
for a in r["allocation"]:
    f = formats[a["format"]]
    assert a["allocated"] is True and a["confirmed"] == [True] * 3, a
    assert a["num_blocks"] == f["budget_blocks"], (a, f)
    assert a["pool_bytes"] == a["num_blocks"] * f["bytes_per_block"] <= 8 * 2**20, a
    assert a["max_seqs"] == max(full[(a["format"], t)] for t in (16, 32, 64)) + 1, a
    assert a["weight_bytes"] > 0 and a["activation_bytes"] > 0, a
for x in r["memory"]:
    assert x["weights_bytes"] == r["allocation"][0]["weight_bytes"], x
    assert x["activations_int8_bytes"] == r["allocation"][1]["activation_bytes"], x
assert [s["name"] for s in r["charts"][2]["series"]][0] == "weights", r["charts"][2]
PY

[ "$failures" -eq 0 ] || exit 1
echo "test_bench_kv_gpu: ok"
