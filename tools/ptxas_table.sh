#!/usr/bin/env bash
# The ptxas resource table of every kernel in kernels/: registers, spill bytes, stack frame,
# static shared memory and barriers, for sm_80 and sm_90, one row per kernel and arch.
# Exits non-zero when any kernel spills (a spill on the hot path is a defect; there is no
# allow-list: make the kernel fit or split it).
#
# usage: tools/ptxas_table.sh [OUTPUT_FILE]      (default: print only)
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
out=${1:-/dev/null}

table=$(
  for src in kernels/*.cu; do
    for arch in 80 90; do
      "$nvcc" -std=c++17 -I. -arch=sm_$arch -cubin -o /dev/null --resource-usage "$src" 2>&1 |
        awk -v file="$(basename "$src")" -v arch="sm_$arch" '
          /Compiling entry function/ { name = $0; sub(/.*function \047/, "", name); sub(/\047.*/, "", name) }
          /bytes stack frame/ { stack = $1; spill_st = $5; spill_ld = $9 }
          /Used [0-9]+ registers/ {
            regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
            bars = $0; sub(/.*used /, "", bars); sub(/ barriers.*/, "", bars)
            smem = 0; if ($0 ~ /bytes smem/) { smem = $0; sub(/ bytes smem.*/, "", smem); sub(/.*, /, "", smem) }
            print file, arch, regs, spill_st, spill_ld, stack, smem, bars, name
          }'
    done
  done | c++filt | sed 's/(.*//')

{
  printf '%-18s %-6s %5s %11s %10s %6s %9s %5s  %s\n' file arch regs spill_store spill_load stack smem_bytes bars kernel
  echo "$table" | while read -r file arch regs st ld stack smem bars name; do
    printf '%-18s %-6s %5s %11s %10s %6s %9s %5s  %s\n' "$file" "$arch" "$regs" "$st" "$ld" "$stack" "$smem" "$bars" "$name"
  done
} | tee "$out"

spills=$(echo "$table" | awk '$4 > 0 || $5 > 0')
if [ -n "$spills" ]; then
  echo "ptxas_table.sh: kernels with register spills:" >&2
  echo "$spills" >&2
  exit 1
fi
