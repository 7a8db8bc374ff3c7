#!/usr/bin/env bash
# Render time and peak memory of `imgd render` against libvips' `vipsthumbnail` on the same
# files, same machine, same run. Each tool processes a batch of 10 files per run, so process
# start-up is amortised; each batch runs RUNS times and the median is reported.
#
#   bench/compare-vips.sh               # default build (libjpeg-turbo's C, no SIMD)
#   FEATURES=jpeg-simd bench/compare-vips.sh   # with libjpeg-turbo's SIMD code (needs nasm)
#   IMGD_BIN=/tmp/imgd-before bench/compare-vips.sh   # another build (before/after a change)
#
# Needs: vipsthumbnail (Debian: libvips-tools), GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
WORK=${WORK:-$(mktemp -d)}
FEATURES=${FEATURES:-}
# Files imgd renders at once. 1 matches vipsthumbnail, which decodes one JPEG at a time.
JOBS=${JOBS:-1}

# shellcheck source=bench/lib.sh
. bench/lib.sh
IMGD=$(imgd_binary)
cargo build --release -q -p imgd-imaging --example bench_images
[ -f "$WORK/in/photo09.png" ] || target/release/examples/bench_images "$WORK/in" 10

compare() {
  local name=$1 inputs=$2 imgd_options=$3 vips_out=$4
  local ours theirs
  # shellcheck disable=SC2086
  ours=$(median "$IMGD" render --jobs "$JOBS" -p "$imgd_options" -o "$WORK/out" $inputs)
  # shellcheck disable=SC2086
  theirs=$(median vipsthumbnail --size 400 -o "$WORK/out/%s.$vips_out" $inputs)
  read -r ours_s ours_kib ours_u ours_k <<<"$ours"
  read -r vips_s vips_kib vips_u vips_k <<<"$theirs"
  awk -v n="$name" -v a="$ours_s" -v b="$vips_s" -v c="$ours_kib" -v d="$vips_kib" \
    -v ou="$ours_u" -v ok="$ours_k" -v vu="$vips_u" -v vk="$vips_k" 'BEGIN {
    e = ou + ok; f = vu + vk
    printf "| %s | %.2f s | %.2f s | **%.2fx** | %.1f s | %.1f s | %.2fx | %.0f MiB | %.0f MiB | **%.2fx** |\n",
      n, a, b, a / b, e, f, e / f, c / 1024, d / 1024, c / d }'
}

echo "imgd build: ${FEATURES:-default}, --jobs $JOBS; vips $(vips --version | head -1); $(nproc) cores; median of $RUNS runs of a batch of 10"
echo
echo "| batch of 10 | imgd wall | vips wall | wall ratio | imgd CPU | vips CPU | CPU ratio | imgd peak RSS | vips peak RSS | memory ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"
compare "20 MP JPEG -> 400 px JPEG q80" "$WORK/in/*.jpg" "w=400,f=jpeg,q=80" "jpg[Q=80]"
compare "20 MP JPEG -> 400 px WebP q80" "$WORK/in/*.jpg" "w=400,f=webp,q=80" "webp[Q=80]"
compare "12 MP PNG -> 400 px WebP q80" "$WORK/in/*.png" "w=400,f=webp,q=80" "webp[Q=80]"
