#!/usr/bin/env bash
# The whole GPU round in one run, for the GPU machine (H100/H200, sm_90):
#   configure for sm_90, build, the ptxas table, ctest (GPU tests included), and
#   compute-sanitizer memcheck / racecheck / initcheck over every GPU test (tests/test_*_gpu).
# Logs go to $OUT (or ./gpu-check-logs); the summary is the last thing printed.
#
# usage: tools/gpu-check.sh            (from the repository root)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-logs}
build=build-gpu
mkdir -p "$out"
declare -a summary
step() { # step NAME COMMAND...: runs, logs to $out/NAME.log, records PASS/FAIL
  local name=$1; shift
  local start=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then summary+=("PASS  $name ($((SECONDS - start)) s)")
  else summary+=("FAIL  $name ($((SECONDS - start)) s): see $out/$name.log"); fi
}

nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem,memory.total,driver_version --format=csv \
  >"$out/gpu.txt" 2>&1
step configure cmake -B "$build" -S . -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release
step build cmake --build "$build" -j "$(nproc)"
step ptxas tools/ptxas_table.sh "$out/ptxas.txt"
step ctest ctest --test-dir "$build" --output-on-failure -j 4

gpu_tests=$(ls "$build"/tests/test_*_gpu 2>/dev/null)
for tool in memcheck racecheck initcheck; do
  for t in $gpu_tests; do
    step "sanitizer-$tool-$(basename "$t")" compute-sanitizer --tool "$tool" --error-exitcode 1 "$t"
  done
done

echo
echo "== gpu-check summary ($(head -2 "$out/gpu.txt" | tail -1)) =="
printf '%s\n' "${summary[@]}"
! printf '%s\n' "${summary[@]}" | grep -q '^FAIL'
