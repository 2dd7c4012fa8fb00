#!/usr/bin/env bash
# gpt2 generate's engine flags end to end on HF's tiny save_pretrained fixture (2 layers, 64
# positions, vocab 1000), on one backend:
#  - --no-kv-cache gives the cached run's greedy ids (a first difference only at a CPU near-tie:
#    top-1 margin below 0.1 logits);
#  - --no-graph gives the graph's ids (cuda), and is accepted with no effect (cpu);
#  - --kv-mem: too small for the prompt + -n is one clear line naming the bytes that fit, an
#    exact fit runs, bad values are refused (cuda); the cpu refuses the flag;
#  - non-finite logits stop generation with one line naming the step, and the step's token is
#    never printed. The checkpoints are the fixture with huge but finite weights (the loader
#    takes them): ln_f.weight = 3e38 overflows fp32 on both backends at step 0; ln_f.weight =
#    60000 is fine in fp32 but overflows the fp16 activations (cuda only); wpe row 3 = 3e38
#    becomes inf in the fp16 weights, so cuda fails at step 2 (position 3) after printing the
#    two tokens of the clean run (the fp32 CPU normalizes it away and runs).
# usage: test_generate_flags.sh GPT2 FIXTURE_DIR cpu|cuda   (exits 77 for cuda with no device)
set -u
gpt2=$1 model=$2 backend=$3
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

# gen_on DIR ARGS...: greedy generation with JSON output from the checkpoint in DIR; gen: the fixture.
gen_on() { local dir=$1; shift; "$gpt2" generate -m "$dir" --backend "$backend" --greedy --json "$@"; }
gen() { gen_on "$model" "$@"; }
# first_ids FILE N: the first N ids of a generate JSON file.
first_ids() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ids"][:int(sys.argv[2])])' "$@"; }

if ! gen -p "a" -n 1 >/dev/null 2>"$work/err"; then
  if [ "$backend" = cuda ] && grep -q "no CUDA device" "$work/err"; then
    echo "test_generate_flags: no CUDA device, skipped"
    exit 77
  fi
  fail "first run: $(cat "$work/err")"
fi

# --no-kv-cache against the cache, and --no-graph against the graph.
prompt="a b c d e f g" # 7 tokens
gen -p "$prompt" -n 20 >"$work/cached.json" 2>"$work/err" || fail "cached: $(cat "$work/err")"
gen -p "$prompt" -n 20 --no-kv-cache >"$work/recomputed.json" 2>"$work/err" \
  || fail "--no-kv-cache: $(cat "$work/err")"
gen -p "$prompt" -n 20 --no-graph >"$work/eager.json" 2>"$work/err" \
  || fail "--no-graph: $(cat "$work/err")"
"$gpt2" tokenize -p "$prompt" >"$work/prompt_ids"
python3 - "$work" "$gpt2" "$model" "$backend" <<'PY' || fail "--no-kv-cache / --no-graph ids"
import json, struct, subprocess, sys
work, gpt2, model, backend = sys.argv[1:5]
runs = {name: json.load(open(f"{work}/{name}.json")) for name in ("cached", "recomputed", "eager")}
prompt = [int(x) for x in open(f"{work}/prompt_ids").read().split()]
cached = runs["cached"]["ids"]
assert len(cached) == 20, runs["cached"]
assert runs["cached"]["kv_cache"] and runs["cached"]["decode_graph"] == (backend == "cuda"), runs["cached"]
assert not runs["recomputed"]["kv_cache"] and not runs["recomputed"]["decode_graph"], runs["recomputed"]
assert not runs["eager"]["decode_graph"], runs["eager"]
V = 1000

def cpu_margin(context):
    """The CPU reference's top-1 margin at the last position of context."""
    out = f"{work}/margin.f32"
    subprocess.run([gpt2, "logits", "-m", model, "--backend", "cpu", "--ids",
                    " ".join(map(str, context)), "-o", out], check=True, capture_output=True)
    raw = open(out, "rb").read()
    row = sorted(struct.unpack_from(f"<{V}f", raw, len(raw) - 4 * V), reverse=True)
    return row[0] - row[1]

for name in ("recomputed", "eager"):
    other = runs[name]["ids"]
    k = next((i for i, (a, b) in enumerate(zip(cached, other)) if a != b), None)
    if k is None:
        assert len(other) == len(cached), (name, other, cached)
        continue
    margin = cpu_margin(prompt + cached[:k])
    assert margin < 0.1, f"{name}: step {k} gives {other[k]}, the cache {cached[k]}; CPU margin {margin}"
    print(f"{name}: first difference at step {k}, a near-tie (CPU margin {margin:.4f})")
PY

# --kv-mem. A block is one layer's page: K,V x 2 heads x 16 tokens x 64 x 2 bytes = 8 KiB, and
# a token needs one in each of the fixture's 2 layers.
expect_error "kv-mem zero" "'--kv-mem': '0' is not a byte count" gen -p "a" --kv-mem 0
expect_error "kv-mem suffix" "'--kv-mem': '12KB' is not a byte count" gen -p "a" --kv-mem 12KB
expect_error "kv-mem overflow" "'--kv-mem': '99999999999G' is not a byte count" \
  gen -p "a" --kv-mem 99999999999G
if [ "$backend" = cpu ]; then
  expect_error "kv-mem on cpu" "--kv-mem sizes the cuda backend's paged KV pool" \
    gen -p "a" --kv-mem 1M
