#!/usr/bin/env bash
# tools/bench_peers.py compiles (python3 -m py_compile). It needs PyTorch and a GPU, so it is never
# run in CI. usage: test_bench_peers.sh BENCH_PEERS_PY   (exits 77 without python3)
set -u
command -v python3 >/dev/null || { echo "test_bench_peers: no python3, skipped"; exit 77; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -c 'import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)' \
  "$1" "$scratch/bench_peers.pyc" || { echo "FAIL: $1 does not compile" >&2; exit 1; }
echo "test_bench_peers: ok"
