#!/usr/bin/env bash
# `gpt2 analyze similarity` on synthetic checkpoints of 1, 2 and 4 layers: the JSON parses, the
# matrices are symmetric with 1 on the diagonal and each cosine equals one recomputed here from
# the model.safetensors bytes (python3 standard library only); the CSV and the summaries agree
# with the matrices; `gpt2 plot` on the JSON redraws the PNGs byte for byte; bad input is one
# line on stderr and a non-zero exit.
# usage: test_analyze.sh GPT2 WRITE_SYNTHETIC
set -u
gpt2=$1 write_synthetic=$2
source "$(dirname "$0")/cli_checks.sh" # $work, fail, expect_error

# check_model LAYERS SEED: analyze a synthetic checkpoint (2 heads, C = 128) and check every output.
check_model() {
  local layers=$1 seed=$2
  local model=$work/model$layers out=$work/out$layers
  mkdir "$model" && "$write_synthetic" "$model" "$layers" 2 64 1000 "$seed" \
    || { fail "cannot write a $layers-layer checkpoint"; return; }
  "$gpt2" analyze similarity -m "$model" -o "$out" >"$work/summary" 2>"$work/err" \
    || { fail "$layers layers: analyze: $(cat "$work/err")"; return; }
  [ -s "$work/err" ] && fail "$layers layers: analyze wrote to stderr: $(cat "$work/err")"
  grep -q "^K " "$work/summary" && grep -q "^V " "$work/summary" \
    || fail "$layers layers: no K and V rows in the summary: $(cat "$work/summary")"
  "$gpt2" analyze similarity -m "$model" -o "$out" --json >"$work/stdout.json" 2>"$work/err" \
    || fail "$layers layers: analyze --json: $(cat "$work/err")"
  python3 - "$out" "$model" "$layers" "$work/stdout.json" <<'PY' || fail "$layers layers: result"
import csv, json, math, os, struct, sys
out, model, layers, stdout_json = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
r = json.load(open(f"{out}/similarity.json"))
assert json.load(open(stdout_json))["model"] == r["model"], "--json printed another result"
L, C = r["model"]["n_layer"], r["model"]["n_embd"]
assert (L, C) == (layers, 128), (L, C)
assert r["run"]["command_line"].startswith("gpt2 analyze similarity -m "), r["run"]
assert r["run"]["gpu"]["name"], r["run"]

# The K and V blocks of every layer's c_attn weight, read from the safetensors bytes.
raw = open(f"{model}/model.safetensors", "rb").read()
(header_len,) = struct.unpack_from("<Q", raw, 0)
header = json.loads(raw[8:8 + header_len])
def kv_blocks(layer):
    t = header[f"h.{layer}.attn.c_attn.weight"]
    assert t["dtype"] == "F32" and t["shape"] == [C, 3 * C], t
    begin = 8 + header_len + t["data_offsets"][0]
    w = struct.unpack_from(f"<{3 * C * C}f", raw, begin)
    rows = [w[i * 3 * C:(i + 1) * 3 * C] for i in range(C)]
    k = [x for row in rows for x in row[C:2 * C]]
    v = [x for row in rows for x in row[2 * C:]]
    return k, v
def cosine(x, y):
    dot = lambda a, b: math.fsum(p * q for p, q in zip(a, b))
    return dot(x, y) / math.sqrt(dot(x, x) * dot(y, y))
blocks = [kv_blocks(l) for l in range(L)]

for name, part in (("k_cosine", 0), ("v_cosine", 1)):
    m = r[name]
    assert len(m) == L and all(len(row) == L for row in m), name
    for a in range(L):
        assert m[a][a] == 1.0, (name, a, m[a][a])
        for b in range(L):
            assert m[a][b] == m[b][a], (name, a, b)
            if a < b:
                want = cosine(blocks[a][part], blocks[b][part])
                assert abs(m[a][b] - want) <= 1e-9 * abs(want), (name, a, b, m[a][b], want)

# Derived numbers agree with the matrices.
K, V = r["k_cosine"], r["v_cosine"]
for key, m in (("k", K), ("v", V)):
    adjacent = [abs(m[l][l + 1]) for l in range(L - 1)]
    assert r["adjacent_abs_cosine"][key] == adjacent, key
    pairs = [(m[a][b], a, b) for a in range(L) for b in range(a + 1, L)]
    s = r["summary"][key]
    if not pairs:
        assert s["mean_off_diagonal"] is None and s["max_pair"] is None, s
        continue
    assert math.isclose(s["mean_off_diagonal"], sum(p[0] for p in pairs) / len(pairs), rel_tol=1e-12)
    assert math.isclose(s["mean_abs_off_diagonal"], sum(abs(p[0]) for p in pairs) / len(pairs), rel_tol=1e-12)
    best = max(pairs, key=lambda p: p[0])
    assert s["max_off_diagonal"] == best[0] and s["max_pair"] == [best[1], best[2]], s

# The CSV holds the same numbers, every ordered pair once.
rows = list(csv.DictReader(open(f"{out}/similarity.csv")))
assert len(rows) == L * L, len(rows)
for row in rows:
    a, b = int(row["layer_a"]), int(row["layer_b"])
    assert float(row["k_cosine"]) == K[a][b] and float(row["v_cosine"]) == V[a][b], row

# The charts: two heatmaps of the matrices, and the adjacent-layers line chart from two layers on.
charts = r["charts"]
files = [c["file"] for c in charts]
want_files = ["similarity_k.png", "similarity_v.png"] + (["similarity_adjacent.png"] if L > 1 else [])
assert files == want_files, files
assert charts[0]["matrix"] == K and charts[1]["matrix"] == V
assert charts[0]["row_labels"] == [str(l) for l in range(L)]
assert "not activations" in charts[0]["subtitle"] and model in charts[0]["subtitle"]
if L > 1:
    series = charts[2]["series"]
    assert [s["y"] for s in series] == [r["adjacent_abs_cosine"]["k"], r["adjacent_abs_cosine"]["v"]]
for f in files:
    assert os.path.getsize(f"{out}/{f}") > 0, f
with open(f"{out}/files", "w") as listing:
    listing.write("\n".join(files) + "\n")
PY
  # `gpt2 plot` redraws every PNG byte for byte.
  "$gpt2" plot "$out/similarity.json" -o "$out/redrawn" >/dev/null 2>"$work/err" \
    || fail "$layers layers: gpt2 plot: $(cat "$work/err")"
  while read -r png; do
    cmp -s "$out/$png" "$out/redrawn/$png" || fail "$layers layers: $png differs when redrawn"
  done <"$out/files"
}

check_model 1 7
check_model 2 1
check_model 4 3

expect_error "no analysis" "missing analysis" "$gpt2" analyze
expect_error "unknown analysis" "unknown analysis 'entropy'" "$gpt2" analyze entropy
expect_error "unknown flag" "unknown argument '--frob'" "$gpt2" analyze similarity --frob
expect_error "missing value" "needs a value" "$gpt2" analyze similarity -m
expect_error "missing model dir" "$work/missing" \
  "$gpt2" analyze similarity -m "$work/missing" -o "$work/unused"
[ -e "$work/unused" ] && fail "a failed analysis created its output folder"
touch "$work/a_file"
expect_error "output is a file" "cannot create $work/a_file" \
  "$gpt2" analyze similarity -m "$work/model2" -o "$work/a_file"

# An output folder that cannot be made fails before any work or output.
expect_error "output under a file" "cannot create /dev/null/x: Not a directory" \
  "$gpt2" analyze similarity -m "$work/model2" -o /dev/null/x
[ -s "$work/out" ] && fail "output under a file: printed before failing: $(cat "$work/out")"

[ "$failures" -eq 0 ] && echo "test_analyze: all checks passed" || echo "test_analyze: $failures check(s) failed"
[ "$failures" -eq 0 ]
