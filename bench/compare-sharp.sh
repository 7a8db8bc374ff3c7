#!/usr/bin/env bash
# Render time and peak memory of `imgd render --jobs 1` against sharp (from npm: prebuilt libvips
# with mozjpeg, pinned to one thread by sharp.concurrency(1) and UV_THREADPOOL_SIZE=1), per input
# format, on the same files in the same run. Each tool turns a batch of COUNT files into 400 px
# wide JPEGs at q80; each batch runs RUNS times and the median is reported.
#
#   bench/compare-sharp.sh                               # default build
#   FEATURES=jpeg-simd,heif bench/compare-sharp.sh       # the shipped build (AVIF and HEIC input)
#   IMGD_BIN=/tmp/imgd-before bench/compare-sharp.sh     # another build
#
# Inputs: photo-like pictures drawn by the bench_images example (20 MP JPEG, 12 MP PNG), then
# converted by libvips' command line (Debian: libvips-tools) into WebP (20 MP), GIF (2 MP),
# AVIF and HEIC (12 MP, as a phone takes them). They are cached in $CACHE. sharp is installed
# there from npm. Needs node and npm, vips, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
COUNT=${COUNT:-5}
SHARP_VERSION=${SHARP_VERSION:-0.34.5}
CACHE=${CACHE:-$HOME/.cache/imgd-bench}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=bench/lib.sh
. bench/lib.sh
IMGD=$(imgd_binary)

use_sharp

inputs="$CACHE/inputs-$COUNT"
last=$(printf '%02d' $((COUNT - 1)))
if [ ! -f "$inputs/photo$last.heic" ]; then
  cargo build --release -q -p imgd-imaging --example bench_images
  target/release/examples/bench_images "$inputs" "$COUNT"
  for i in $(seq -f '%02g' 0 $((COUNT - 1))); do
    vips webpsave "$inputs/photo$i.jpg" "$inputs/photo$i.webp" --Q 80
    vips thumbnail "$inputs/photo$i.jpg" "$inputs/photo$i.gif" 1732
    vips heifsave "$inputs/photo$i.png" "$inputs/photo$i.avif" --Q 60 --compression av1 --effort 2
    vips heifsave "$inputs/photo$i.png" "$inputs/photo$i.heic" --Q 60 --compression hevc
  done
fi

row() {
  local name=$1 ext=$2
  local files=("$inputs"/photo*."$ext")
  local ours theirs
  ours=$(median "$IMGD" render --jobs 1 -p w=400,f=jpeg,q=80 -o "$WORK/out" "${files[@]}")
  theirs=$(median node bench/sharp-batch.js "$WORK/out" "${files[@]}")
  awk -v n="$name" -v ours="$ours" -v theirs="$theirs" 'BEGIN {
    cannot = "cannot read it"
    split(ours, a, " "); split(theirs, b, " ")
    t1 = ours == "fail" ? cannot : sprintf("%.2f s", a[1]); m1 = ours == "fail" ? "" : sprintf("%.0f MiB", a[2] / 1024)
    t2 = theirs == "fail" ? cannot : sprintf("%.2f s", b[1]); m2 = theirs == "fail" ? "" : sprintf("%.0f MiB", b[2] / 1024)
    both = ours != "fail" && theirs != "fail"
    r1 = both ? sprintf("**%.2fx**", a[1] / b[1]) : ""; r2 = both ? sprintf("**%.2fx**", a[2] / b[2]) : ""
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", n, t1, t2, r1, m1, m2, r2 }'
}

echo "imgd build: ${FEATURES:-default}, --jobs 1; sharp $SHARP_VERSION (libvips $(node -p "require('$SHARP_MODULE').versions.vips")), one thread; $(nproc) cores; median of $RUNS runs of a batch of $COUNT files to 400 px JPEG q80"
echo
echo "| input (batch of $COUNT) | imgd | sharp | time ratio | imgd peak RSS | sharp peak RSS | memory ratio |"
echo "|---|---|---|---|---|---|---|"
row "JPEG 20 MP" jpg
row "PNG 12 MP" png
row "WebP 20 MP" webp
row "GIF 2 MP" gif
row "AVIF 12 MP" avif
row "HEIC 12 MP" heic
