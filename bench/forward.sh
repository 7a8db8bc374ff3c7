#!/usr/bin/env bash
# The owner-routing path: a cached variant fetched from a node that does not own it (which
# forwards to the owner and relays the bytes) against the owner serving it directly, same
# machine, same run. Two nodes over PostgreSQL, an s3s-fs S3 server and Redis, each node on its
# own core; wrk always shares the core of the node it asks (the owner's when direct, the
# non-owner's when relayed), so the ratio is what the hop costs the node that takes it. (Until
# 2026-12 wrk sat on the non-owner's core in both cases, which gave the direct case a core of its
# own for the load generator and charged wrk's share to the relay alone.)
#
#   bench/forward.sh              DURATION=5s ROUNDS=3 CONNS=1 and CONNS=16 by default
#   IMGD_BIN=/tmp/imgd-before bench/forward.sh    another build, same run conditions
#
# Needs: PostgreSQL and Redis on 127.0.0.1 (as on the CI machine), s3s-fs (see .ci/run), wrk,
# curl, taskset, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d)
RUN="bench$$"
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# IMGD_BIN measures another build (an earlier commit's, to compare before and after a change).
IMGD_BIN=${IMGD_BIN:-target/release/imgd}
[ "$IMGD_BIN" = target/release/imgd ] && cargo build --release -q -p imgd
cargo build --release -q -p imgd-imaging --example bench_images
target/release/examples/bench_images "$WORK/in" 1

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  psql "$PGURL/postgres" -q -c "DROP DATABASE IF EXISTS $RUN" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql "$PGURL/postgres" -q -c "CREATE DATABASE $RUN"
S3_PORT=$(free_port)
mkdir -p "$WORK/s3/bench"
s3s-fs --host 127.0.0.1 --port "$S3_PORT" --access-key bench --secret-key bench-secret "$WORK/s3" >"$WORK/s3.log" 2>&1 &
PIDS+=($!)

start_node() { # id port core
  env IMGD_DATABASE_URL="$PGURL/$RUN" IMGD_STORE=s3://bench IMGD_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" \
    IMGD_S3_PATH_STYLE=true AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret \
    IMGD_REDIS_URL=redis://127.0.0.1:6379/ IMGD_CLUSTER__NAMESPACE="$RUN" IMGD_CLUSTER_SECRET=bench-cluster-secret-0123 \
    IMGD_NODE_ID="$1" IMGD_ADMIN_KEY=bench-admin-key-0123456789 IMGD_SECRET_KEY="$(printf %064d 0)" IMGD_DATA_DIR="$WORK/$1" IMGD_LOG=warn TOKIO_WORKER_THREADS=1 \
    IMGD_LISTEN="127.0.0.1:$2" taskset -c "$3" "$IMGD_BIN" serve >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
}
A_PORT=$(free_port); B_PORT=$(free_port)
start_node node-a "$A_PORT" 0
start_node node-b "$B_PORT" 1
for port in "$A_PORT" "$B_PORT"; do
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" | grep -q '"node-a","node-b"' && break; sleep 0.2; done
done
ID=$(curl -fs -H 'Authorization: Bearer bench-admin-key-0123456789' --data-binary @"$WORK/in/photo00.jpg" \
  "http://127.0.0.1:$A_PORT/v1/images" | sed -E 's/.*"id":"([0-9a-f]+)".*/\1/')

# Find a variant each node owns... one is enough: ask A, read who served it.
OPTS="w=400,f=webp"
OWNER=$(curl -fs -o /dev/null -D - "http://127.0.0.1:$A_PORT/i/$ID/$OPTS" | awk 'tolower($1) == "x-imgd-node:" {print $2}' | tr -d '\r')
if [ "$OWNER" = node-a ]; then DIRECT=$A_PORT; VIA=$B_PORT; OWNER_CORE=0; else DIRECT=$B_PORT; VIA=$A_PORT; OWNER_CORE=1; fi
VIA_CORE=$((1 - OWNER_CORE))
DIRECT_URL="http://127.0.0.1:$DIRECT/i/$ID/$OPTS"
VIA_URL="http://127.0.0.1:$VIA/i/$ID/$OPTS"
curl -fs -o /dev/null -D - "$VIA_URL" | grep -qi "x-imgd-forwarded-by" || { echo "the non-owner did not forward" >&2; exit 1; }
BYTES=$(curl -fs "$DIRECT_URL" | wc -c)

measure() { # url conns core -> "req/s p50"
  taskset -c "$3" wrk -t1 -c"$2" -d"$DURATION" --latency "$1" |
    awk '/Requests\/sec/ {rps = $2} $1 == "50%" {p50 = $2} END {print rps, p50}'
}
to_us() { awk '{v = $1; if (v ~ /us$/) {sub(/us/, "", v); print v} else if (v ~ /ms$/) {sub(/ms/, "", v); print v * 1000} else {sub(/s/, "", v); print v * 1000000}}'; }
median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

echo "owner $OWNER; variant $OPTS ($BYTES bytes, in the owner's memory cache); wrk -d$DURATION on the core of the node it asks, median of $ROUNDS alternating rounds"
echo
echo "| wrk connections | owner direct | via non-owner | p50 latency ratio | throughput ratio |"
echo "|---|---|---|---|---|"
for CONNS in 1 16; do
  direct_rps=(); via_rps=(); direct_p50=(); via_p50=()
  for _ in $(seq "$ROUNDS"); do
    read -r rps p50 < <(measure "$DIRECT_URL" "$CONNS" "$OWNER_CORE"); direct_rps+=("$rps"); direct_p50+=("$(echo "$p50" | to_us)")
    read -r rps p50 < <(measure "$VIA_URL" "$CONNS" "$VIA_CORE"); via_rps+=("$rps"); via_p50+=("$(echo "$p50" | to_us)")
  done
  d_rps=$(printf '%s\n' "${direct_rps[@]}" | median); v_rps=$(printf '%s\n' "${via_rps[@]}" | median)
  d_p50=$(printf '%s\n' "${direct_p50[@]}" | median); v_p50=$(printf '%s\n' "${via_p50[@]}" | median)
  printf '| %s | %.0f req/s, p50 %.0f us | %.0f req/s, p50 %.0f us | %.2fx | %.2fx |\n' \
    "$CONNS" "$d_rps" "$d_p50" "$v_rps" "$v_p50" "$(echo "$v_p50 $d_p50" | awk '{print $1 / $2}')" "$(echo "$v_rps $d_rps" | awk '{print $1 / $2}')"
done
