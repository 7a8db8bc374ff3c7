#!/usr/bin/env bash
# Animated variants, every frame kept: `imgd render --jobs 1` against sharp (`animated: true`,
# one thread: sharp.concurrency(1), UV_THREADPOOL_SIZE=1) on the same files in the same run:
# wall time, peak memory and output size, median of RUNS runs.
#
#   bench/compare-animated.sh
#   IMGD_BIN=/tmp/imgd-before bench/compare-animated.sh
#
# Inputs (bench/animations.py, Pillow, cached in $CACHE): a 480x270 GIF and a 720x405 animated
# WebP of 100 moving photo-like frames each. sharp is installed in $CACHE from npm, as
# bench/compare-sharp.sh does. Needs node and npm, python3 with Pillow, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SHARP_VERSION=${SHARP_VERSION:-0.34.5}
CACHE=${CACHE:-$HOME/.cache/imgd-bench}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=bench/lib.sh
. bench/lib.sh
IMGD=$(imgd_binary)

use_sharp

inputs="$CACHE/animations"
if [ ! -f "$inputs/clip.webp" ]; then
  python3 -c 'import PIL' 2>/dev/null || python3 -m pip install -q pillow
  python3 bench/animations.py "$inputs"
fi

# One row: NAME FILE WIDTH FORMAT (WIDTH 0 keeps the size).
row() {
  local name=$1 file=$2 width=$3 format=$4 options ours theirs ours_bytes theirs_bytes
  options="f=$format"
  [ "$width" != 0 ] && options="w=$width,$options"
  ours=$(median "$IMGD" render --jobs 1 -p "$options" -o "$WORK/out" "$file")
  ours_bytes=$(stat -c %s "$WORK"/out/* 2>/dev/null || echo 0)
  theirs=$(median node bench/sharp-animated.js "$file" "$width" "$format" "$WORK/out/sharp.$format")
  theirs_bytes=$(stat -c %s "$WORK/out/sharp.$format" 2>/dev/null || echo 0)
  awk -v n="$name" -v ours="$ours" -v theirs="$theirs" -v ob="$ours_bytes" -v tb="$theirs_bytes" 'BEGIN {
    split(ours, a, " "); split(theirs, b, " ")
    printf "| %s | %.2f s | %.2f s | **%.2fx** | %.0f MiB | %.0f MiB | **%.2fx** | %.0f KB | %.0f KB |\n",
      n, a[1], b[1], a[1] / b[1], a[2] / 1024, b[2] / 1024, a[2] / b[2], ob / 1000, tb / 1000 }'
}

# imgd keeps the frames only within its budget: check the outputs are animations before timing.
for spec in "w=240,f=webp" "f=webp" "w=240,f=gif"; do
  for file in "$inputs/clip.gif" "$inputs/clip.webp"; do
    rm -rf "$WORK/check" && "$IMGD" render --jobs 1 -p "$spec" -o "$WORK/check" "$file" >/dev/null
    frames=$(python3 -c 'import sys; from PIL import Image; print(Image.open(sys.argv[1]).n_frames)' "$WORK"/check/*)
    if [ "$frames" != 100 ]; then
      echo "imgd rendered $file with $spec as $frames frames, not 100" >&2; exit 1
    fi
  done
done

echo "imgd --jobs 1; sharp $SHARP_VERSION (libvips $(node -p "require('$SHARP_MODULE').versions.vips")), one thread; $(nproc) cores; median of $RUNS runs; 100 frames each"
echo
echo "| animation, every frame kept | imgd | sharp | time ratio | imgd peak RSS | sharp peak RSS | memory ratio | imgd bytes | sharp bytes |"
echo "|---|---|---|---|---|---|---|---|---|"
row "GIF 480x270 -> 240 px WebP" "$inputs/clip.gif" 240 webp
row "WebP 720x405 -> 240 px WebP" "$inputs/clip.webp" 240 webp
row "GIF 480x270 -> WebP, same size" "$inputs/clip.gif" 0 webp
row "WebP 720x405 -> WebP, same size" "$inputs/clip.webp" 0 webp
row "GIF 480x270 -> 240 px GIF" "$inputs/clip.gif" 240 gif
row "WebP 720x405 -> 240 px GIF" "$inputs/clip.webp" 240 gif
