#!/usr/bin/env bash
# The CUDA engine's NVTX ranges, recorded the way Nsight hooks in: NVTX3 loads the injection
# library named by NVTX_INJECTION64_PATH (tests/nvtx_record.c writes every push and pop to
# $GPT2_NVTX_RECORD). On HF's tiny fixture, prompt "a b" (2 tokens):
#  - eager (--no-graph -n 3): balanced; "load", then one "prefill" and two "decode" ranges; each
#    holds embedding, "layer 0" .. "layer L-1" (each with ln_1, qkv, kv_write, attention,
#    attn_proj, ln_2, mlp_fc, mlp_proj in that order), lm_head and sample;
#  - with the graph (-n 4): the same prefill, the first decode step (captured) in full, and the
#    two replayed steps with their "decode" range only.
# Ranges that libraries push inside an op are allowed; anything else is not.
# usage: test_nvtx_gpu.sh GPT2 NVTX_RECORD_LIBRARY FIXTURE_DIR   (exits 77 with no CUDA device)
set -u
gpt2=$1 library=$2 model=$3
source "$(dirname "$0")/cli_checks.sh" # $work, fail

# record NAME ARGS...: generate with the recorder attached, its record in $work/NAME.txt.
record() {
  local name=$1; shift
  NVTX_INJECTION64_PATH=$library GPT2_NVTX_RECORD=$work/$name.txt \
    "$gpt2" generate -m "$model" --backend cuda --greedy --ignore-eos -p "a b" "$@" \
    >/dev/null 2>"$work/err"
}
if ! record eager --no-graph -n 3; then
  grep -q "no CUDA device" "$work/err" && { echo "test_nvtx_gpu: no CUDA device, skipped"; exit 77; }
  fail "eager run: $(cat "$work/err")"
fi
record graph -n 4 || fail "graph run: $(cat "$work/err")"

python3 - "$work" "$model/config.json" <<'PY' || fail "NVTX ranges"
import json, sys
work, config = sys.argv[1:3]
n_layer = json.load(open(config))["n_layer"]
OPS = ["ln_1", "qkv", "kv_write", "attention", "attn_proj", "ln_2", "mlp_fc", "mlp_proj"]
STEP = ["embedding"] + [f"layer {l}" for l in range(n_layer)] + ["lm_head", "sample"]

def tree(path):
    """The record as nested [name, children] lists; fails unless every push is popped."""
    root = ["<top>", []]
    stack = [root]
    for number, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if line.startswith("push "):
            node = [line[5:], []]
            stack[-1][1].append(node)
            stack.append(node)
        else:
            assert line == "pop", f"{path}:{number}: not a record line: {line!r}"
            assert len(stack) > 1, f"{path}:{number}: pop without a push"
            stack.pop()
    assert len(stack) == 1, f"{path}: ranges left open: {[node[0] for node in stack[1:]]}"
    return root[1]

def names(nodes):
    return [node[0] for node in nodes]

def check_step(step, where):
    """A full forward call: every phase, layer and op in order (an op's children are free)."""
    assert names(step[1]) == STEP, f"{where}: {names(step[1])}"
    for layer in step[1][1:1 + n_layer]:
        assert names(layer[1]) == OPS, f"{where}, {layer[0]}: {names(layer[1])}"

eager = tree(f"{work}/eager.txt")
assert names(eager) == ["load", "prefill", "decode", "decode"], names(eager)
for i, step in enumerate(eager[1:]):
    check_step(step, f"eager call {i} ({step[0]})")

graph = tree(f"{work}/graph.txt")
assert names(graph) == ["load", "prefill", "decode", "decode", "decode"], names(graph)
check_step(graph[1], "graph run, prefill")
check_step(graph[2], "graph run, the captured decode step")
for i, step in enumerate(graph[3:], 2):
    assert step[1] == [], f"graph run, replayed decode step {i}: {names(step[1])}"
print(f"test_nvtx_gpu: {n_layer} layers x {len(OPS)} ops in every eager step, replays bare")
PY

[ "$failures" -eq 0 ] && echo "test_nvtx_gpu: all checks passed"
exit $((failures > 0))
