#!/usr/bin/env bash
# Downloads a HuggingFace GPT-2 checkpoint (config.json + model.safetensors) into weights/<name>/.
#
#   weights/download.sh gpt2|gpt2-medium|gpt2-large|gpt2-xl
#
# Untested here: the machine this was written on has no network access.
set -euo pipefail

usage() {
    echo "usage: $0 gpt2|gpt2-medium|gpt2-large|gpt2-xl" >&2
    exit 2
}

[[ $# -eq 1 ]] || usage
name=$1
case $name in
    gpt2 | gpt2-medium | gpt2-large | gpt2-xl) ;;
    *) usage ;;
esac

dest="$(cd "$(dirname "$0")" && pwd)/$name"
base_url="https://huggingface.co/$name/resolve/main"
mkdir -p "$dest"
for file in config.json model.safetensors; do
    echo "fetching $base_url/$file"
    # Download beside the target and rename, so an interrupted run never leaves a partial file.
    curl --fail --location --retry 3 --output "$dest/$file.part" "$base_url/$file"
    mv "$dest/$file.part" "$dest/$file"
done
echo "$name is in $dest"
