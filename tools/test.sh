#!/usr/bin/env bash
# The whole test round on a machine without a GPU (and with one: then the GPU tests run on it too):
#   1. the real build (nvcc, sm_80 and sm_90) and its ctest; GPU tests skip where there is no GPU;
#   2. the ptxas table of every kernel (tools/ptxas_table.sh), failing on any spill;
#   3. the emulation build (-DGPT2_CUDA_EMULATION=ON) and its ctest, where every GPU test runs on
#      the SIMT emulator under two race-shaker seeds; a GPU test skipped there is a failure.
# Build folders: build/ and build-emu/. JOBS sets the parallelism (default: all cores).
#
# usage: tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

echo "== real build (nvcc) =="
cmake -B build -S . >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== ptxas resource table =="
tools/ptxas_table.sh build/ptxas.txt

echo "== emulation build (kernels on the SIMT emulator) =="
cmake -B build-emu -S . -DGPT2_CUDA_EMULATION=ON >/dev/null
cmake --build build-emu -j "$jobs"
ctest --test-dir build-emu --output-on-failure -j "$jobs" | tee build-emu/ctest.log
gpu_tests=$(grep -cE 'Test +#[0-9]+: test_[a-z0-9_]*_gpu' build-emu/ctest.log || true)
skipped=$(grep -E 'Test +#[0-9]+: test_[a-z0-9_]*_gpu.*(Skipped|Not Run)' build-emu/ctest.log || true)
if [ -n "$skipped" ]; then
  echo "test.sh: GPU tests skipped in the emulation build, where they must run:" >&2
  echo "$skipped" >&2
  exit 1
fi
echo "test.sh: all passed; $gpu_tests GPU test runs on the emulator, none skipped"
