#!/usr/bin/env bash
# Many ranges on three real nodes (docs/ranges.md): range 1 is split several
# times at user keys while a background writer records every acknowledged
# write; the leaseholder of a new range is killed (-9) mid-load and restarted;
# a node that is down during a split catches the new range up when it
# returns; a node that crashes inside a split (before and after the store
# split, MERIDIAN_TESTING_SPLIT_CRASH) recovers it at restart. At the end
# every acknowledged write is read back exactly once by one scan across all
# ranges, the directory covers the key space exactly once and agrees with
# what the nodes host, and every node hosts every range. Bad split requests
# get clear errors; a repeated split is harmless. Every process is stopped
# by PID.
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
ulimit -c 0 # the crash points abort(): no core files
dir=$(mktemp -d /tmp/meridian-ranges-XXXXXX)
writer_pid=""
cleanup() {
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null && wait "$writer_pid" 2>/dev/null
  bash "$lc" stop "$dir" >/dev/null 2>&1
  [ -n "${MERIDIAN_TEST_KEEP:-}" ] && { echo "kept $dir"; return; } # debugging a failure
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
wait_for() { local n=$(( $1 * 10 )); shift; for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.1; done; return 1; }
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
metric() { curl -s --max-time 2 "http://$(http_of "$1")/metrics" | awk -v m="$2" 'index($0,m)==1 {print $2; exit}'; }
all() { echo "$(rpc_of 1),$(rpc_of 2),$(rpc_of 3)"; }
up() { bash "$lc" status "$dir" | awk '$3=="up" {printf "%s%s", s, $4; s=","}'; }
put() { "$bin" debug kv put "$1" "$2" --insecure --host "$(up)" --timeout 60s >/dev/null 2>&1 && echo "$1=$2" >>"$dir/acked"; }
acked() { wc -l <"$dir/acked"; }
split() { "$bin" debug split --key "$1" --insecure --host "$(up)" --timeout 60s >>"$dir/splits.out" 2>&1; }
ranges_json() { "$bin" debug ranges --host "$(up | cut -d, -f1)" --insecure --format json 2>/dev/null; }
# range_of KEY FIELD: FIELD (range, leaseholder, ...) of the range holding KEY, per the nodes
range_of() {
  ranges_json | python3 -c '
import json, sys
key, field = sys.argv[1], sys.argv[2]
for r in json.load(sys.stdin):
    s = "" if r["start"] == "-inf" else r["start"]
    e = None if r["end"] == "+inf" else r["end"]
    if s <= key and (e is None or key < e):
        print(r[field])' "$1" "$2"
}
# writer: puts w00001, w00002, ... until $dir/stop exists
writer() {
  local i=0
  while [ ! -e "$dir/stop" ]; do
    i=$((i+1))
    put "$(printf 'w%05d' "$i")" "v$i"
  done
}
grow() { # grow N: wait for N more acknowledged writes
  local want=$(( $(acked) + $1 ))
  wait_for 120 '[ "$(acked)" -ge '"$want"' ]'
}

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
: >"$dir/acked"
for k in a1 a2 m1 m2 q1 z1 z2; do put "$k" "p$k"; done
check "seed writes acknowledged" "[ \"\$(acked)\" = 7 ]"

writer & writer_pid=$!
check "the writer makes progress" "grow 20"

# Split range 1 at user keys while the writer runs, ahead of and behind it.
check "split at m" "split m"
check "split at w00040" "split w00040"
check "the writer goes on across the split" "grow 20"
ahead=$(printf 'w%05d' $(( $(acked) + 60 )))
check "split at $ahead (ahead of the writer)" "split $ahead"
check "split at z" "split z"
check "the writer goes on" "grow 20"
nr=$(ranges_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "five ranges after four splits ($nr)" "[ '$nr' = 5 ]"
# Reverse scans cross ranges too: the last keys of [a, z2) backwards, the
# greatest first, against a forward scan at the same timestamp (the writer
# goes on meanwhile).
at=$("$bin" debug kv put m3 pm3 --insecure --host "$(up)" --timeout 60s | awk '/committed:/ {print $2}')
[ -n "$at" ] && echo "m3=pm3" >>"$dir/acked"
rev=$("$bin" debug kv scan a z2 --reverse --limit 4 --at "$at" --insecure --host "$(up)" --timeout 60s 2>&1 |
      grep -v '^(' | cut -d= -f1 | paste -sd' ')
want=$("$bin" debug kv scan a z2 --at "$at" --insecure --host "$(up)" --timeout 60s 2>/dev/null |
       grep -v '^(' | cut -d= -f1 | tail -n 4 | tac | paste -sd' ')
check "a reverse scan over ranges gives the last four keys backwards ($rev)" \
  "[ -n '$want' ] && [ '$rev' = '$want' ] && [ \"\${rev%% *}\" = z1 ]"

# Kill -9 the leaseholder of the range that starts at $ahead, mid-load.
# The leaseholder is taken from the poll that saw one (a second look may
# catch the lease between owners).
L=0
wait_for 30 'L=$(range_of "$ahead" leaseholder); [ "$L" -gt 0 ] 2>/dev/null'
rid=$(range_of "$ahead" range)
check "the new range $rid has a leaseholder ($L)" "[ -n '$L' ] && [ '$L' -gt 0 ]"
bash "$lc" kill "$dir" "$L"
check "the writer goes on with the leaseholder of range $rid dead" "grow 20"
bash "$lc" restart "$dir" "$L" >/dev/null
check "the killed node serves range $rid again" \
  "wait_for 60 '[ -n \"\$(metric $L \"meridian_range_applied_slot{range=\\\"$rid\\\"}\")\" ]'"

# A node down during a split catches the new range up when it returns.
V=$(( (L % 3) + 1 ))
bash "$lc" kill "$dir" "$V"
ahead2=$(printf 'w%05d' $(( $(acked) + 30 )))
check "split at $ahead2 with node $V down" "split $ahead2"
rid2=$(range_of "$ahead2" range)
check "the writer fills the new range $rid2" "grow 60"
bash "$lc" restart "$dir" "$V" >/dev/null
lead2=$(range_of "$ahead2" leaseholder)
slot2=$(metric "$lead2" "meridian_range_applied_slot{range=\"$rid2\"}")
check "node $V, down during the split, catches range $rid2 up (slot $slot2)" \
  "wait_for 60 '[ \"\$(metric $V \"meridian_range_applied_slot{range=\\\"$rid2\\\"}\")\" -ge ${slot2:-1} ] 2>/dev/null'"
if [ "$fails" -gt 0 ]; then
  # Evidence for a failure seen only on loaded machines: what each node
  # hosts now, and what node V logged about the ranges since its restart.
  echo "--- debug ranges after the catch-up check:"
  "$bin" debug ranges --insecure --host "$(rpc_of 1),$(rpc_of 2),$(rpc_of 3)" 2>&1 | head -20
  echo "--- node $V's log (split, snapshot, range $rid2):"
  grep -E "split|SPLIT|snapshot|range=$rid2 |range=$rid2\$|recreat|parked" "$dir/n$V/logs/meridian.log" 2>/dev/null | tail -25
fi

# A node crashing inside a split: before range_split, then after it.
for at in before after; do
  key=$(printf 'w%05d' $(( $(acked) + 40 )))
  wait_for 30 '[ "$(range_of "$key" leaseholder)" -gt 0 ] 2>/dev/null'
  # Not the leaseholder of the range being split: it must answer the split.
  C=$(( ($(range_of "$key" leaseholder) % 3) + 1 ))
  bash "$lc" kill "$dir" "$C"
  MERIDIAN_TESTING_SPLIT_CRASH=$at bash "$lc" restart "$dir" "$C" >/dev/null
  wait_for 30 '[ -n "$(metric '"$C"' meridian_replicas)" ]'
  check "split at $key while node $C crashes $at it" "split $key"
  pid=$(awk -v i="$C" '$1==i {print $2}' "$dir/nodes")
  check "node $C died in the split ($at)" "wait_for 30 '! kill -0 $pid 2>/dev/null'"
  bash "$lc" kill "$dir" "$C" >/dev/null 2>&1
  bash "$lc" restart "$dir" "$C" >/dev/null
  rid3=$(range_of "$key" range)
  check "node $C recovers range $rid3 after crashing $at the split" \
    "wait_for 60 '[ -n \"\$(metric $C \"meridian_range_applied_slot{range=\\\"$rid3\\\"}\")\" ]'"
  grow 20 >/dev/null
done

# Bad input: clear errors, nothing split.
"$bin" debug split --key 0x00abc --insecure --host "$(rpc_of 1)" >"$dir/bad1" 2>&1
check "a system key is refused" "[ $? != 0 ] && grep -q 'odd number\|system' '$dir/bad1'"
"$bin" debug split --key 0x0061 --insecure --host "$(rpc_of 1)" >"$dir/bad2" 2>&1
check "a system key (0x00...) is refused" "[ $? != 0 ] && grep -q 'system keys' '$dir/bad2'"
nbefore=$(ranges_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
"$bin" debug split --key m --insecure --host "$(rpc_of 1)" >"$dir/bad3" 2>&1
check "splitting at an existing boundary is a harmless repeat" \
  "[ $? = 0 ] && grep -q '^right: range 2 .*\[m, ' '$dir/bad3'"
nafter=$(ranges_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "... that splits nothing ($nbefore ranges, then $nafter)" "[ '$nbefore' = '$nafter' ]"
"$bin" debug split --key 0xzz --insecure --host "$(rpc_of 1)" >"$dir/bad4" 2>&1
check "bad hex is refused" "[ $? != 0 ] && grep -q 'not a hex digit' '$dir/bad4'"

touch "$dir/stop"
wait "$writer_pid"; writer_pid=""
n=$(acked)
echo "info: $n writes acknowledged; splits:"; cat "$dir/splits.out" | sed 's/^/  /'

# Every acknowledged write, exactly once, in one scan across all ranges.
"$bin" debug kv scan --insecure --host "$(all)" --timeout 60s >"$dir/scan" 2>"$dir/scan.err"
check "the scan across ranges succeeds" "[ $? = 0 ]"
grep -v '^(' "$dir/scan" >"$dir/rows"
lost=0
while read -r kv; do [ "$(grep -cxF "$kv" "$dir/rows")" = 1 ] || { lost=$((lost+1)); echo "lost or doubled: $kv"; }; done <"$dir/acked"
check "every acknowledged write read back exactly once ($n writes)" "[ $lost = 0 ]"
check "no key appears twice" "[ -z \"\$(cut -d= -f1 '$dir/rows' | sort | uniq -d)\" ]"
check "keys come in order" "cut -d= -f1 '$dir/rows' | LC_ALL=C sort -c"

# The directory covers the key space exactly once and agrees with the nodes;
# every node hosts every range.
agree() {
  "$bin" debug ranges --host "$(rpc_of 1)" --insecure --directory --format json >"$dir/dir.json" 2>/dev/null &&
  ranges_json >"$dir/nodes.json" && python3 - "$dir/dir.json" "$dir/nodes.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); n = json.load(open(sys.argv[2]))
if not d or d[0]["start"] != "-inf" or d[-1]["end"] != "+inf": sys.exit(1)
if any(a["end"] != b["start"] for a, b in zip(d, d[1:])): sys.exit(1)
hosted = {(r["range"], r["generation"]) for r in n}
if {(r["range"], r["generation"]) for r in d} != hosted: sys.exit(1)
if any(r["nodes"] != "1,2,3" for r in n): sys.exit(1)
EOF
}
check "directory: contiguous, exactly once, equal to the ranges every node hosts" "wait_for 60 agree"
echo "info: directory:"; "$bin" debug ranges --host "$(rpc_of 1)" --insecure --directory | sed 's/^/  /'

echo "ranges_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
