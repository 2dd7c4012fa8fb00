#!/usr/bin/env bash
# The gpt2 command line end to end on the tiny synthetic checkpoint: errors are one line and a
# non-zero exit; greedy generation agrees with a full recompute; seeds repeat; logits match the
# golden fixture; tokenize/detokenize round-trips bytes.
# usage: test_cli.sh GPT2 WRITE_SYNTHETIC FIXTURE_DIR
set -u
gpt2=$1 write_synthetic=$2 fixtures=$3
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

# The tiny fixture's checkpoint: 2 layers, 2 heads, 64 positions, vocab 1000, seed 1.
model=$work/tiny
mkdir "$model" && "$write_synthetic" "$model" 2 2 64 1000 1 || { echo "cannot write checkpoint"; exit 1; }

expect_error "no command" "missing command" "$gpt2"
expect_error "unknown command" "unknown command 'frobnicate'" "$gpt2" frobnicate
expect_error "unknown flag" "unknown argument '--frob'" "$gpt2" generate -m "$model" --frob
expect_error "missing value" "needs a value" "$gpt2" generate -m "$model" -n
expect_error "bad number" "'-n': 'ten' is not an integer" "$gpt2" generate -m "$model" -n ten
expect_error "bad top-p" "'--top-p'" "$gpt2" generate -m "$model" --top-p 1.5
expect_error "no model dir" "$work/missing" "$gpt2" generate -m "$work/missing" -p hi
# --backend cuda runs where there is a GPU or the emulator (the emulation build), else says why.
if "$gpt2" generate -m "$model" --backend cuda -p "a b" -n 3 --greedy >"$work/out" 2>"$work/err"; then
  grep -q "backend cuda" "$work/err" || fail "generate --backend cuda: stats name another backend"
else
  grep -q "no CUDA device" "$work/err" || fail "generate --backend cuda: $(cat "$work/err")"
fi
# Without --backend (and $GPT2_BACKEND): cuda where there is a device or the emulator, else the
# cpu with one line saying so; --kv fp32 picks the cpu; a bad $GPT2_BACKEND is one line.
env -u GPT2_BACKEND "$gpt2" generate -m "$model" -p "a b" -n 2 --greedy --json >"$work/auto.json" \
  2>"$work/auto_err" || fail "generate without --backend: $(cat "$work/auto_err")"
auto=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["backend"])' "$work/auto.json")
if "$gpt2" generate -m "$model" --backend cuda -p "a" -n 1 >/dev/null 2>&1; then
  [ "$auto" = cuda ] && [ ! -s "$work/auto_err" ] || fail "default with a device: $auto, $(cat "$work/auto_err")"
else
  [ "$auto" = cpu ] && [ "$(grep -c "no CUDA device, so the cpu backend runs" "$work/auto_err")" -eq 1 ] \
    || fail "default without a device: $auto, $(cat "$work/auto_err")"
fi
env -u GPT2_BACKEND "$gpt2" generate -m "$model" -p "a b" -n 2 --kv fp32 --json 2>"$work/err" \
  | grep -q '"backend":"cpu"' || fail "--kv fp32 without --backend is not the cpu: $(cat "$work/err")"
GPT2_BACKEND=tpu expect_error "bad GPT2_BACKEND" "\$GPT2_BACKEND is 'tpu'; expected cpu or cuda" \
  "$gpt2" generate -m "$model" -p "a b" -n 2
expect_error "context overflow" "exceeds the model's context of 64" \
  "$gpt2" generate -m "$model" -p "a b" -n 63
expect_error "prompt vocab" "prompt token id 2068 is outside this model's vocabulary of 1000" \
  "$gpt2" generate -m "$model" -p "The quick" -n 5
expect_error "detokenize range" "token id 50257 out of range" "$gpt2" detokenize -p "464 50257"
expect_error "detokenize junk" "'12x' is not a token id" "$gpt2" detokenize -p "464 12x"
expect_error "logits id range" "token id 1000 out of range" \
  "$gpt2" logits -m "$model" --ids "5 1000" -o "$work/l.f32"
expect_error "logits no output" "missing -o" "$gpt2" logits -m "$model" --ids "5"

