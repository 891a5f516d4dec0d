#!/usr/bin/env bash
# A full disk on three real nodes (--testing-disk-faults: log writes fail
# with ENOSPC while STORE/TESTING_DISK_FULL exists). First on a follower:
# the cluster keeps serving; then on the leaseholder: the others elect a
# leader and serve again. Each time, once the flag file is gone, the faulted
# node's replica rebuilds itself and catches up WITHOUT a restart (same pid),
# and every acknowledged write is there.
#   disk_full_test.sh MERIDIAN_BIN LOCAL_CLUSTER_SH
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
export MERIDIAN_START_FLAGS="--insecure --clock-source static --static-uncertainty 1ms --testing-disk-faults"
dir=$(mktemp -d /tmp/meridian-diskfull-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
wait_for() { # wait_for SECONDS CMD: a hang guard, not a timing claim
  local n=$(($1 * 10)); shift
  for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.1; done
  return 1
}
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
pid_of() { awk -v i="$1" '$1==i {print $2}' "$dir/nodes"; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
metric() { curl -s --max-time 2 "http://$(http_of "$1")/metrics" | awk -v m="$2" 'index($0,m)==1 {print $2; exit}'; }
applied() { metric "$1" 'meridian_range_applied_slot{range="1"}'; }
all_hosts() { awk '{printf "%s%s", s, $3; s=","}' "$dir/nodes"; }
kv() { "$bin" debug kv "$@" --insecure --timeout 10s; }
acked=0
put() { # put KEY VALUE: records acknowledged writes
  if kv put "$1" "$2" --host "$(all_hosts)" >/dev/null 2>&1; then echo "$1 $2" >>"$dir/acked"; return 0; fi
  return 1
}
caught_up() { # caught_up I J: node I applied as far as node J
  local a b
  a=$(applied "$1"); b=$(applied "$2")
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" -ge "$b" ]
}
: >"$dir/acked"

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
wait_for 60 'L=$(bash "$lc" leader "$dir")' || { echo "FAIL: no leaseholder"; exit 1; }
F=$(awk -v l="$L" '$1!=l {print $1; exit}' "$dir/nodes")
put k0 v0
check "a write before any fault" "[ $? = 0 ]"

# ---- a follower's disk is full ----
fpid=$(pid_of "$F")
touch "$dir/n$F/TESTING_DISK_FULL"
for i in 1 2 3 4 5; do put "f$i" "$i"; done
check "writes go on while follower $F's disk is full" "[ \$(grep -c '^f' '$dir/acked') = 5 ]"
check "... its replica paused (logged)" \
  "wait_for 10 'grep -q \"replica pauses and retries\" \"$dir/n$F/logs/meridian.log\"'"
rm -f "$dir/n$F/TESTING_DISK_FULL"
check "the follower catches up once the disk has room" "wait_for 60 'caught_up $F $L'"
check "... without a restart" "[ \"\$(pid_of $F)\" = $fpid ] && kill -0 $fpid"
check "... and says it rebuilt" "grep -q 'paused replica rebuilt' '$dir/n$F/logs/meridian.log'"

# ---- the leaseholder's disk is full ----
lpid=$(pid_of "$L")
touch "$dir/n$L/TESTING_DISK_FULL"
check "the cluster serves writes again (another leader)" "wait_for 60 'put l1 1'"
N=""
check "a new leaseholder was elected" "wait_for 30 'N=\$(bash \"$lc\" leader \"$dir\") && [ \"\$N\" != $L ]'"
put l2 2
rm -f "$dir/n$L/TESTING_DISK_FULL"
put l3 3
check "the old leaseholder catches up once the disk has room" "wait_for 60 'caught_up $L $N'"
check "... without a restart" "[ \"\$(pid_of $L)\" = $lpid ] && kill -0 $lpid"

# ---- nothing acknowledged was lost ----
lost=0
while read -r k v; do
  got=$(kv get "$k" --host "$(all_hosts)" 2>/dev/null | head -1)
  [ "$got" = "$v" ] || { echo "  $k: want $v, got '$got'"; lost=$((lost + 1)); }
done <"$dir/acked"
check "every acknowledged write ($(wc -l <"$dir/acked")) is readable" "[ $lost = 0 ]"
check "the old leaseholder serves reads" \
  "[ \"\$(kv get l3 --host $(rpc_of "$L") 2>/dev/null | head -1)\" = 3 ]"
bash "$lc" stop "$dir" >/dev/null 2>&1
check "no sanitizer report from any node" \
  "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' '$dir'/n*.out"
grep -h -E -A40 'AddressSanitizer|LeakSanitizer|runtime error:' "$dir"/n*.out | head -80
echo "$fails failed"
[ "$fails" = 0 ]
