#!/usr/bin/env bash
# gpt2 generate --prompts end to end on the cuda backend (a GPU, or the SIMT emulator), on HF's
# tiny save_pretrained fixture (2 layers, 64 positions, vocab 1000: prompts of digits and commas,
# whose tokens all fit it):
#  - a batch of 7 prompts of different lengths gives, prompt by prompt, the ids of that prompt run
#    alone with -p and seed --seed + i, in input order (JSON: one object per line, index 0..6);
#    in fp16 fused and int8 unfused (test_batch_gpu covers every form at the engine level);
#  - text output: each completion under its header, in input order;
#  - a pool too small for all of them waits and preempts (the stats say so), and still gives
#    the same ids; one that can never hold a prompt + -n is one clear line and a non-zero exit;
#  - past the context (sinks:2,window:14, 120 tokens on 64 positions): each sequence restarts
#    when its context fills, as it does alone, in a batch and in a pool small enough to preempt
#    (restarts and preemptions both counted), with the ids of each prompt alone;
#  - --prompts with -p, on the cpu backend, or with an empty file: one clear line each.
# usage: test_prompts_gpu.sh GPT2 FIXTURE_DIR   (exits 77 with no CUDA device)
set -u
gpt2=$1 model=$2
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

if ! "$gpt2" generate -m "$model" --backend cuda -p "1" -n 1 >/dev/null 2>"$work/err"; then
  grep -q "no CUDA device" "$work/err" && { echo "test_prompts_gpu: no CUDA device, skipped"; exit 77; }
  fail "first run: $(cat "$work/err")"
fi

printf '1,2,3\n9\n4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4\n7,1\n0,0,5,6,7,8,9,1,2\n3\r\n8,8' >"$work/prompts"
prompts=$work/prompts n_prompts=7 n_new=20
batch() { "$gpt2" generate -m "$model" --backend cuda --prompts "$prompts" -n "$n_new" --seed 11 "$@"; }

# alone_ids FLAGS...: the ids of each prompt run alone, one JSON list per line.
alone_ids() {
  for i in $(seq 0 $((n_prompts - 1))); do
    line=$(sed -n "$((i + 1))p" "$prompts" | tr -d '\r')
    "$gpt2" generate -m "$model" --backend cuda -p "$line" -n "$n_new" --seed $((11 + i)) --json "$@" \
      2>>"$work/alone_err" | python3 -c 'import json, sys; print(json.load(sys.stdin)["ids"])'
  done
}
# batch_ids FILE: the ids of a --json batch, checking one object per line in input order.
batch_ids() {
  python3 - "$1" "$n_prompts" "$n_new" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == int(sys.argv[2]), f"{len(lines)} lines"
for i, line in enumerate(lines):
    r = json.loads(line)
    assert r["index"] == i and r["seed"] == 11 + i, r
    assert r["generated_tokens"] == len(r["ids"]) == int(sys.argv[3]), r
    print(r["ids"])
PY
}

for form in "" "--kv int8 --unfused"; do
  # shellcheck disable=SC2086
  alone_ids $form >"$work/alone" || fail "alone runs ($form): $(cat "$work/alone_err")"
  # shellcheck disable=SC2086
  batch --json $form >"$work/batch.json" 2>"$work/err" || fail "batch ($form): $(cat "$work/err")"
  batch_ids "$work/batch.json" >"$work/batch" || fail "batch JSON ($form)"
  cmp -s "$work/alone" "$work/batch" || fail "batch ($form) differs from the prompts alone: $(diff "$work/alone" "$work/batch")"
  # A pool of 4 blocks per layer: 1.5 sequences of the longest prompt; they wait and preempt.
  # shellcheck disable=SC2086
  batch --kv-mem 64K --max-seqs 3 $form >"$work/small$form.txt" 2>"$work/small_err$form" \
    || fail "small pool ($form): $(cat "$work/small_err$form")"
  # shellcheck disable=SC2086
  batch --kv-mem 64K --max-seqs 3 --json $form >"$work/small.json" 2>"$work/err" \
    || fail "small pool --json ($form): $(cat "$work/err")"
  batch_ids "$work/small.json" >"$work/small" || fail "small pool JSON ($form)"
  cmp -s "$work/alone" "$work/small" || fail "small pool ($form) differs from the prompts alone: $(diff "$work/alone" "$work/small")"
done
grep -Eq "7 prompts, 140 tokens generated .* [1-9][0-9]* preemptions" "$work/small_err" \
  || fail "the small fp16 pool did not preempt: $(cat "$work/small_err")"
headers=$(grep -c '^=== prompt [0-9]* (line [0-9]*, seed [0-9]*) ===$' "$work/small.txt")
[ "$headers" -eq "$n_prompts" ] || fail "text output: $headers headers, expected $n_prompts"
[ "$(grep '^=== prompt' "$work/small.txt" | awk '{print $3}' | tr '\n' ' ')" = "0 1 2 3 4 5 6 " ] \
  || fail "text output out of order"

# Past the context, batched and preempted, against each prompt alone.
printf '1,2,3\n4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4\n7,1' >"$work/past_prompts"
prompts=$work/past_prompts n_prompts=3 n_new=120
past=(--kv-policy sinks:2,window:14)
alone_ids "${past[@]}" >"$work/past_alone" || fail "past the context alone: $(cat "$work/alone_err")"
for pool in "" "--kv-mem 64K"; do
  # shellcheck disable=SC2086
  batch --json "${past[@]}" $pool >"$work/past.json" 2>"$work/err" || fail "past the context ($pool): $(cat "$work/err")"
  batch_ids "$work/past.json" >"$work/past_batch" || fail "past the context JSON ($pool)"
  cmp -s "$work/past_alone" "$work/past_batch" \
    || fail "past the context ($pool) differs from the prompts alone: $(diff "$work/past_alone" "$work/past_batch")"
done
batch "${past[@]}" --kv-mem 64K >/dev/null 2>"$work/err" || fail "past the context, small pool: $(cat "$work/err")"
grep -Eq "3 prompts, 360 tokens generated .* [1-9][0-9]* preemptions, [1-9][0-9]* context restarts" "$work/err" \
  || fail "past the context: no preemption or no restart: $(cat "$work/err")"
prompts=$work/prompts n_prompts=7 n_new=20

# Refusals: one line each, nothing run.
expect_error "pool never fits" "prompt 2 needs 58 tokens of KV cache, and the whole pool holds 48" \
  batch --kv-mem 48K
expect_error "prompts and -p" "give the prompts with -p, -f or --prompts, only one of them" \
  batch -p "1"
expect_error "prompts on cpu" "--prompts batches on the cuda backend" \
  "$gpt2" generate -m "$model" --backend cpu --prompts "$work/prompts"
: >"$work/empty"
expect_error "empty prompts file" "holds no prompt" \
  "$gpt2" generate -m "$model" --backend cuda --prompts "$work/empty"
expect_error "missing prompts file" "$work/missing: No such file" \
  "$gpt2" generate -m "$model" --backend cuda --prompts "$work/missing"

[ "$failures" -eq 0 ] && echo "test_prompts_gpu: all passed"
exit $((failures > 0))
