#!/usr/bin/env bash
# schemathesis (PyPI) against a live imgd on the embedded default (SQLite + local disk), with
# every check (schemathesis.toml at the repository root says which, and why two operations skip
# one). Exits non-zero on any failure: a 5xx, a response outside the schema, an undocumented
# status, accepted invalid input. Prints the number of generated cases.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q 'schemathesis>=4.3,<5' 2>&1 | grep -v -i warning || true
# `cargo test --workspace` has built it already; `cargo build` would build it again (without the
# dev-dependencies' features it resolves tokio differently and rebuilds the tree under it).
# SCHEMATHESIS_BUILD=1 builds anyway (a local tree whose binary may be stale).
if [ ! -x target/debug/imgd ] || [ "${SCHEMATHESIS_BUILD:-0}" = 1 ]; then
  cargo build -q -p imgd
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
key="schemathesis-admin-key-$(date +%s%N)"
IMGD_ADMIN_KEY="$key" target/debug/imgd serve --listen "127.0.0.1:$port" --data-dir "$data" \
  >"$data/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
st run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $key" \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --workers 1 \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  | tee "$data/st.log"
status=${PIPESTATUS[0]}
if grep -q "panicked" "$data/server.log"; then
  echo "the server panicked during schemathesis" >&2
  status=1
fi
grep -E "generated" "$data/st.log" | tail -1 | sed 's/^ */schemathesis: /'
exit "$status"
