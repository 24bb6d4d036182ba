#!/usr/bin/env bash
# Memory under an argon2 flood: floods the example server (axum, SQLite) on
# 127.0.0.1 with wrong secrets for cold keys for a bounded time and samples
# its resident memory (VmRSS from /proc/<pid>/status) before, during and
# after the flood.
#
#   bash benches/argon2_flood.sh [flood seconds] [keys] [concurrency]
#
# (defaults: 60 s, 300 keys, 32 requests in flight). Every request makes
# the server run argon2 (m = 8 MiB) until the key's failed-attempt budget
# for this address is spent, so the keys are many and the flood goes round
# them. The keys are created through the management API, then the server
# is restarted so that every key is cold. Prints one line per sample and a
# summary: idle RSS, peak RSS during the flood, RSS 5 s after it, the
# requests sent and the argon2-bound statuses seen.
#
# KEYWARD_FLOOD_ROUNDS (default 200) is how many times the request list
# goes round the keys (the flood stops at the time limit anyway).
# KEYWARD_FLOOD_PROFILE=release measures a release build (default: the
# debug build, whose argon2 is slower but allocates the same);
# KEYWARD_FLOOD_BIN=<path> runs that server binary instead of building one
# (to compare builds). Needs curl.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
keys=${2:-300}
conc=${3:-32}
port=${KEYWARD_FLOOD_PORT:-18090}
profile=${KEYWARD_FLOOD_PROFILE:-debug}
addr=127.0.0.1:$port
base=http://$addr

command -v curl >/dev/null || { echo "argon2_flood.sh: curl not found" >&2; exit 1; }
flag=(); [ "$profile" = release ] && flag=(--release)
[ -n "${KEYWARD_FLOOD_BIN:-}" ] || cargo build "${flag[@]}" --example server --features axum,sqlite >/dev/null 2>&1
bin=${KEYWARD_FLOOD_BIN:-target/$profile/examples/server}

tmp=$(mktemp -d)
server=""
stop() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; server=""; }
trap 'stop; rm -rf "$tmp"' EXIT

start() {
  KEYWARD_DATABASE_URL="sqlite://$tmp/flood.db" KEYWARD_ADDR=$addr \
    KEYWARD_ADMIN_CREDENTIALS=$tmp/admin.json RUST_LOG=warn "$bin" >>"$tmp/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "$base/openapi.json" && return 0
    sleep 0.1
  done
  echo "argon2_flood.sh: server did not start" >&2; cat "$tmp/server.log" >&2; exit 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/"$server"/status; }

start
id=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' "$tmp/admin.json")
secret=$(sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p' "$tmp/admin.json")
auth=(-H "x-api-key: $id" -H "x-api-secret: $secret")
: >"$tmp/keys"
for i in $(seq 1 "$keys"); do
  curl -s "${auth[@]}" -H 'content-type: application/json' \
    -d "{\"name\":\"flood $i\",\"permissions\":[\"readApplications\"]}" "$base/apikeys" |
    tee -a "$tmp/created" | grep -o '"id":"kw_[A-Za-z0-9]*"' | tail -1 | cut -d\" -f4 >>"$tmp/keys"
done
[ "$(wc -l <"$tmp/keys")" -eq "$keys" ] || { echo "argon2_flood.sh: key creation failed" >&2; head -c 600 "$tmp/created" >&2; exit 1; }
stop
start # every key cold

# One curl config: each request a flood key with the admin's secret
# (well-formed, wrong for that key), round the keys again and again.
{
  for _ in $(seq 1 "${KEYWARD_FLOOD_ROUNDS:-200}"); do
    while read -r k; do
      printf 'url = "%s/applications"\nheader = "x-api-key: %s"\nheader = "x-api-secret: %s"\noutput = /dev/null\nwrite-out = "%%{http_code}\\n"\nnext\n' \
        "$base" "$k" "$secret"
    done <"$tmp/keys"
  done
} >"$tmp/requests"

idle=$(rss_kib)
echo "idle: ${idle} KiB"
timeout "$secs" stdbuf -oL curl -s --parallel --parallel-max "$conc" -K "$tmp/requests" >"$tmp/codes" 2>/dev/null &
flood=$!
peak=$idle
t=0
while kill -0 "$flood" 2>/dev/null; do
  r=$(rss_kib); [ "$r" -gt "$peak" ] && peak=$r
  echo "flood t=${t}s rss=${r} KiB"
  sleep 1; t=$((t + 1))
done
wait "$flood" 2>/dev/null || true
for s in 1 2 3 4 5; do sleep 1; echo "after t=+${s}s rss=$(rss_kib) KiB"; done
after=$(rss_kib)
echo "requests: $(wc -l <"$tmp/codes") ($(sort "$tmp/codes" | uniq -c | awk '{printf "%s×%s ", $1, $2}'))"
echo "summary: idle ${idle} KiB, peak during ${peak} KiB, 5 s after ${after} KiB (profile $profile, ${secs} s, ${keys} keys, ${conc} in flight)"
