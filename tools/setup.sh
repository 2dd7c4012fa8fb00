#!/usr/bin/env bash
# Installs what building gpt2-cuda needs and is missing, on Debian or Ubuntu with the CUDA
# toolkit already installed (nvcc, cuBLAS and NVTX headers come with it):
#   the stb headers (PNG charts), a font for chart text, CMake >= 3.24, a C/C++ compiler.
# With --tests also node and npm, and the reference tokenizer the tests compare against
# (npm package tiktoken, pinned in tests/tiktoken/package-lock.json), and clang, whose libFuzzer
# builds the fuzz targets (tests/fuzz/run.sh).
# Runs apt-get as root, or through sudo; does nothing that is already in place.
#
# usage: tools/setup.sh [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."

tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) tests=1 ;;
    *) echo "setup.sh: unknown argument '$arg' (usage: tools/setup.sh [--tests])" >&2; exit 2 ;;
  esac
done

missing=()
need() { # need PACKAGE PATH-OR-COMMAND: the package is missing when the file or command is
  if ! [ -e "$2" ] && ! command -v "$2" >/dev/null 2>&1; then missing+=("$1"); fi
}
need libstb-dev /usr/include/stb/stb_image_write.h
need fonts-dejavu-core /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
need cmake cmake
need gcc gcc
need g++ g++
need make make
if [ "$tests" = 1 ]; then
  need nodejs node
  need npm npm
  need python3 python3
  need clang clang
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup.sh: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
  { echo "setup.sh: the CUDA toolkit (nvcc) is not installed; see https://developer.nvidia.com/cuda-downloads" >&2; exit 1; }

if [ "$tests" = 1 ] && ! [ -d tests/tiktoken/node_modules/tiktoken ]; then
  npm ci --prefix tests/tiktoken --no-audit --no-fund --loglevel=error
fi
