#!/usr/bin/env bash
# Encoding speed, ours against tiktoken (node, WASM), on the same file in the same run.
#
# Usage: tests/tiktoken/bench.sh [BUILD_DIR] [FILE] [RUNS]
#   BUILD_DIR  a configured build tree (default: build); bench_tokenizer is built there
#   FILE       default: ../shared/corpus/tdavid.txt beside the repository
# Needs node and npm ci --prefix tests/tiktoken.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${1:-$repo/build}"
file="${2:-$(cd "$repo/.." && pwd)/shared/corpus/tdavid.txt}"
runs="${3:-5}"

cmake --build "$build" --target bench_tokenizer -j2 > /dev/null
echo "file: $file ($(wc -c < "$file") bytes), best of $runs runs, one thread"
tiktoken_version="$(node -p "require('$here/node_modules/tiktoken/package.json').version")"
printf '%-24s %s\n' "gpt2-cuda tokenizer:" "$("$build/tests/bench_tokenizer" "$file" "$runs")"
printf '%-24s %s\n' "tiktoken $tiktoken_version (node):" "$(node "$here/bench.mjs" "$file" "$runs")"
