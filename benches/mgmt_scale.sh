#!/usr/bin/env bash
# Management requests at scale: populate a store through keyward's store
# methods (examples/mgmt_populate.rs), then p50/p99 of each management
# request through the release example server (benches/mgmt_scale.py).
#
#   bash benches/mgmt_scale.sh sqlite|postgres [keys] [events] [children] [samples]
#
# Defaults: 1,000,000 keys, 100,000 events on one key, 1,000 child
# accounts, 200 samples per request. KEYWARD_BENCH_PROFILE=dev measures
# the dev build instead of the release build (when a release build does
# not fit; its figures are upper bounds). The database is made fresh in
# target/mgmt_scale/ (SQLite) or as database `keyward_scale_<keys>`
# (PostgreSQL at $KEYWARD_BENCH_PG, default postgres://postgres@127.0.0.1:5432),
# and kept: a second run with the same arguments skips the populate step.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-sqlite}
keys=${2:-1000000}
events=${3:-100000}
children=${4:-1000}
samples=${5:-200}
addr=127.0.0.1:${KEYWARD_BENCH_PORT:-18090}
dir=target/mgmt_scale/$kind-$keys-$events-$children${KEYWARD_BENCH_PROFILE:+-$KEYWARD_BENCH_PROFILE}
mkdir -p "$dir"
case $kind in
  sqlite) url="sqlite://$PWD/$dir/keyward.db" ;;
  postgres)
    pg=${KEYWARD_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
    db=keyward_scale_${keys}_${events}_${children}
    url="$pg/$db"
    if [ ! -f "$dir/populate.log" ]; then
      psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
      # The populate step's million single-key transactions would each
      # wait for a WAL flush; the measured requests only read.
      psql "$pg/postgres" -qc "ALTER DATABASE $db SET synchronous_commit = off"
    fi ;;
  *) echo "usage: mgmt_scale.sh sqlite|postgres [keys] [events] [children] [samples]" >&2; exit 2 ;;
esac

profile=${KEYWARD_BENCH_PROFILE:-release}
cargo build --profile "$profile" --features axum,sqlite,postgres --example server --example mgmt_populate
bin=target/$([ "$profile" = dev ] && echo debug || echo "$profile")/examples

server_pid=
start_server() {
  KEYWARD_DATABASE_URL=$url KEYWARD_ADDR=$addr KEYWARD_ADMIN_CREDENTIALS=$PWD/$dir/admin.json \
    RUST_LOG=warn "$bin/server" >"$dir/server.out" 2>"$dir/server.err" &
  server_pid=$!
  for _ in $(seq 1 300); do
    curl -sf "http://$addr/openapi.json" -o /dev/null && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$dir/server.err" >&2; exit 1
}
stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap stop_server EXIT

if [ ! -f "$dir/populate.log" ]; then
  rm -f "$dir"/keyward.db* "$dir/admin.json"
  start_server   # first start: admin account and key
  stop_server
  start=$(date +%s)
  KEYWARD_DATABASE_URL=$url "$bin/mgmt_populate" "$keys" "$events" "$children" | tee "$dir/populate.tmp"
  echo "populate: $(( $(date +%s) - start )) s" | tee -a "$dir/populate.tmp"
  # The state autovacuum reaches soon after a bulk load: statistics for
  # the planner, the GIN index's pending list merged.
  if [ "$kind" = postgres ]; then
    psql "$url" -qc "VACUUM ANALYZE"
    psql "$pg/postgres" -qc "ALTER DATABASE $db RESET synchronous_commit"
  fi
  mv "$dir/populate.tmp" "$dir/populate.log"
fi
start_server
echo "## $kind: $keys keys, $events events on one key, $children child accounts ($(nproc) cores, $(date -u +%F))"
python3 benches/mgmt_scale.py "$addr" "$dir/admin.json" "$dir/populate.log" "$samples"
