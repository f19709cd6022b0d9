#!/usr/bin/env bash
# The multi-site sync table, for Meridian: two zones of a fresh
# `meridian dev up --zones 2` (two complete clusters, each 1 monitor + 3 OSDs
# + 1 gateway, on this machine's cores and disk), then:
#   - replication lag A→B of 4 KiB objects PUT at 20, 50, 200 and 1,000 a
#     second, of 1 MiB objects at 5 a second, and B→A at 20 a second (every
#     sampled object polled in the other zone until it serves the same bytes);
#   - the requests two idle, synced zones make of each other in 60 s;
#   - each gateway's peak RSS;
#   - on a second pair of clusters whose gateways do not sync
#     (`-o rgw_run_sync_thread=false`): N objects (10,000 by default) written
#     into zone A, then a `sync agent` for zone B timed until `sync status`
#     says caught up (full sync into a fresh zone), and the agent's peak RSS.
# Prints a Markdown table with the date, machine and commit; every cluster
# directory is removed at the end, pass or fail.
#
#   bench/sync-table.sh [SECONDS [lag|full]]   # 20 s per lag row by default; both parts
#   FULL_SYNC_OBJECTS=10000 bench/sync-table.sh
#
# Uses target/release/meridian (built here if missing; MERIDIAN_BIN overrides).
# Needs python3 and curl. Run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
part=${2:-all}
case $part in all | lag | full) ;; *) echo "part must be lag, full or all, not $part" >&2; exit 2 ;; esac
objects=${FULL_SYNC_OBJECTS:-10000}
bin=${MERIDIAN_BIN:-target/release/meridian}
if [[ -z ${MERIDIAN_BIN:-} && ! -x $bin ]]; then
  echo "building the release binary (cargo build --release)..." >&2
  cargo build --release -q
