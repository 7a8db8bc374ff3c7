#!/usr/bin/env bash
# Regenerates the README's performance tables from the scripts that measure them: each named
# benchmark runs, and its output replaces what stands between its markers in README.md
# (`<!-- bench: NAME -->` ... `<!-- /bench: NAME -->`), so the README never shows a figure no
# script printed. Commit the result with the machine and date it ran on.
#
#   bench/readme.sh load vips     # the cached-GET and rendering tables
#   bench/readme.sh               # all: load vips forward sharp sharp-shipped animated
#
# Each benchmark needs what its own script says (nginx and wrk; vipsthumbnail; nasm for the
# shipped build; PostgreSQL, Redis and s3s-fs for forward; node, npm and vips for
# sharp, with libheif-dev; the same and Pillow for animated).
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(load vips forward sharp sharp-shipped animated)

run() {
  case "$1" in
    load) bash bench/load.sh ;;
    vips) bash bench/compare-vips.sh ;;
    forward) bash bench/forward.sh ;;
    # With libheif, so that AVIF and HEIC have figures too; JPEG by the default decoder.
    sharp) FEATURES=heif bash bench/compare-sharp.sh ;;
    # The Dockerfile's build.
    sharp-shipped) FEATURES=jpeg-simd,heif bash bench/compare-sharp.sh ;;
    animated) bash bench/compare-animated.sh ;;
    *) echo "unknown benchmark $1 (load, vips, forward, sharp, sharp-shipped, animated)" >&2; exit 2 ;;
  esac
}

for name in "${names[@]}"; do
  grep -q "^<!-- bench: $name -->$" README.md || { echo "README.md has no <!-- bench: $name --> marker" >&2; exit 2; }
  echo "== $name" >&2
  out=$(mktemp)
  {
    echo "<!-- bench: $name -->"
    echo
    echo "\`$(date -u +%Y-%m-%d)\`, $(nproc) cores:"
    echo
    # Blank lines dropped, one put back before each table (markdown needs it there).
    run "$name" | awk 'NF == 0 { next } /^\|/ && !table { print ""; table = 1 } !/^\|/ { table = 0 } { print }'
    echo
    echo "<!-- /bench: $name -->"
  } >"$out"
  python3 - "$name" "$out" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
block = open(path).read().rstrip("\n")
readme = open("README.md").read()
pattern = re.compile(r"^<!-- bench: %s -->$.*?^<!-- /bench: %s -->$" % (re.escape(name), re.escape(name)), re.S | re.M)
if not pattern.search(readme):
    sys.exit("README.md: unclosed bench marker for " + name)
open("README.md", "w").write(pattern.sub(lambda _: block, readme, count=1))
PY
  rm -f "$out"
done
