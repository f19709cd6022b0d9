#!/usr/bin/env bash
# The performance table, for Meridian: a fresh `meridian dev up` cluster
# (1 monitor, 3 OSDs, pool `data` of size 3 with 32 PGs, one gateway), the
# rados-bench rows against pool `data` and the S3 rows through the gateway,
# then the peak RSS (VmHWM) of every daemon. Prints a Markdown table with
# the date, machine and commit; the cluster's directory is removed at the
# end, pass or fail. Every row is time-based (rados bench's way), S3 rows
# included, with 16 operations in flight; reads check every byte.
#
#   bench/table.sh [SECONDS]          # 20 s per row by default
#
# Uses target/release/meridian (built here if missing; MERIDIAN_BIN overrides).
# Needs python3 (to read the JSON reports). Run nothing else meanwhile: every
# row shares the machine's cores and disk.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
bin=${MERIDIAN_BIN:-target/release/meridian}
if [[ -z ${MERIDIAN_BIN:-} && ! -x $bin ]]; then
  echo "building the release binary (cargo build --release)..." >&2
  cargo build --release -q
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/meridian-bench.XXXXXX")
cleanup() {
  "$bin" dev down --dir "$dir/c" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

step() { echo "== $*" >&2; }

step "dev up in $dir/c"
"$bin" dev up --dir "$dir/c" --s3-port 0 >"$dir/up.log"
conf="$dir/c/meridian.toml"
m() { "$bin" -c "$conf" "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
endpoint=$(python3 - "$conf" <<'EOF'
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
print("http://" + cfg["gateway"]["0"]["addr"])
EOF
)
user=$(m user info --uid=dev)
export AWS_ACCESS_KEY_ID=$(json_field '["keys"][0]["access_key"]' <<<"$user")
export AWS_SECRET_ACCESS_KEY=$(json_field '["keys"][0]["secret_key"]' <<<"$user")

rows=()
# row NAME UNIT -- bench args...: runs one bench, keeps its figure.
row() {
  local name=$1 unit=$2
  shift 3
  step "$name: meridian bench $*"
  local out
  out=$(m --format json bench "$@")
  local figure
  case $unit in
    MB/s) figure=$(json_field '["bandwidth_mb_s"]' <<<"$out") ;;
    IOPS|ops/s) figure=$(json_field '["iops"]' <<<"$out") ;;
  esac
  local p99
  p99=$(json_field '["p99_latency_s"]' <<<"$out")
  rows+=("$(printf '| %s | %.0f %s | %.1f ms | `meridian bench %s` |' "$name" "$figure" "$unit" "$(python3 -c "print($p99*1000)")" "${*//$endpoint/URL}")")
}

row "4 MiB write" MB/s -- -p data "$secs" write -b 4M -t 16 --no-cleanup
row "4 MiB seq read" MB/s -- -p data "$secs" seq -t 16
row "4 MiB rand read" MB/s -- -p data "$secs" rand -t 16
m cleanup -p data >/dev/null
row "4 KiB write" IOPS -- -p data "$secs" write -b 4K -t 16 --no-cleanup
row "4 KiB seq read" IOPS -- -p data "$secs" seq -t 16
row "4 KiB rand read" IOPS -- -p data "$secs" rand -t 16
m cleanup -p data >/dev/null

rss() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$(cat "$dir/c/run/$1.pid")/status"; }
osd_rss="$(rss osd.0) / $(rss osd.1) / $(rss osd.2) MiB"

row "S3 PUT 4 KiB" ops/s -- --s3 "$endpoint" --bucket bench4k "$secs" write -b 4K -t 16 --no-cleanup
row "S3 GET 4 KiB" ops/s -- --s3 "$endpoint" --bucket bench4k "$secs" seq -t 16
row "S3 PUT 4 MiB" MB/s -- --s3 "$endpoint" --bucket bench4m "$secs" write -b 4M -t 16 --no-cleanup
row "S3 GET 4 MiB" MB/s -- --s3 "$endpoint" --bucket bench4m "$secs" seq -t 16

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), store engines: $(m --format json status | json_field '.get("store_engines")')"
echo
echo "| workload | result | p99 latency | command |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "| OSD peak RSS (osd.0 / 1 / 2, after the rados rows) | $osd_rss | | \`grep VmHWM /proc/PID/status\` |"
echo "| gateway peak RSS (after the S3 rows) | $(rss gateway.0) MiB | | same |"
echo "| monitor peak RSS | $(rss mon.1) MiB | | same |"
