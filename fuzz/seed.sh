#!/usr/bin/env bash
# Seeds fuzz/corpus/render with small valid images made by the integration fixtures' encoders
# (via `imgd render` on a generated photo), so the fuzzer starts from real structure.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p fuzz/corpus/render
cargo build --release -q -p imgd -p imgd-imaging --example bench_images
tmp=$(mktemp -d)
target/release/examples/bench_images "$tmp/in" 1
for options in "w=64,f=jpeg" "w=48,f=png" "w=40,f=webp" "w=32,f=gif"; do
  target/release/imgd render -p "$options" -o "$tmp/out" "$tmp/in/photo00.jpg"
done
cp "$tmp"/out/* fuzz/corpus/render/
rm -rf "$tmp"
ls -la fuzz/corpus/render
