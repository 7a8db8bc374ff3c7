#!/usr/bin/env bash
# Hostile-input suite (tests/hostile) against a live imgd on 127.0.0.1: Pillow's Tests/images and
# generated bombs for every format, the largest variants with every fit, concurrent batches of the
# worst requests and stalled clients. The suite (tests/hostile/run.py) starts `imgd serve` with
# the debug binary on a free port and a fresh data directory, waits for /readyz, restarts it if a
# request kills it (each crash is a failure), stops it at the end and prints the figures: status
# histogram, 5xx, crashes, peak RSS (VmHWM) and `hostile: N passed, M failed`.
#
# Environment: HOSTILE_MAX_RSS_MIB (default 512), HOSTILE_MAX_RESPONSE_BYTES (50000000),
# HOSTILE_REQUEST_TIMEOUT_S (120), HOSTILE_CONN_TIMEOUT_S (60), HOSTILE_DEADLINE_S (2400),
# HOSTILE_GROUPS (bombs,strips,pillow,concurrent,slow), HOSTILE_PILLOW_LIMIT (0 = all),
# HOSTILE_OUT (target/hostile), HOSTILE_IMGD (target/debug/imgd). The Pillow sdist is cached in $HOME/.cache/imgd-hostile.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== hostile-input suite (tests/hostile)"

python3 -m pip install -q -r tests/hostile/requirements.txt 2>&1 | grep -v -i warning || true
# `cargo test --workspace` has built it already; build it (debug) only when missing.
# HOSTILE_BUILD=1 rebuilds it anyway (a local tree whose binary may be stale); HOSTILE_IMGD names
# another binary (a copy that a concurrent build cannot replace mid-run).
imgd="${HOSTILE_IMGD:-target/debug/imgd}"
if [ -z "${HOSTILE_IMGD:-}" ] && { [ ! -x "$imgd" ] || [ "${HOSTILE_BUILD:-0}" = 1 ]; }; then
  cargo build -q -p imgd
fi

out="${HOSTILE_OUT:-$PWD/target/hostile}"
rm -rf "$out"
mkdir -p "$out"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
IMGD_ADMIN_KEY="hostile-admin-key-$(date +%s%N)-$$"
export IMGD_ADMIN_KEY
export IMGD_LOG="${IMGD_LOG:-warn}"
# The suite runs the debug binary that `cargo test` built (no release build in CI): its own
# crates are unoptimised and a 49 MP PNG decode took 35 s here, past the 30 s render budget, a
# 503 that says nothing about a release build. The budget is raised for this binary only; the
# suite is about memory, crashes and codes, not latency.
export IMGD_RENDER__TIMEOUT_SECS="${IMGD_RENDER__TIMEOUT_SECS:-120}"

python3 tests/hostile/run.py --imgd "$imgd" --listen "127.0.0.1:$port" --data-dir "$data" --out "$out" "$@"
