#!/usr/bin/env bash
# Regenerate the golden CRUSH vectors in this directory with Ceph's own
# tools, so tests/golden.rs can check meridian-crush bit for bit without
# needing Ceph at test time.
#
# Needs `crushtool` and `osdmaptool` (Debian: `apt-get install ceph-base`;
# the checked-in vectors were made with Ceph 16.2.15, Debian bookworm).
#
# What is recorded (all under golden/):
#   <map>.decompiled.txt   `crushtool -c maps/<map>.txt` then `crushtool -d`:
#                          the map exactly as crushtool sees it (shadow ids
#                          for device classes included). The tests parse
#                          maps/<map>.txt *and* this file and require
#                          text::format to reproduce it byte for byte.
#   <map>.bin              the compiled binary map (Ceph's encoding).
#   <map>.recompiled.txt   the decompiled text compiled and decompiled
#                          again (3-decimal weights can drift by 0.001).
#   <map>.r<R>.n<N>[.<tag>].mappings
#                          crushtool -i <map>.bin --test --show-mappings
#                            --rule R --num-rep N --min-x 0 --max-x 1023
#                            [--weight OSD W ...]
#                          A "# weights:" header lists the --weight pairs.
#   builder.steps.txt      builder_ops.txt replayed with crushtool
#                          (--add-item, --set-subtree-class HOST CLASS
#                          --reweight then --rebuild-class-roots, --create-replicated-rule,
#                          --reweight-item, --remove-item), the decompiled
#                          map after every step.
#   builder.bin            the final builder map, binary.
#   builder.r<R>.n3.mappings  mappings of the final builder map.
#   osdmap-<name>.objects  osdmaptool <osdmap> --mark-up-in
#                            --test-map-object NAME --pool 1
#                          for every name in objects.txt.
#   osdmap-<name>.pgs      osdmaptool <osdmap> --mark-up-in
#                            --test-map-pgs-dump --pool 1
#   The osdmaps are `osdmaptool --createsimple 12 --with-default-pool`
#   (pool 1 'rbd', replicated size 3, crush_rule 0) with the crush map
#   replaced by `--import-crush`:
#     osdmap-hashpspool: racks map, pg_num = pgp_num = 768, hashpspool
#     osdmap-legacy:     racks map, --pg-bits 5 --pgp-bits 4 (pg_num 384,
#                        pgp_num 192), --osd_pool_default_flag_hashpspool=false
#     osdmap-classes:    classes map (16 OSDs), pg_num 1024 (--pg-bits 6
#                        over 16 OSDs), hashpspool
#   A "# pool:" header records pg_num/pgp_num/hashpspool from --print.
set -euo pipefail
cd "$(dirname "$0")"

