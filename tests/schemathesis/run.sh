#!/usr/bin/env bash
# Schemathesis against the example server's served /openapi.json (axum,
# embedded SQLite in a temp dir): every operation but the endless event
# stream, with every check but `ignored_auth` (the API answers a wrong
# credential with the same 401 whatever the operation, which that check
# cannot tell from an ignored one).
#
#   tests/schemathesis/run.sh [seconds]        # default 120
#
# Installs schemathesis (pip, user site) when `st` is missing. Exits non-zero
# on any failure. Needs the example built: cargo build --examples --all-features
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
seconds=${1:-120}
if ! command -v st >/dev/null 2>&1; then
  timeout 600 python3 -m pip install -q --user schemathesis
  export PATH="$HOME/.local/bin:$PATH"
fi
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
KEYWARD_DATABASE_URL="sqlite://$dir/keyward.db" KEYWARD_ADDR="127.0.0.1:$port" \
  KEYWARD_ADMIN_CREDENTIALS="$dir/admin.json" RUST_LOG=warn \
  "$repo/target/debug/examples/server" >"$dir/server.out" 2>"$dir/server.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  [ -s "$dir/admin.json" ] && curl -sf "http://127.0.0.1:$port/openapi.json" -o /dev/null && break
  sleep 0.2
done
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$dir/admin.json")
secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret"])' "$dir/admin.json")
# A full-permission key of the admin account, presented in its single-string
# form as a bearer credential (one header, so generated requests never mix
# two credential forms).
key=$(curl -sf -X POST "http://127.0.0.1:$port/apikeys" -H "x-api-key: $id" -H "x-api-secret: $secret" \
  -H 'content-type: application/json' -d '{"name":"schemathesis"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
cd "$here"
st --config-file "$here/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
  -H "Authorization: Bearer $key" --max-time "$seconds" -w 1 \
  --exclude-path-regex 'stream' --phases examples,coverage,fuzzing \
  --checks all --exclude-checks ignored_auth
