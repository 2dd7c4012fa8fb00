#!/usr/bin/env bash
# Builds a libFuzzer harness with clang (ASan + UBSan) and runs it on one core.
#
#   tests/fuzz/run.sh safetensors|config [seconds] [more libFuzzer flags...]
#
# New corpus entries go to build-fuzz/corpus-<target>/; crashes to build-fuzz/artifacts-<target>/.
# Put a fixed crash's reproducer into tests/fuzz/seeds/<target>/ so ctest replays it.
set -euo pipefail

usage() { echo "usage: $0 safetensors|config [seconds] [libFuzzer flags...]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
target=$1
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))

root=$(cd "$(dirname "$0")/../.." && pwd)
case $target in
  safetensors) sources=(model/json.c model/safetensors.c) ;;
  config) sources=(model/json.c model/config.c) ;;
  *) usage ;;
esac

build=$root/build-fuzz
mkdir -p "$build/corpus-$target" "$build/artifacts-$target"
clang -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -Wall -Wextra \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root" "$root/tests/fuzz/fuzz_$target.c" "${sources[@]/#/$root/}" \
  -o "$build/fuzz_$target" -lm

exec "$build/fuzz_$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -dict="$root/tests/fuzz/$target.dict" -artifact_prefix="$build/artifacts-$target/" -print_final_stats=1 \
  "$@" "$build/corpus-$target" "$root/tests/fuzz/seeds/$target"
