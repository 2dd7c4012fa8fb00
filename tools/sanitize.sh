#!/usr/bin/env bash
# The sanitizer round: the emulation build (-DGPT2_CUDA_EMULATION=ON) with AddressSanitizer and
# UndefinedBehaviorSanitizer (-DGPT2_SANITIZE=ON, gcc's, -O1 -g, asserts on), and its whole
# ctest: every GPU test runs on the SIMT emulator, where device memory is host memory, so a
# kernel's out-of-bounds or use-after-free access is an ASan report naming the kernel, and
# test_asan_faults checks that planted faults are caught. LeakSanitizer runs at each exit.
# Build folder: $GPT2_SANITIZE_BUILD (default build-asan/). JOBS sets the parallelism.
#
# usage: tools/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
build=${GPT2_SANITIZE_BUILD:-build-asan}

# Faults stop the test at the first report. Stack use-after-return stays off: its fake frames
# made the fiber-heavy emulated tests 6 times slower (33 s against 5 s for test_layernorm_gpu).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

start=$(date +%s)
echo "== sanitizer build (ASan + UBSan, emulation) in $build =="
cmake -B "$build" -S . -DGPT2_CUDA_EMULATION=ON -DGPT2_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
cmake --build "$build" -j "$jobs"
built=$(date +%s)
ctest --test-dir "$build" --output-on-failure -j "$jobs" | tee "$build/ctest.log"
done_at=$(date +%s)
skipped=$(grep -E 'Test +#[0-9]+: test_[a-z0-9_]*_gpu.*(Skipped|Not Run)' "$build/ctest.log" || true)
if [ -n "$skipped" ]; then
  echo "sanitize.sh: GPU tests skipped in the sanitizer build, where they must run:" >&2
  echo "$skipped" >&2
  exit 1
fi
echo "sanitize.sh: the whole suite is clean under ASan + UBSan (build $((built - start)) s, tests $((done_at - built)) s)"
