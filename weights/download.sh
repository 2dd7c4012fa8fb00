#!/usr/bin/env bash
# Downloads a HuggingFace GPT-2 checkpoint (config.json + model.safetensors) into weights/<name>/.
#
#   weights/download.sh gpt2|gpt2-medium|gpt2-large|gpt2-xl
#
# Both files go into a temporary folder beside the target first and are moved into place only
# when both have arrived (the weights before config.json, which is what marks a folder as a
# model), so a failed or interrupted run leaves no weights/<name>/ behind to hide the "no model"
# help. $GPT2_DOWNLOAD_BASE_URL replaces https://huggingface.co/<name>/resolve/main (a mirror;
# tests use a file:// URL). Untested against the real site here: this machine has no network.
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
command -v curl >/dev/null || { echo "$0: needs curl" >&2; exit 1; }

weights="$(cd "$(dirname "$0")" && pwd)"
dest="$weights/$name"
base_url=${GPT2_DOWNLOAD_BASE_URL:-https://huggingface.co/$name/resolve/main}
partial=$(mktemp -d "$weights/.$name.download.XXXXXX")
trap 'rm -rf "$partial"' EXIT
for file in config.json model.safetensors; do
    echo "fetching $base_url/$file"
    if ! curl --fail --location --retry 3 --output "$partial/$file" "$base_url/$file"; then
        echo "$0: could not fetch $base_url/$file; nothing was written to $dest" >&2
        exit 1
    fi
done
mkdir -p "$dest"
mv "$partial/model.safetensors" "$dest/model.safetensors"
mv "$partial/config.json" "$dest/config.json"
echo "$name is in $dest"
