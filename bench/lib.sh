# Shared by the render comparisons (compare-vips.sh, compare-sharp.sh, compare-animated.sh): timing one command's
# run with GNU time, and the median of several. Source it; WORK and RUNS must be set.

# Prints "wall_seconds peak_kib user_seconds system_seconds" for one run of the command, or
# "fail" when it exits non-zero (a tool that cannot read the format).
measure() {
  rm -rf "$WORK/out" && mkdir -p "$WORK/out"
  if /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr"; then
    cat "$WORK/time"
  else
    echo fail
  fi
}

# The run with the median wall time of RUNS runs ("fail" if any failed).
median() {
  for _ in $(seq "$RUNS"); do measure "$@"; done |
    sort -n | awk '{a[NR]=$0} /fail/ {f=1} END {print f ? "fail" : a[int((NR+1)/2)]}'
}

# The imgd binary to measure: IMGD_BIN, else a release build with FEATURES.
imgd_binary() {
  local flags=()
  [ -n "${FEATURES:-}" ] && flags=(--features "$FEATURES")
  local bin=${IMGD_BIN:-target/release/imgd}
  # Inside $(...) errexit does not apply: a failed build must fail the caller by status.
  if [ "$bin" = target/release/imgd ]; then
    cargo build --release -q -p imgd "${flags[@]}" >&2 || return 1
  fi
  echo "$bin"
}

# sharp SHARP_VERSION from npm, installed once under CACHE; exports SHARP_MODULE for the node
# scripts and UV_THREADPOOL_SIZE=1 (with sharp.concurrency(1) in them: one thread).
use_sharp() {
  local dir="$CACHE/sharp-$SHARP_VERSION"
  if [ ! -d "$dir/node_modules/sharp" ]; then
    mkdir -p "$dir"
    (cd "$dir" && echo '{"private":true}' >package.json &&
      npm install --silent --no-audit --no-fund "sharp@$SHARP_VERSION" >/dev/null)
  fi
  export SHARP_MODULE="$dir/node_modules/sharp" UV_THREADPOOL_SIZE=1
}