else
  # prompt 7 + -n 10 forwards 16 tokens: one block holds them; -n 11 needs a second.
  gen -p "$prompt" -n 10 --kv-mem 16K >"$work/fit.json" 2>"$work/err" || fail "--kv-mem 16K: $(cat "$work/err")"
  gen -p "$prompt" -n 10 --kv-mem 16K --no-kv-cache >"$work/fit_recomputed.json" 2>"$work/err" \
    || fail "--kv-mem 16K --no-kv-cache: $(cat "$work/err")"
  [ "$(first_ids "$work/fit.json" 10)" = "$(first_ids "$work/cached.json" 10)" ] \
    || fail "--kv-mem 16K: other ids than with the default pool"
  expect_error "kv-mem too small" \
    "the KV pool holds 16 tokens of one sequence (8192 bytes per layer's block of 16 tokens), but the prompt and -n need 17: give --kv-mem 32768 or more" \
    gen -p "$prompt" -n 11 --kv-mem 16K
  expect_error "kv-mem too small, no cache" "give --kv-mem 32768 or more" \
    gen -p "$prompt" -n 11 --kv-mem 16K --no-kv-cache
  expect_error "kv-mem below a block per layer" \
    "a KV budget of 16383 bytes holds 1 blocks of 8192 bytes, and a token needs one in each of the 2 layers" \
    gen -p "a" --kv-mem 16383
fi

# Non-finite logits. patch NAME TENSOR VALUE [ROW]: the fixture with TENSOR (or one row of it) set
# to VALUE.
patch() {
  python3 - "$model" "$work/$1" "$2" "$3" "${4:-}" <<'PY' || fail "cannot patch $2"
import json, shutil, struct, sys
src, dst, name, value, row = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
shutil.copytree(src, dst)
path = f"{dst}/model.safetensors"
data = bytearray(open(path, "rb").read())
header_len = struct.unpack_from("<Q", data)[0]
tensor = json.loads(data[8:8 + header_len])[name]
assert tensor["dtype"] == "F32", tensor
begin, end = (8 + header_len + offset for offset in tensor["data_offsets"])
if row:
    width = 4 * tensor["shape"][-1]
    begin, end = begin + int(row) * width, begin + (int(row) + 1) * width
for at in range(begin, end, 4):
    struct.pack_into("<f", data, at, value)
open(path, "wb").write(data)
PY
}
patch lnf_fp32_overflow transformer.ln_f.weight 3e38
patch lnf_fp16_overflow transformer.ln_f.weight 60000
patch wpe3 transformer.wpe.weight 3e38 3
finite="the logits at the sampled position are not finite (NaN or inf)"
for flags in "" "--no-kv-cache" "--temperature 1 --seed 3"; do
  # shellcheck disable=SC2086 # flags is a list of words
  expect_error "ln_f 3e38 $flags" "step 0: $backend backend: $finite; stopped after 0 generated" \
    gen_on "$work/lnf_fp32_overflow" -p "a b" -n 5 $flags
  [ ! -s "$work/out" ] || fail "ln_f 3e38 $flags: stdout is not empty: $(cat "$work/out")"
done
if [ "$backend" = cpu ]; then
  gen_on "$work/lnf_fp16_overflow" -p "a b" -n 5 >"$work/out" 2>"$work/err" \
    || fail "ln_f 60000 on cpu (fp32 holds it): $(cat "$work/err")"
  gen_on "$work/wpe3" -p "a b" -n 5 >"$work/out" 2>"$work/err" \
    || fail "wpe row 3 = 3e38 on cpu (normalized away in fp32): $(cat "$work/err")"
else
  expect_error "ln_f 60000" "step 0: cuda backend: $finite" \
    gen_on "$work/lnf_fp16_overflow" -p "a b" -n 5
  # Text mode: the two good tokens stream out, the third step stops with the error last.
  "$gpt2" generate -m "$model" --backend cuda --greedy -p "a b" -n 2 >"$work/good" 2>/dev/null \
    || fail "clean run"
  for flags in "" "--no-kv-cache" "--no-graph"; do
    # shellcheck disable=SC2086
    if "$gpt2" generate -m "$work/wpe3" --backend cuda --greedy -p "a b" -n 5 $flags \
        >"$work/out" 2>"$work/err"; then
      fail "wpe row 3 $flags: exit 0"
    fi
    cmp -s "$work/out" "$work/good" || fail "wpe row 3 $flags: printed '$(cat "$work/out")', not '$(cat "$work/good")'"
    [ "$(tail -1 "$work/err")" = "gpt2 generate: step 2: cuda backend: $finite; stopped after 2 generated tokens" ] \
      || fail "wpe row 3 $flags: $(tail -1 "$work/err")"
  done
fi

# Past the context: the full policy refuses prompt + -n beyond n_positions (64); window and sinks
# run past it, re-prefilling their kept tokens each time the context fills. With a 7-token prompt
# and sinks:2,window:14, the context (prompt + every drawn token but the last) restarts at 16
# tokens whenever it would reach 65: count the restarts by arithmetic.
expect_error "past the context, full policy" "exceeds the model's context of 64 tokens" \
  gen -p "$prompt" -n 150
expect_error "a window as wide as the context" "cannot run past it" \
  gen -p "$prompt" -n 150 --kv-policy window:64
gen -p "$prompt" -n 150 --ignore-eos --kv-policy sinks:2,window:14 >"$work/past.json" 2>"$work/err" \
  || fail "past the context: $(cat "$work/err")"
python3 - "$work/past.json" <<'PY' || fail "past the context: wrong token or restart count"
import json, sys
d = json.load(open(sys.argv[1]))
length, restarts = 7, 0
for _ in range(149):  # every drawn token but the last goes into the context
    length += 1
    if length > 64:
        length, restarts = 16, restarts + 1
assert d["generated_tokens"] == 150 and len(d["ids"]) == 150, d["generated_tokens"]
assert d["context_restarts"] == restarts, (d["context_restarts"], restarts)
PY

[ "$failures" -eq 0 ] && echo "test_generate_flags $backend: all checks passed"
exit $((failures > 0))