# Greedy generation: each generated id is the argmax of a full recompute over the prefix.
"$gpt2" generate -m "$model" -p "a b c d" -n 12 --greedy --json >"$work/gen.json" 2>"$work/err" \
  || fail "greedy generate: $(cat "$work/err")"
"$gpt2" tokenize -p "a b c d" >"$work/prompt_ids"
python3 - "$work/gen.json" "$work/prompt_ids" "$gpt2" "$model" "$work" <<'PY' || fail "greedy vs recompute"
import json, struct, subprocess, sys
gen = json.load(open(sys.argv[1]))
prompt = [int(x) for x in open(sys.argv[2]).read().split()]
gpt2, model, work = sys.argv[3:6]
ids = gen["ids"]
assert gen["generated_tokens"] == len(ids) == 12, gen
assert all(0 <= i < 1000 for i in ids), ids
seq = prompt + ids[:-1]
out = f"{work}/recompute.f32"
subprocess.run([gpt2, "logits", "-m", model, "--ids", " ".join(map(str, seq)), "-o", out], check=True)
raw = open(out, "rb").read()
assert len(raw) == len(seq) * 1000 * 4, len(raw)
V = 1000
for k, want in enumerate(ids):
    row = struct.unpack_from(f"<{V}f", raw, (len(prompt) - 1 + k) * V * 4)
    got = max(range(V), key=lambda i: (row[i], -i))
    assert got == want, f"step {k}: recompute argmax {got}, generated {want}"
PY

# The same seed gives the same text; another seed gives another.
run_seed() { "$gpt2" generate -m "$model" -p "a b" -n 20 --temperature 1.0 --top-k 0 --top-p 1 --seed "$1" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["ids"])'; }
[ "$(run_seed 5)" = "$(run_seed 5)" ] || fail "seed 5 did not repeat"
[ "$(run_seed 5)" != "$(run_seed 6)" ] || fail "seeds 5 and 6 gave the same 20 tokens"

# logits --ids on the fixture's tokens agree with the golden fixture.
ids=$(sed -n 's/^tokens [0-9]* //p' "$fixtures/tiny.txt")
"$gpt2" logits -m "$model" --ids "$ids" -o "$work/tiny.f32" 2>/dev/null || fail "logits run"
python3 - "$work/tiny.f32" "$fixtures/tiny.logits.f32" <<'PY' || fail "logits vs golden"
import struct, sys
a, b = (open(p, "rb").read() for p in sys.argv[1:3])
assert len(a) == len(b), (len(a), len(b))
n = len(a) // 4
x, y = struct.unpack(f"<{n}f", a), struct.unpack(f"<{n}f", b)
worst = max(abs(p - q) for p, q in zip(x, y)) / max(abs(q) for q in y)
assert worst <= 1e-4, worst
PY

# ppl: the guide's sliding windows recomputed here from `gpt2 logits` of each window.
printf 'a b c d e f g a b c d e f g h a b c a b c d e a b c d e f g h l m n o a b c' >"$work/ppl.txt"
"$gpt2" ppl -m "$model" -f "$work/ppl.txt" --ctx 16 --stride 6 --json >"$work/ppl.json" 2>"$work/err" \
  || fail "ppl: $(cat "$work/err")"
python3 - "$work/ppl.json" "$gpt2" "$model" "$work" <<'PY' || fail "ppl vs windows recomputed from logits"
import json, math, struct, subprocess, sys
result = json.load(open(sys.argv[1]))
gpt2, model, work = sys.argv[2:5]
ids = [int(x) for x in subprocess.run([gpt2, "tokenize", "-f", f"{work}/ppl.txt"], check=True,
                                      capture_output=True, text=True).stdout.split()]
