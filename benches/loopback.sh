#!/usr/bin/env bash
# Loopback HTTP benchmark: the demo route with no authentication against the
# same route behind keyward, in the same run, with wrk.
#
#   bash benches/loopback.sh [rounds] [seconds per run] [baseline route] [routes...]
#
# (defaults: 50 rounds of 1 s, /plain against /authorized and /keyward; the
# example servers' demo route is /demo/plain, /demo/authorized, /demo/keyward)
#
# Starts `benches/http.rs` in serve mode on one thread pinned to CPU 0 and
# runs wrk pinned to CPU 1 (unpinned, the scheduler sometimes puts both on
# one vCPU and the same route moves between regimes ±40 % apart), on each
# route in turn, in a rotated order each round. For every run it prints
# the requests per second and the server's CPU time per request (from
# /proc/<pid>/task/*/schedstat, in ns); at the end, per route, the median
# of the rounds and the median of the per-round ratios to the baseline
# (each ratio compares runs seconds apart, so the machine's drift between
# rounds cancels), with a distribution-free 95 % confidence interval of
# that median. Needs wrk (`apt-get install wrk`) and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-50}
secs=${2:-1}
addr=127.0.0.1:${KEYWARD_BENCH_PORT:-18080}
shift $(( $# < 2 ? $# : 2 ))
routes=("$@")
[ ${#routes[@]} -ge 2 ] || routes=(/plain /authorized /keyward)
n_routes=${#routes[@]}

command -v wrk >/dev/null || { echo "loopback.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }

cargo bench --bench http --features axum --no-run >/dev/null 2>&1
out=$(mktemp)
KEYWARD_BENCH_THREADS=1 KEYWARD_BENCH_SERVE=$addr \
  taskset -c "${KEYWARD_BENCH_SERVER_CPU:-0}" cargo bench --bench http --features axum >"$out" 2>/dev/null &
runner=$!
trap 'pkill -P $runner 2>/dev/null; kill $runner 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 100); do grep -q '^bearer:' "$out" && break; sleep 0.1; done
key=$(sed -n 's/^x-api-key: //p' "$out")
secret=$(sed -n 's/^x-api-secret: //p' "$out")
server=$(pgrep -P "$runner" -f http- | head -1)
[ -n "$key" ] && [ -n "$server" ] || { echo "loopback.sh: server did not start" >&2; cat "$out" >&2; exit 1; }

# The server's CPU time so far, in ns, over all its threads.
cpu_ns() { cat /proc/"$server"/task/*/schedstat | awk '{s += $1} END {print s}'; }

run() { # route -> "requests/s cpu-ns-per-request"
  local c0 c1 res
  c0=$(cpu_ns)
  res=$(taskset -c "${KEYWARD_BENCH_WRK_CPU:-1}" wrk -t1 -c32 -d"${secs}s" -H "x-api-key: $key" -H "x-api-secret: $secret" \
    "http://$addr$1" | awk '/^Requests\/sec/ {r=$2} /requests in/ {n=$1} END {print r, n}')
  c1=$(cpu_ns)
  read -r rps n <<<"$res"
  echo "$rps $(( (c1 - c0) / n ))"
}

for r in "${routes[@]}"; do run "$r" >/dev/null; done # warm-up
# KEYWARD_BENCH_RESULTS=<file> keeps the rounds in that file and
# summarises everything in it: several runs with the same file pool
# their rounds (the README's figures).
results=${KEYWARD_BENCH_RESULTS:-$(mktemp)}
touch "$results"
offset=$(awk '$1 > m { m = $1 } END { print m + 0 }' "$results")
for i in $(seq 1 "$rounds"); do
  # Rotate the order so that no route always runs first or last.
  for j in $(seq 0 $(( n_routes - 1 ))); do
    r=${routes[$(( (i + j) % n_routes ))]}
    read -r rps ns <<<"$(run "$r")"
    printf 'round %2d  %-12s %10s req/s  %6s ns CPU/request\n' "$i" "$r" "$rps" "$ns"
    echo "$(( offset + i )) $r $rps $ns" >>"$results"
  done
done

echo
awk -v routes="${routes[*]}" '
  { rps[$1, $2] = $3; ns[$1, $2] = $4; if ($1 > n) n = $1 }
  function sort(a, k,   i, j, t) {
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  }
  function median(a, k) {
    sort(a, k)
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  # Distribution-free 95 % confidence interval of the median: order
  # statistics n/2 -+ 0.98 sqrt(n) of the sorted sample.
  function ci(a, k,   lo, hi) {
    sort(a, k)
    lo = int(k / 2 - 0.98 * sqrt(k)); hi = int(k / 2 + 1 + 0.98 * sqrt(k) + 0.999)
    if (lo < 1) lo = 1; if (hi > k) hi = k
    return sprintf("[%+.1f, %+.1f]", 100 * a[lo], 100 * a[hi])
  }
  END {
    k = split(routes, rt, " ")
    base = rt[1]
    printf "%-18s %10s %10s %16s %10s %10s %16s\n", "route", "req/s", "vs base", "95% CI", "ns CPU", "vs base", "95% CI"
    for (q = 1; q <= k; q++) {
      r = rt[q]
      for (i = 1; i <= n; i++) { a[i] = rps[i, r]; b[i] = rps[i, r] / rps[i, base] - 1
                                 c[i] = ns[i, r]; d[i] = ns[i, r] / ns[i, base] - 1 }
      mb = median(b, n); bci = ci(b, n); md = median(d, n); dci = ci(d, n)
      printf "%-18s %10.0f %+9.1f%% %16s %10.0f %+9.1f%% %16s\n", r, median(a, n), 100 * mb, bci, median(c, n), 100 * md, dci
    }
  }' "$results"
[ -n "${KEYWARD_BENCH_RESULTS:-}" ] || rm -f "$results"