for tool in crushtool osdmaptool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "regen.sh: $tool not found; install Debian's ceph-base" >&2
    exit 1
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p golden
rm -f golden/*

version=$(dpkg-query -W -f='${Version}' ceph-base 2>/dev/null || echo unknown)
echo "ceph-base $version" > golden/VERSION

# record MAP RULE NUMREP [TAG OSD WEIGHT [OSD WEIGHT ...]]
record() {
  local map=$1 rule=$2 nrep=$3
  shift 3
  local tag="" args=() pairs=""
  if [ $# -gt 0 ]; then
    tag=".$1"
    shift
    while [ $# -gt 0 ]; do
      args+=(--weight "$1" "$2")
      pairs="$pairs $1=$2"
      shift 2
    done
  fi
  local out="golden/$map.r$rule.n$nrep$tag.mappings"
  {
    echo "# crushtool -i $map.bin --test --show-mappings --rule $rule --num-rep $nrep --min-x 0 --max-x 1023 ${args[*]:-}"
    echo "# weights:$pairs"
    crushtool -i "$tmp/$map.bin" --test --show-mappings --rule "$rule" \
      --num-rep "$nrep" --min-x 0 --max-x 1023 "${args[@]}" 2>&1
  } > "$out"
}

for map in flat racks weighted classes legacy big builder_start; do
  crushtool -c "maps/$map.txt" -o "$tmp/$map.bin"
  cp "$tmp/$map.bin" "golden/$map.bin"
  crushtool -d "$tmp/$map.bin" -o "golden/$map.decompiled.txt"
  # Text keeps 3 decimals, so recompiling crushtool's own output can move
  # a printed bucket weight by 0.001; record that too.
  crushtool -c "golden/$map.decompiled.txt" -o "$tmp/$map.re.bin"
  crushtool -d "$tmp/$map.re.bin" -o "golden/$map.recompiled.txt"
done

# flat: 12 equal OSDs
record flat 0 1
record flat 0 3
record flat 0 12
record flat 0 13
record flat 1 4
record flat 1 6
record flat 2 3
record flat 0 3 out 3 0 7 0.5 11 0.25

# racks: 3 racks x 2 hosts x 2 OSDs
for r in 0 1 2 3 4 5; do record racks $r 3; done
record racks 0 6
record racks 1 4
record racks 2 4
record racks 3 6
record racks 4 6
record racks 0 3 out 0 0 5 0 6 0.5 11 0.25
record racks 1 3 out 0 0 5 0 6 0.5 11 0.25
record racks 3 6 out 0 0 5 0 6 0.5 11 0.25
record racks 4 6 out 2 0 3 0
record racks 0 3 rackdown 4 0 5 0 6 0 7 0

# weighted: uneven hosts and weights
record weighted 0 3
record weighted 0 5
record weighted 1 3
record weighted 2 5
record weighted 0 3 out 3 0 6 0.8

# classes: hdd/ssd with shadow trees
for r in 0 1 2 3 4; do record classes $r 3; done
record classes 1 4
record classes 1 3 out 3 0 9 0.5

# legacy tunables (local retries and permutation fallback)
record legacy 0 3
record legacy 1 3
record legacy 2 3
record legacy 0 3 out 1 0 4 0 5 0.5
record legacy 1 3 out 1 0 4 0 5 0.5
record legacy 1 8 out 1 0 4 0

# big: 2 dc x 3 racks x 4 hosts x 3 OSDs, classes
record big 0 3
record big 1 3
record big 2 4
record big 3 3
record big 4 11
record big 5 3
record big 0 3 out 0 0 10 0 20 0.5 30 0 40 0.1 50 0.9

# Monitor-style edits replayed with crushtool.
cp "$tmp/builder_start.bin" "$tmp/builder.bin"
step=0
{
  echo "### step 0: start"
  crushtool -d "$tmp/builder.bin"
} > golden/builder.steps.txt
while read -r op a b c d; do
  case "$op" in ''|'#'*) continue ;; esac
  case "$op" in
    add)
      loc=()
      host=""
      IFS=',' read -ra parts <<< "$d"
      for p in "${parts[@]}"; do
        loc+=(--loc "${p%%=*}" "${p#*=}")
        if [ "${p%%=*}" = host ]; then host=${p#*=}; fi
      done
      crushtool -i "$tmp/builder.bin" --add-item "$a" "$b" "osd.$a" "${loc[@]}" \
        -o "$tmp/builder.bin" >/dev/null
      if [ "$c" != "-" ]; then
        # --set-subtree-class is not an "action" on its own; --reweight is
        # a no-op here (bucket weights are already sums) that makes it one.
        # Both rebuild the shadow trees *before* the class is set, hence
        # the separate --rebuild-class-roots.
        crushtool -i "$tmp/builder.bin" --set-subtree-class "$host" "$c" --reweight \
          -o "$tmp/builder.bin" >/dev/null
        crushtool -i "$tmp/builder.bin" --rebuild-class-roots \
          -o "$tmp/builder.bin" >/dev/null
      fi
      ;;
    rule)
      cls=()
      if [ "$d" != "-" ]; then cls=(--device-class "$d"); fi
      crushtool -i "$tmp/builder.bin" --create-replicated-rule "$a" "$b" "$c" "${cls[@]}" \
        -o "$tmp/builder.bin" >/dev/null
      ;;
    reweight)
      crushtool -i "$tmp/builder.bin" --reweight-item "osd.$a" "$b" \
        -o "$tmp/builder.bin" >/dev/null
      ;;
    remove)
      crushtool -i "$tmp/builder.bin" --remove-item "osd.$a" \
        -o "$tmp/builder.bin" >/dev/null
      ;;
    *) echo "regen.sh: unknown op $op" >&2; exit 1 ;;
  esac
  step=$((step + 1))
  {
    echo "### step $step: $op $a $b $c $d"
    crushtool -d "$tmp/builder.bin"
  } >> golden/builder.steps.txt
done < builder_ops.txt
cp "$tmp/builder.bin" golden/builder.bin
for r in 0 1 2 3 4; do record builder $r 3; done

# Object -> PG -> OSDs through a real OSDMap.
osdmap() {
  local name=$1 crushmap=$2 nosd=$3
  shift 3
  local om="$tmp/osdmap-$name.bin"
  osdmaptool --createsimple "$nosd" "$om" --with-default-pool --clobber "$@" >/dev/null 2>&1
  osdmaptool "$om" --import-crush "$tmp/$crushmap.bin" >/dev/null 2>&1
  local pool
  pool=$(osdmaptool "$om" --print 2>/dev/null | grep "^pool 1 ")
  {
    echo "# osdmaptool --createsimple $nosd --with-default-pool $* ; --import-crush $crushmap.bin"
    echo "# pool: $pool"
    echo "# crushmap: $crushmap"
    while read -r obj; do
      [ -n "$obj" ] || continue
      osdmaptool "$om" --mark-up-in --test-map-object "$obj" --pool 1 2>/dev/null | grep "object '"
    done < objects.txt
  } > "golden/osdmap-$name.objects"
  {
    echo "# osdmaptool --createsimple $nosd --with-default-pool $* ; --import-crush $crushmap.bin ; --mark-up-in --test-map-pgs-dump --pool 1"
    echo "# pool: $pool"
    echo "# crushmap: $crushmap"
    osdmaptool "$om" --mark-up-in --test-map-pgs-dump --pool 1 2>/dev/null | grep -E '^1\.[0-9a-f]+\s'
  } > "golden/osdmap-$name.pgs"
}
osdmap hashpspool racks 12
osdmap legacy racks 12 --pg-bits 5 --pgp-bits 4 --osd_pool_default_flag_hashpspool=false
osdmap classes classes 16

echo "regen.sh: wrote $(ls golden | wc -l) files to golden/"