V, ctx, stride = 1000, 16, 6
nll_sum, n_tokens, prev_end = 0.0, 0, 0
for begin in range(0, len(ids), stride):
    end = min(begin + ctx, len(ids))
    trg_len, window = end - prev_end, ids[begin:end]
    out = f"{work}/window.f32"
    subprocess.run([gpt2, "logits", "-m", model, "--ids", " ".join(map(str, window)), "-o", out],
                   check=True, capture_output=True)
    raw = open(out, "rb").read()
    losses = []
    for j in range(max(1, len(window) - trg_len), len(window)):
        row = struct.unpack_from(f"<{V}f", raw, (j - 1) * V * 4)
        top = max(row)
        losses.append(math.log(sum(math.exp(x - top) for x in row)) + top - row[window[j]])
    nll_sum += sum(losses) / len(losses) * (trg_len - 1)
    n_tokens += trg_len - 1
    prev_end = end
    if end == len(ids):
        break
want = math.exp(nll_sum / n_tokens)
assert result["tokens"] == n_tokens, (result, n_tokens)
assert abs(result["ppl"] - want) / want < 1e-5, (result["ppl"], want)
PY
printf 'Hello world, Hello world' >"$work/ppl_big.txt"
expect_error "ppl vocab" "outside this model's vocabulary" "$gpt2" ppl -m "$model" -f "$work/ppl_big.txt"
expect_error "ppl stride" "--stride 20 exceeds --ctx 16" "$gpt2" ppl -m "$model" -f "$work/ppl.txt" --ctx 16 --stride 20
expect_error "ppl ctx" "exceeds the model's context of 64" "$gpt2" ppl -m "$model" -f "$work/ppl.txt" --ctx 65

# KV formats: --kv on generate, ppl and logits, reported in their JSON; fp16 and int8 barely move
# the perplexity of the tiny model (measured: 985.797 fp32, 985.800 fp16, 985.974 int8).
expect_error "bad kv" "'--kv': 'int4' is not a KV format (fp32, fp16 or int8)" \
  "$gpt2" generate -m "$model" -p "a b" --kv int4
expect_error "ppl bad kv" "'--kv': 'FP16' is not a KV format" \
  "$gpt2" ppl -m "$model" -f "$work/ppl.txt" --kv FP16
for kv in fp32 fp16 int8; do
  "$gpt2" ppl -m "$model" -f "$work/ppl.txt" --ctx 16 --stride 6 --kv "$kv" --json \
    >"$work/ppl_$kv.json" 2>"$work/err" || fail "ppl --kv $kv: $(cat "$work/err")"
  "$gpt2" generate -m "$model" -p "a b" -n 4 --greedy --kv "$kv" --json >"$work/gen_$kv.json" \
    2>"$work/err" || fail "generate --kv $kv: $(cat "$work/err")"
  "$gpt2" logits -m "$model" --ids "5 6 7" -o "$work/l_$kv.f32" --kv "$kv" --json \
    >"$work/logits_$kv.json" 2>"$work/err" || fail "logits --kv $kv: $(cat "$work/err")"
done
python3 - "$work" <<'PY' || fail "--kv in the JSON of ppl, generate and logits"
import json, sys
work = sys.argv[1]
ppl = {}
for kv in ("fp32", "fp16", "int8"):
    for cmd in ("ppl", "gen", "logits"):
        assert json.load(open(f"{work}/{cmd}_{kv}.json"))["kv"] == kv, (cmd, kv)
    ppl[kv] = json.load(open(f"{work}/ppl_{kv}.json"))["ppl"]
for kv in ("fp16", "int8"):
    assert ppl[kv] != ppl["fp32"] and abs(ppl[kv] - ppl["fp32"]) / ppl["fp32"] < 1e-3, ppl
PY

# kvcompare: the metrics of int8 against fp16 are sane, and a format against itself is exact.
expect_error "kvcompare positions" "38 tokens, fewer than --positions 1000" \
  "$gpt2" kvcompare -m "$model" -f "$work/ppl.txt"
"$gpt2" kvcompare -m "$model" -f "$work/ppl.txt" --positions 38 --ctx 16 --json \
  >"$work/kv_int8.json" 2>"$work/err" || fail "kvcompare: $(cat "$work/err")"
"$gpt2" kvcompare -m "$model" -f "$work/ppl.txt" --positions 38 --ctx 16 --kv fp32 --baseline fp32 \
  --json >"$work/kv_fp32.json" 2>"$work/err" || fail "kvcompare fp32: $(cat "$work/err")"
