#!/usr/bin/env bash
# Strict inputs, tried as a new user would (issue 16): each gets one clear line and a non-zero exit,
# or a hint where a person is waiting.
#   - a checkpoint with a NaN weight (ln_f.weight) is refused at load, naming the tensor;
#   - a checkpoint whose finite weights overflow gives no "ppl nan" with exit 0;
#   - a safetensors file with a byte after its last tensor is refused;
#   - a failed weights/download.sh leaves no weights/<name>/ (and a good one fills it);
#   - reading the text from a terminal prints how to end it; from a pipe, nothing.
# usage: test_strict_inputs.sh GPT2 WRITE_SYNTHETIC SOURCE_DIR   (needs python3)
set -uo pipefail
gpt2=$1 write_synthetic=$2 source_dir=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/test_strict_inputs.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_error NAME FRAGMENT CMD...: non-zero exit, exactly one line on stderr holding FRAGMENT.
expect_error() {
  local name=$1 fragment=$2
  shift 2
  "$@" >"$work/out" 2>"$work/err" </dev/null
  local rc=$?
  [[ $rc -ne 0 ]] || fail "$name: exit code 0"
  [[ $(wc -l <"$work/err") -eq 1 ]] || fail "$name: stderr is not one line: $(cat "$work/err")"
  grep -qF -- "$fragment" "$work/err" || fail "$name: stderr lacks '$fragment': $(cat "$work/err")"
}

model=$work/model
mkdir "$model" && "$write_synthetic" "$model" 2 2 64 1000 1 >/dev/null || { echo "cannot write checkpoint"; exit 1; }
printf 'a b c d e f g a b c d e f g h a b c' >"$work/text.txt"
"$gpt2" ppl -m "$model" -f "$work/text.txt" >/dev/null 2>&1 || fail "the synthetic model does not load"

# copy_with NAME PYTHON: a copy of the model whose F32 tensors `t` (name -> list of floats, in
# place) the Python statements change.
copy_with() {
  cp -r "$model" "$work/$1"
  python3 - "$work/$1/model.safetensors" "$2" <<'PY' || fail "cannot patch $1"
import json, struct, sys
path, code = sys.argv[1], sys.argv[2]
data = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
class Tensors:
    def __setitem__(self, name, values):
        begin, end = header[name]["data_offsets"]
        assert len(values) * 4 == end - begin
        data[8 + n + begin:8 + n + end] = struct.pack("<%df" % len(values), *values)
    def count(self, name):
        begin, end = header[name]["data_offsets"]
        return (end - begin) // 4
t = Tensors()
exec(code)
open(path, "wb").write(data)
PY
}

copy_with nan 't["ln_f.weight"] = [float("nan")] + [1.0] * (t.count("ln_f.weight") - 1)'
expect_error "NaN weight: ppl" "tensor 'ln_f.weight': element 0 of [128] is NaN" \
  "$gpt2" ppl -m "$work/nan" -f "$work/text.txt"
expect_error "NaN weight: generate" "tensor 'ln_f.weight': element 0 of [128] is NaN" \
  "$gpt2" generate -m "$work/nan" -p "a b" -n 4

copy_with huge 'c = t.count("ln_f.weight"); t["ln_f.weight"] = [3e38] * c; t["ln_f.bias"] = [3e38] * c'
expect_error "overflowing logits: ppl" "the perplexity is not finite" \
  "$gpt2" ppl -m "$work/huge" -f "$work/text.txt"

cp -r "$model" "$work/trailing" && printf 'x' >>"$work/trailing/model.safetensors"
expect_error "a byte after the last tensor" "1 trailing byte after the last tensor's data" \
  "$gpt2" ppl -m "$work/trailing" -f "$work/text.txt"

# weights/download.sh, run from a copy so that it writes under $work/weights/.
mkdir "$work/weights" && cp "$source_dir/weights/download.sh" "$work/weights/"
if command -v curl >/dev/null; then
  GPT2_DOWNLOAD_BASE_URL="file://$work/nowhere" "$work/weights/download.sh" gpt2 >/dev/null 2>"$work/err" &&
    fail "download.sh from a missing source exited 0"
  grep -q "could not fetch" "$work/err" || fail "download.sh's failure does not say so: $(cat "$work/err")"
  [[ -z $(ls -A "$work/weights" | grep -v '^download.sh$') ]] ||
    fail "a failed download.sh left: $(ls -A "$work/weights")"
  GPT2_DOWNLOAD_BASE_URL="file://$model" "$work/weights/download.sh" gpt2 >/dev/null 2>"$work/err" ||
    fail "download.sh from a good source: $(cat "$work/err")"
  cmp -s "$model/model.safetensors" "$work/weights/gpt2/model.safetensors" &&
    cmp -s "$model/config.json" "$work/weights/gpt2/config.json" || fail "download.sh's files differ"
  [[ $(ls -A "$work/weights" | tr '\n' ' ') == "download.sh gpt2 " ]] ||
    fail "download.sh left more than weights/gpt2: $(ls -A "$work/weights")"
else
  echo "note: no curl, download.sh not tried"
fi

# The terminal hint: through a pseudo-terminal, the hint, then the text once it ends with Ctrl-D.
python3 - "$gpt2" <<'PY' || fail "no hint when reading a terminal"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "tokenize"])
os.write(fd, b"Hello world\n\x04")
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
text = out.decode(errors="replace")
assert "reading the text from the terminal; end it with Ctrl-D" in text, text
assert "15496 995" in text, text
assert os.WEXITSTATUS(status) == 0, status
PY
printf 'Hello world' | "$gpt2" tokenize >"$work/out" 2>"$work/err" || fail "tokenize from a pipe"
[[ ! -s $work/err ]] || fail "a hint when reading a pipe: $(cat "$work/err")"

if [[ $failures -gt 0 ]]; then
  echo "test_strict_inputs: $failures failure(s)" >&2
  exit 1
fi
echo "test_strict_inputs: all checks passed"
