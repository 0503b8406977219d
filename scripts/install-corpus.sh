#!/usr/bin/env bash
# Installs the natural-text corpus of experiments/neurons-smollm2.toml: the fortune-cookie
# databases of Debian's `fortunes` package (BSD licence; 2.6 MB of English text, entries
# separated by `%` lines), copied as plain text files into DIR (default
# ~/.cache/circuitry/corpus/fortunes). data/corpus/fortunes-sample.txt is a sample of it.
#   scripts/install-corpus.sh [DIR]
set -euo pipefail
dir="${1:-$HOME/.cache/circuitry/corpus/fortunes}"
src=/usr/share/games/fortunes
if [ ! -f "$src/fortunes" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null
  else
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null
  fi
fi
mkdir -p "$dir"
n=0
for f in "$src"/*; do
  name=$(basename "$f")
  # The text databases only: not their .dat indexes, nor the .u8 links to the same files.
  case "$name" in *.dat | *.u8) continue ;; esac
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  cp "$f" "$dir/$name"
  n=$((n + 1))
done
echo "corpus: $n files, $(cat "$dir"/* | wc -c) bytes in $dir"