python3 - "$work/kv_int8.json" "$work/kv_fp32.json" <<'PY' || fail "kvcompare JSON"
import json, sys
r = json.load(open(sys.argv[1]))
shape = (r["kv"], r["baseline"], r["positions"], r["windows"], r["ctx"])
assert shape == ("int8", "fp16", 38, 3, 16), r
assert 0 <= r["kl_mean"] <= r["kl_max"] < 1e-3, r
assert 0 <= r["top1_agreement"] <= 1 and 0 < r["max_abs_logit_error"] < 0.1, r
# Capacity in the default 1 GiB: 2 layers, so a 16-token sequence takes 2 one-layer blocks of
# K,V x 2 heads x 16 tokens x (64 x 2 bytes) = 8192 in fp16, (64 + 2) bytes per row = 4224 in int8.
cap = r["capacity"]
assert cap["budget_bytes"] == 2**30 and cap["seq_tokens"] == 16, cap
assert cap["baseline_sequences"] == (2**30 // 8192) // 2, cap
assert cap["kv_sequences"] == (2**30 // 4224) // 2, cap
same = json.load(open(sys.argv[2]))
assert same["kl_mean"] == same["kl_max"] == same["max_abs_logit_error"] == 0, same
assert same["top1_agreement"] == 1, same
assert same["capacity"]["kv_sequences"] == 0, same  # fp32 is no pool format
PY

# --kv-policy: a window shorter than ctx changes the perplexity (teacher-forced, evicting), a
# pyramid whose budgets cover the window does not; malformed or unimplemented ones are one line.
"$gpt2" ppl -m "$model" -f "$work/ppl.txt" --ctx 32 --stride 16 --kv-policy window:8 --json \
  >"$work/ppl_window.json" 2>"$work/err" || fail "ppl --kv-policy window:8: $(cat "$work/err")"
"$gpt2" ppl -m "$model" -f "$work/ppl.txt" --ctx 32 --stride 16 --kv-policy pyramid:1,0.5 --json \
  >"$work/ppl_pyramid.json" 2>"$work/err" || fail "ppl --kv-policy pyramid: $(cat "$work/err")"
"$gpt2" ppl -m "$model" -f "$work/ppl.txt" --ctx 32 --stride 16 --json >"$work/ppl_full.json" \
  2>"$work/err" || fail "ppl full: $(cat "$work/err")"
python3 - "$work" <<'PY' || fail "--kv-policy in ppl"
import json, sys
work = sys.argv[1]
r = {n: json.load(open(f"{work}/ppl_{n}.json")) for n in ("window", "pyramid", "full")}
assert r["window"]["kv_policy"] == "window:8" and r["full"]["kv_policy"] == "full", r
assert r["window"]["ppl"] != r["full"]["ppl"], r  # 8 of up to 32 tokens kept: it must change
assert r["pyramid"]["ppl"] == r["full"]["ppl"], r  # 64 and 32 tokens kept: windows of 32 lose none
PY
expect_error "policy malformed" "flag '--kv-policy': KV policy 'window:0' is malformed" \
  "$gpt2" ppl -m "$model" -f "$work/ppl.txt" --kv-policy window:0
expect_error "policy unknown" "unknown KV policy 'lru:8'" \
  "$gpt2" ppl -m "$model" -f "$work/ppl.txt" --kv-policy lru:8
expect_error "share without a pair" "share: L0 1 leaves no pair of layers in a model of 2" \
  "$gpt2" ppl -m "$model" -f "$work/ppl.txt" --kv-policy share:1
expect_error "policy layers" "pyramid: 4 ratios for 2 layers" \
  "$gpt2" ppl -m "$model" -f "$work/ppl.txt" --kv-policy pyramid:1,1,0.5,0.25
expect_error "policy without a cache" "--no-kv-cache keeps no cache for a --kv-policy" \
  "$gpt2" generate -m "$model" -p "a b" -n 2 --no-kv-cache --kv-policy window:4

# tokenize | detokenize gives back the exact bytes, multi-byte and odd whitespace included.
printf 'Caf\xc3\xa9 \xf0\x9f\x98\x80 \xe4\xbd\xa0\xe5\xa5\xbd\r\n\ttabs   and  spaces \xff\xfe end\n' >"$work/text"
"$gpt2" tokenize -f "$work/text" >"$work/ids" || fail "tokenize"
"$gpt2" detokenize -f "$work/ids" >"$work/back" || fail "detokenize"
cmp -s "$work/text" "$work/back" || fail "tokenize/detokenize round trip changed the bytes"
[ "$("$gpt2" tokenize -p 'Hello world')" = "15496 995" ] || fail "tokenize 'Hello world' != 15496 995 (tiktoken gpt2)"
[ "$("$gpt2" tokenize --special -p '<|endoftext|>')" = "50256" ] || fail "--special"

# Input that is not token ids: a NUL byte (which once cut the input short), signs, blanks.
printf '15496\0 995' >"$work/nul_ids"
expect_error "detokenize NUL" "'15496?' is not a token id" "$gpt2" detokenize -f "$work/nul_ids"
[ -s "$work/out" ] && fail "detokenize NUL: wrote to stdout"
printf '15496\0 995' | "$gpt2" detokenize >/dev/null 2>&1 && fail "detokenize NUL on stdin: exit 0"
expect_error "detokenize sign" "'+5' is not a token id" "$gpt2" detokenize -p "464 +5"
expect_error "detokenize negative" "'-5' is not a token id" "$gpt2" detokenize -p "-5"
expect_error "seed blank minus" "'--seed': ' -1' is not a non-negative integer" \
  "$gpt2" generate -m "$model" -p hi --seed " -1"
expect_error "seed plus" "'--seed': '+1' is not a non-negative integer" \
  "$gpt2" generate -m "$model" -p hi --seed "+1"
expect_error "seed empty" "'--seed': '' is not a non-negative integer" \
  "$gpt2" generate -m "$model" -p hi --seed ""

# Errors name their reason.
expect_error "read a folder" "$work: cannot read: Is a directory" "$gpt2" tokenize -f "$work"
expect_error "logits output folder missing" "cannot open for writing: No such file or directory" \
  "$gpt2" logits -m "$model" --ids "5 6" -o "$work/missing/l.f32"

# Failed writes to stdout fail the command.
expect_write_error "tokenize to /dev/full" "$gpt2" tokenize -p hi
expect_write_error "detokenize to /dev/full" "$gpt2" detokenize -p "15496 995"
expect_write_error "generate to /dev/full" "$gpt2" generate -m "$model" -p "a b" -n 5 --greedy
expect_write_error "generate --json to /dev/full" \
  "$gpt2" generate -m "$model" -p "a b" -n 5 --greedy --json
expect_write_error "help to /dev/full" "$gpt2" --help
if [ -w /dev/full ]; then
  "$gpt2" generate -m "$model" -p "a b" -n 5 --greedy 2>&1 >/dev/full | grep -q "generated" \
    && fail "generate to /dev/full: printed its stats after the write failed"
fi

# -n 0 samples nothing: no time to first token, no decode rate, but the prefill is timed.
"$gpt2" generate -m "$model" -p "a b" -n 0 --json >"$work/gen0.json" 2>"$work/err" \
  || fail "generate -n 0: $(cat "$work/err")"
python3 - "$work/gen0.json" <<'PY' || fail "generate -n 0 --json stats"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["generated_tokens"] == 0 and r["ids"] == [] and r["text"] == "", r
assert r["time_to_first_token_ms"] is None and r["decode_tok_per_s"] is None, r
assert r["prefill_ms"] > 0 and r["prefill_tok_per_s"] > 0, r
PY
"$gpt2" generate -m "$model" -p "a b" -n 0 >"$work/out" 2>"$work/err" || fail "generate -n 0 text"
grep -q "no token sampled" "$work/err" && ! grep -q "time to first token" "$work/err" \
  || fail "generate -n 0: stats claim a first token: $(cat "$work/err")"
"$gpt2" generate --help | grep -q "weights/gpt2" || fail "generate --help omits weights/gpt2"

[ "$failures" -eq 0 ] && echo "test_cli: all checks passed" || echo "test_cli: $failures check(s) failed"
[ "$failures" -eq 0 ]
