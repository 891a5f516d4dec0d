#!/usr/bin/env bash
# Range merges on three real nodes (docs/ranges.md, "Merges"): a table's key
# span is split into several ranges holding data; while a background writer
# records every acknowledged write, the ranges are merged back by hand
# (`meridian debug merge`): one while a node crashes just before and one just
# after absorbing the right range (MERIDIAN_TESTING_MERGE_CRASH), and one
# asked while the leaseholder is killed (-9) and comes back (a merge waits
# for every replica of the right range to freeze). The crashed nodes
# recover. At the end one scan across all ranges reads every acknowledged
# write exactly once and no key twice, the directory covers the key space
# exactly once and agrees with what every node hosts, and bad merge requests
# get clear errors.
# Every process is stopped by PID. Each step is printed with the seconds
# since the start; every wait is a poll with a hang guard, and the first
# failed check ends the test with the nodes' last warnings (so a hang shows
# where it is long before ctest's timeout). MERIDIAN_TEST_KEEP=1 keeps the
# directory (node logs in n*/logs).
set -u
bin=$1; lc=$2; probe=$3 # probe: tests/cluster/kv_target_probe
export MERIDIAN_BIN=$bin
ulimit -c 0 # the crash points abort(): no core files
dir=$(mktemp -d /tmp/meridian-merge-XXXXXX)
writer_pid=""; merge_pid=""
cleanup() {
  [ -n "$merge_pid" ] && kill "$merge_pid" 2>/dev/null && wait "$merge_pid" 2>/dev/null
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null && wait "$writer_pid" 2>/dev/null
  bash "$lc" stop "$dir" >/dev/null 2>&1
  [ -n "${MERIDIAN_TEST_KEEP:-}" ] && { echo "kept $dir"; return; } # debugging a failure
  rm -rf "$dir"
}
trap cleanup EXIT
passes=0; nstep=0; t0=$(date +%s)
step() { nstep=$((nstep+1)); echo "step $nstep (+$(( $(date +%s) - t0 ))s): $*"; }
# diagnose: what the nodes and operations said last (on a failure)
diagnose() {
  echo "--- operations:"; tail -n 5 "$dir/ops.out" 2>/dev/null
  echo "--- ranges per node:"; timeout 30 "$bin" debug ranges --host "$(up | cut -d, -f1)" --insecure 2>&1 | head -n 12
  local f
  for f in "$dir"/n*/logs/meridian.log; do
    [ -e "$f" ] || continue
    echo "--- $f (last warnings):"; grep -v 'lvl=\(info\|debug\|trace\)' "$f" | tail -n 8
  done
}
# check NAME COND: the first failure ends the test (later steps would only
# wait out their guards on a cluster that is already wrong).
check() {
  if eval "$2"; then passes=$((passes+1)); return 0; fi
  echo "FAIL: $1 (step $nstep, +$(( $(date +%s) - t0 ))s)"
  diagnose
  echo "merge_test: $passes passed, 1 failed"
  exit 1
}
# wait_for SECS COND: polls COND every 0.1 s; SECS is only a hang guard.
wait_for() {
  local end=$(( $(date +%s) + $1 ))
  while :; do
    eval "$2" && return 0
    [ "$(date +%s)" -lt "$end" ] || { echo "timed out after $1 s waiting for: $2"; return 1; }
    sleep 0.1
  done
}
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
metric() { curl -s --max-time 2 "http://$(http_of "$1")/metrics" | awk -v m="$2" 'index($0,m)==1 {print $2; exit}'; }
all() { echo "$(rpc_of 1),$(rpc_of 2),$(rpc_of 3)"; }
up() { bash "$lc" status "$dir" | awk '$3=="up" {printf "%s%s", s, $4; s=","}'; }
put() { "$bin" debug kv put "$1" "$2" --insecure --host "$(up)" --timeout 60s >/dev/null 2>&1 && echo "$1=$2" >>"$dir/acked"; }
acked() { wc -l <"$dir/acked"; }
split() { "$bin" debug split --key "$1" --insecure --host "$(up)" --timeout 60s >>"$dir/ops.out" 2>&1; }
merge() { "$bin" debug merge --key "$1" --insecure --host "$(up)" --timeout 90s >>"$dir/ops.out" 2>&1; }
# (timeout: a hang guard; debug ranges asks every node in turn)
ranges_json() { timeout 30 "$bin" debug ranges --host "$(up | cut -d, -f1)" --insecure --format json 2>/dev/null; }
nranges() { ranges_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0; }
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
# leaseholder_of KEY: the node holding the lease of KEY's range, polled
# until there is one (a quiet range's lease lapses; reading it twice, once
# to wait and once to use, could get 0 the second time). Empty after 60 s.
leaseholder_of() {
  local i v
  for i in $(seq 1 600); do
    v=$(range_of "$1" leaseholder)
    [ "${v:-0}" -gt 0 ] 2>/dev/null && { echo "$v"; return 0; }
    sleep 0.1
  done
  return 1
}
# writer: puts into every range in turn (keys a..., f..., k..., p..., t...)
# until $dir/stop exists (looked at before each put: it stops within one put)
writer() {
  local i=0 p
  while [ ! -e "$dir/stop" ]; do
    i=$((i+1))
    for p in a f k p t; do
      [ -e "$dir/stop" ] && break
      put "$(printf '%s%05d' "$p" "$i")" "v$i"
    done
  done
}
grow() { # grow N: wait for N more acknowledged writes
  local want=$(( $(acked) + $1 ))
  wait_for 180 '[ "$(acked)" -ge '"$want"' ]' || { echo "acknowledged: $(acked) of $want"; return 1; }
}
# scan_ok: one scan across all ranges reads every acknowledged write exactly once
scan_ok() {
  "$bin" debug kv scan --insecure --host "$(up)" --timeout 60s >"$dir/scan" 2>"$dir/scan.err" || return 1
  grep -v '^(' "$dir/scan" >"$dir/rows"
  [ -z "$(cut -d= -f1 "$dir/rows" | sort | uniq -d)" ] || { echo "a key appears twice"; return 1; }
  # acked.snap was copied before the scan began: every pair in it must be there.
  LC_ALL=C sort -u "$dir/acked.snap" >"$dir/a.sorted"
  LC_ALL=C sort -u "$dir/rows" >"$dir/r.sorted"
  local missing
  missing=$(LC_ALL=C comm -23 "$dir/a.sorted" "$dir/r.sorted" | wc -l)
  [ "$missing" = 0 ] || { echo "$missing acknowledged writes missing"; return 1; }
}
snap_scan() { cp "$dir/acked" "$dir/acked.snap"; scan_ok; }

