#!/usr/bin/env bash
# Builds the libFuzzer targets (CMake, -DGPT2_FUZZ=ON with clang: tests/fuzz/CMakeLists.txt) and
# runs one of them, or each in turn, for a bounded time on one core (ASan + UBSan).
#
#   tests/fuzz/run.sh TARGET|all [seconds] [more libFuzzer flags...]
#   TARGET: safetensors, config, ids, plot, prompts (seconds: default 60, for each target)
#
# The build folder is $GPT2_FUZZ_BUILD (default build-fuzz/). New corpus entries go to
# <build>/corpus-<target>/ (kept between runs), crashes to <build>/artifacts-<target>/. A crash
# fails the run and prints its reproducer (path, size, base64) and the command that replays it;
# put a fixed crash's reproducer into tests/fuzz/seeds/<target>/ so that ctest replays it.
set -euo pipefail

targets=(safetensors config ids plot prompts)
usage() { echo "usage: $0 safetensors|config|ids|plot|prompts|all [seconds] [libFuzzer flags...]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
target=$1
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
[[ $seconds =~ ^[0-9]+$ ]] || usage
if [[ $target == all ]]; then
  chosen=("${targets[@]}")
else
  [[ " ${targets[*]} " == *" $target "* ]] || usage
  chosen=("$target")
fi

command -v clang >/dev/null ||
  { echo "$0: needs clang with libFuzzer (Debian: apt-get install clang)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${GPT2_FUZZ_BUILD:-$root/build-fuzz}
jobs=${JOBS:-$(nproc)}

# The emulation configuration needs no nvcc; only the fuzz targets (C sources) are built.
mkdir -p "$build"
cmake -B "$build" -S "$root" -DGPT2_CUDA_EMULATION=ON -DGPT2_FUZZ=ON -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" -j "$jobs" --target "${chosen[@]/#/fuzz_}" >"$build/build.log" 2>&1 ||
  { tail -n 60 "$build/build.log" >&2; echo "$0: the fuzz targets did not build" >&2; exit 1; }

failed=()
for name in "${chosen[@]}"; do
  corpus=$build/corpus-$name artifacts=$build/artifacts-$name/
  mkdir -p "$corpus" "$artifacts"
  dict=()
  [[ -f $root/tests/fuzz/$name.dict ]] && dict=(-dict="$root/tests/fuzz/$name.dict")
  echo "== fuzz_$name: $seconds s =="
  log=$build/fuzz-$name.log
  status=0
  # -close_fd_mask=2: the harnesses' own error lines stay quiet; libFuzzer's and the
  # sanitizers' reports still reach stderr.
  "$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$artifacts" "$@" "$corpus" "$root/tests/fuzz/seeds/$name" >"$log" 2>&1 ||
    status=$?
  grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb' "$log" || true
  if [[ $status -ne 0 ]]; then
    failed+=("$name")
    tail -n 80 "$log" >&2
    for crash in $(grep -oE "Test unit written to [^ ]+" "$log" | sed 's/Test unit written to //'); do
      echo "reproducer: $crash ($(stat -c %s "$crash") bytes), base64:" >&2
      base64 "$crash" >&2
      echo "replay: $build/tests/fuzz/fuzz_$name $crash" >&2
    done
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "$0: fuzz target(s) failed: ${failed[*]}" >&2
  exit 1
fi