fi
bin=$(realpath "$bin")
dir=$(mktemp -d "${TMPDIR:-/tmp}/meridian-sync-bench.XXXXXX")
agent_pid=
cleanup() {
  [[ -n $agent_pid ]] && kill "$agent_pid" 2>/dev/null || true
  for c in lag full; do
    [[ -d $dir/$c ]] && "$bin" dev down --dir "$dir/$c" >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

step() { echo "== $*" >&2; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# conf_field CONF EXPR: a value of a cluster's meridian.toml.
conf_field() {
  python3 - "$1" "$2" <<'EOF'
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
print(eval(sys.argv[2], {"cfg": cfg}))
EOF
}
rss_of_pid() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
# requests CONF: zone-to-zone requests its gateway has served so far.
requests() {
  local url
  url="http://$(conf_field "$1" 'cfg["gateway"]["0"]["metrics_addr"]')"
  curl -sf "$url/metrics" | awk '/^meridian_zone_service_requests_total/ {n += $2} END {print n + 0}'
}

rows=()

# --- lag, on zones whose gateways sync -------------------------------------
if [[ $part != full ]]; then
step "dev up --zones 2 in $dir/lag"
"$bin" dev up --zones 2 --dir "$dir/lag" --s3-port 0 >"$dir/lag-up.log"
ca=$dir/lag/zone-a/meridian.toml
cb=$dir/lag/zone-b/meridian.toml
ea="http://$(conf_field "$ca" 'cfg["gateway"]["0"]["addr"]')"
eb="http://$(conf_field "$cb" 'cfg["gateway"]["0"]["addr"]')"
user=$("$bin" -c "$ca" user info --uid=dev)
export AWS_ACCESS_KEY_ID=$(json_field '["keys"][0]["access_key"]' <<<"$user")
export AWS_SECRET_ACCESS_KEY=$(json_field '["keys"][0]["secret_key"]' <<<"$user")

# lag NAME FROM TO -- bench args...: one lag run, kept as a row.
lag() {
  local name=$1 from=$2 to=$3
  shift 4
  step "$name: meridian bench --s3 A --sync B $*"
  local out
  out=$("$bin" -c "$ca" --format json bench --s3 "$from" --sync "$to" --region dev "$@")
  rows+=("$(python3 -c "$lag_row" "$name" "$*" <<<"$out")")
}
lag_row='
import json, sys
r = json.load(sys.stdin)
name, args = sys.argv[1], sys.argv[2]
print(("| {name} | {put_rate:.0f} PUT/s acknowledged, p50 {lag_p50_s:.3f} s, p99 {lag_p99_s:.3f} s, "
       "max {lag_max_s:.3f} s ({samples} sampled, {missing} missing, {errors} errors); "
       "new bucket visible after {new_bucket_visible_s:.3f} s | `meridian bench --s3 $A --sync $B --region dev {args}` |"
       ).format(name=name, args=args, **r))
'
lag "A→B, 4 KiB at 20/s" "$ea" "$eb" -- --bucket lag20 --rate 20 "$secs" write -b 4K -t 64
lag "A→B, 4 KiB at 50/s" "$ea" "$eb" -- --bucket lag50 --rate 50 "$secs" write -b 4K -t 64
lag "A→B, 4 KiB at 200/s" "$ea" "$eb" -- --bucket lag200 --rate 200 "$secs" write -b 4K -t 64
lag "A→B, 4 KiB at 1,000/s" "$ea" "$eb" -- --bucket lag1000 --rate 1000 10 write -b 4K -t 128
lag "A→B, 1 MiB at 5/s" "$ea" "$eb" -- --bucket lag1m --rate 5 "$secs" write -b 1M -t 16
lag "B→A, 4 KiB at 20/s" "$eb" "$ea" -- --bucket lagba --rate 20 "$secs" write -b 4K -t 64

step "idle: 60 s of zone-to-zone requests, after 20 s to settle"
sleep 20
r0=$(( $(requests "$ca") + $(requests "$cb") ))
sleep 60
r1=$(( $(requests "$ca") + $(requests "$cb") ))
rows+=("| requests between the idle, synced zones | $((r1 - r0)) in 60 s (both gateways' \`meridian_zone_service_requests_total\`) | scraped 60 s apart |")
gw_a=$(rss_of_pid "$(cat "$dir/lag/zone-a/run/gateway.0.pid")")
gw_b=$(rss_of_pid "$(cat "$dir/lag/zone-b/run/gateway.0.pid")")
rows+=("| gateway peak RSS after the lag rows | zone A $gw_a MiB, zone B $gw_b MiB | \`grep VmHWM /proc/PID/status\` |")
"$bin" dev down --dir "$dir/lag" >/dev/null
rm -rf "$dir/lag"
fi


# --- full sync into a fresh zone, by a standalone agent ---------------------
if [[ $part != lag ]]; then
step "dev up --zones 2 -o rgw_run_sync_thread=false in $dir/full"
"$bin" dev up --zones 2 --dir "$dir/full" --s3-port 0 -o rgw_run_sync_thread=false >"$dir/full-up.log"
ca=$dir/full/zone-a/meridian.toml
cb=$dir/full/zone-b/meridian.toml
ea="http://$(conf_field "$ca" 'cfg["gateway"]["0"]["addr"]')"
user=$("$bin" -c "$ca" user info --uid=dev)
export AWS_ACCESS_KEY_ID=$(json_field '["keys"][0]["access_key"]' <<<"$user")
export AWS_SECRET_ACCESS_KEY=$(json_field '["keys"][0]["secret_key"]' <<<"$user")
step "write $objects objects of 4 KiB into zone A"
written=$("$bin" -c "$ca" --format json bench --s3 "$ea" --region dev --bucket fullsync 600 write -b 4K -t 16 --max-objects "$objects" --no-cleanup | json_field '["ops"]')
step "sync agent for zone B, until caught up"
start=$(date +%s.%N)
"$bin" -c "$cb" sync agent >"$dir/agent.log" 2>&1 &
agent_pid=$!
agent_rss=0
while :; do
  sleep 0.2
  if ! kill -0 "$agent_pid" 2>/dev/null; then
    echo "the sync agent exited:" >&2
    tail -20 "$dir/agent.log" >&2
    exit 1
  fi
  agent_rss=$(rss_of_pid "$agent_pid")
  status=$("$bin" -c "$cb" --format json sync status 2>/dev/null || true)
  if [[ -n $status ]] && json_field '.get("caught_up")' <<<"$status" 2>/dev/null | grep -qx True; then
    break
  fi
done
end=$(date +%s.%N)
kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
agent_pid=
got=$("$bin" -c "$cb" --format json bucket stats --bucket=fullsync | json_field '["usage"]["rgw.main"]["num_objects"]' 2>/dev/null || echo '?')
rows+=("$(python3 -c "
s = $end - $start
print(f'| full sync of $written objects of 4 KiB into a fresh zone | {s:.1f} s ({$written / s:.0f} objects/s); zone B then holds $got objects in the bucket; agent peak RSS $agent_rss MiB | \`sync agent\` on zone B (gateways with \`rgw_run_sync_thread=false\`), timed until \`sync status\` says caught up |')
")")
fi

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo
echo "| what | result | command |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