step "start three nodes"
bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
: >"$dir/acked"
step "seed writes"
for k in a0 b0 f0 h0 k0 m0 p0 r0 t0 z0; do put "$k" "seed"; done
check "seed writes acknowledged" "[ \"\$(acked)\" = 10 ]"

# Split the user key span into five ranges (plus range 1 below "a").
step "split at a, f, k, p, t"
for k in a f k p t; do check "split at $k" "split $k"; done
check "six ranges after five splits ($(nranges))" "[ \"\$(nranges)\" = 6 ]"

step "start the writer"
writer & writer_pid=$!
check "the writer makes progress over every range" "grow 40"

# Merge by hand while the writer runs: [k, p) absorbs [p, t).
step "merge [k,p) with [p,t) while the writer runs"
right=$(range_of p range); rgen=$(range_of p generation)
check "merge [k,p) with [p,t)" "merge k"
check "five ranges now ($(nranges))" "wait_for 30 '[ \"\$(nranges)\" = 5 ]'"
check "the writer goes on across the merge" "grow 40"
# A request for the merged-away range (by id, as from a cached route) gets a
# retryable error carrying the range that holds the key now, from every node.
left=$(range_of p range); lgen=$(range_of p generation)
step "ask every node for the merged-away range $right by id"
for i in 1 2 3; do
  check "node $i answers range $right with range $left's descriptor" \
    "wait_for 60 '[ \"\$(\"$probe\" $(rpc_of $i) $right $rgen p00001)\" = \"RANGE_MISMATCH range $left generation $lgen\" ]'"
done
step "scan"
check "a scan reads every acknowledged write exactly once" "snap_scan"

# A node crashing inside a merge: just before absorbing the right range,
# then just after (right store absorbed, right replica not yet dropped).
for at in before after; do
  key=$([ "$at" = before ] && echo a || echo k)
  step "merge at $key with a node crashing $at absorbing"
  lh=$(leaseholder_of "$key")
  check "the range at $key has a leaseholder (${lh:-none})" "[ -n '$lh' ]"
  # Not the leaseholder of the left range: that one must answer the merge.
  C=$(( (${lh:-0} % 3) + 1 ))
  n0=$(nranges)
  bash "$lc" kill "$dir" "$C"
  MERIDIAN_TESTING_MERGE_CRASH=$at bash "$lc" restart "$dir" "$C" >/dev/null
  check "node $C serves metrics again" "wait_for 60 '[ -n \"\$(metric $C meridian_replicas)\" ]'"
  check "merge at $key while node $C crashes $at absorbing" "merge $key"
  pid=$(awk -v i="$C" '$1==i {print $2}' "$dir/nodes")
  check "node $C died in the merge ($at)" "wait_for 60 '! kill -0 $pid 2>/dev/null'"
  step "restart node $C without the crash point"
  bash "$lc" kill "$dir" "$C" >/dev/null 2>&1
  bash "$lc" restart "$dir" "$C" >/dev/null
  check "one range fewer ($n0 -> $(nranges))" "wait_for 30 '[ \"\$(nranges)\" = $((n0 - 1)) ]'"
  merged=$(range_of "$key" range)
  check "node $C recovers: it hosts range $merged and nothing merged away" \
    "wait_for 90 '[ \"\$(metric $C meridian_replicas)\" = $((n0 - 1)) ] && [ -n \"\$(metric $C \"meridian_range_applied_slot{range=\\\"$merged\\\"}\")\" ]'"
  check "the writer goes on" "grow 20"
done

# kill -9 the leaseholder of [a,k) and ask for its merge with [k,+inf)
# meanwhile: the lease moves, the merge waits for the killed node's replica
# of the right range to freeze, and completes once it is back.
step "merge at a while its leaseholder is killed and restarted"
L=$(leaseholder_of a)
check "the range at a has a leaseholder (${L:-none})" "[ -n '$L' ]"
L=${L:-1}
bash "$lc" kill "$dir" "$L"
merge a0 & merge_pid=$!
bash "$lc" restart "$dir" "$L" >/dev/null
# merge has --timeout 90s: the guard only catches a tool that hangs past it
check "the merge tool returns" "wait_for 150 '! kill -0 $merge_pid 2>/dev/null'"
wait "$merge_pid"; mrc=$?; merge_pid=""
check "merge asked while the leaseholder (node $L) was killed and restarted" "[ $mrc = 0 ]"
check "two ranges left ($(nranges))" "wait_for 30 '[ \"\$(nranges)\" = 2 ]'"
check "node $L catches up and drops the merged range" \
  "wait_for 90 '[ \"\$(metric $L meridian_replicas)\" = 2 ]'"

# A merge named by both ranges (as the CLI always sends it, after a dry run)
# that already happened answers success, not a second merge with the next
# neighbour: what a resend after a lost answer meets.
step "a repeated merge of [a,k) with [k,+inf) merges nothing more"
"$bin" debug split --key k --insecure --host "$(up)" --timeout 60s >>"$dir/ops.out" 2>&1
check "three ranges with a split at k ($(nranges))" "wait_for 30 '[ \"\$(nranges)\" = 3 ]'"
kr=$(range_of k range)
check "merge [a,k) with range $kr at k" \
  "'$bin' debug merge --key a0 --right-range $kr --right-start k --insecure --host \"\$(up)\" --timeout 90s >>'$dir/ops.out' 2>&1"
check "two ranges ($(nranges))" "wait_for 30 '[ \"\$(nranges)\" = 2 ]'"
check "the same merge again answers success" \
  "'$bin' debug merge --key a0 --right-range $kr --right-start k --insecure --host \"\$(up)\" --timeout 90s >>'$dir/ops.out' 2>&1"
check "... and merged nothing more: still two ranges" "[ \"\$(nranges)\" = 2 ]"
out=$("$bin" debug merge --key a0 --right-range 999 --right-start k --insecure --host "$(up)" --timeout 20s 2>&1)
check "a merge naming another right neighbour is refused ($out)" "[ \$? != 0 ] && echo \"\$out\" | grep -q 'ranges changed'"
out=$("$bin" debug merge --key a0 --right-range 5 --insecure --host "$(up)" 2>&1)
check "--right-range without --right-start is refused" "[ \$? != 0 ] && echo \"\$out\" | grep -q 'together'"

# Bad input: clear errors, nothing merged.
step "bad merge requests"
"$bin" debug merge --key z --insecure --host "$(rpc_of 1)" --timeout 20s >"$dir/bad1" 2>&1
check "the last range has no right neighbour" "[ $? != 0 ] && grep -q 'no right neighbour' '$dir/bad1'"
"$bin" debug merge --key 0xzz --insecure --host "$(rpc_of 1)" >"$dir/bad2" 2>&1
check "bad hex is refused" "[ $? != 0 ] && grep -q 'not a hex digit' '$dir/bad2'"
check "still two ranges" "[ \"\$(nranges)\" = 2 ]"

step "stop the writer, final checks"
touch "$dir/stop"
# one put (--timeout 60s) may be in flight
check "the writer stops" "wait_for 120 '! kill -0 $writer_pid 2>/dev/null'"
wait "$writer_pid"; writer_pid=""
n=$(acked)
echo "info: $n writes acknowledged; operations:"; sed 's/^/  /' "$dir/ops.out"
check "the final scan reads every acknowledged write exactly once ($n writes)" "snap_scan"
check "the scan holds nothing that was not written" \
  "[ -z \"\$(LC_ALL=C comm -13 '$dir/a.sorted' '$dir/r.sorted' | grep -v '=seed$' | grep -v '=v[0-9]*$')\" ]"

# The directory covers the key space exactly once and agrees with the nodes.
agree() {
  timeout 30 "$bin" debug ranges --host "$(rpc_of 1)" --insecure --directory --format json >"$dir/dir.json" 2>/dev/null &&
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
echo "info: directory:"; timeout 30 "$bin" debug ranges --host "$(rpc_of 1)" --insecure --directory | sed 's/^/  /'

echo "merge_test: $passes passed, 0 failed (+$(( $(date +%s) - t0 ))s)"
