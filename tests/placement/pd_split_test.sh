#!/usr/bin/env bash
# The placement driver on three real nodes (docs/placement.md, "In the
# cluster"): settings are validated, replicated and live; with a small
# range.max_bytes, loading data splits range 1 automatically into >= 50
# ranges (nobody calls `debug split`); the PD moves with range 1's lease
# when its node is killed (-9) and goes on splitting with the settings it
# reads back from range 1; every acknowledged write is read back exactly
# once. Heartbeats drive liveness: with node.dead_timeout shortened, the new
# PD's page shows the killed node dead. Every process is stopped by PID.
set -u
bin=$1; lc=$2
# shellcheck source=tests/lib/cluster.sh
. "$(dirname "$0")/../lib/cluster.sh"
tc_init pd

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
: >"$dir/acked"

# Settings: defaults, bad input refused with a clear error and nothing changed.
check "defaults listed" "settings list | grep -q '^range.max_bytes *67108864$'"
out=$(settings set range.max_bytes 4KiB 2>&1)
check "max below 2 x min refused ($out)" "[ \$? != 0 ] && echo \"\$out\" | grep -q 'at most half'"
out=$(settings set no.such 1 2>&1)
check "unknown setting refused" "echo \"\$out\" | grep -q 'unknown setting'"
out=$(settings set node.dead_timeout soon 2>&1)
check "bad duration refused" "echo \"\$out\" | grep -q 'not a duration'"
check "nothing changed" "[ \"\$(settings get range.max_bytes)\" = 67108864 ]"
check "set range.min_bytes" "[ \"\$(settings set range.min_bytes 1KiB)\" = 1024 ]"
check "set range.max_bytes" "[ \"\$(settings set range.max_bytes 4KiB)\" = 4096 ]"
check "read back" "[ \"\$(settings get range.max_bytes)\" = 4096 ]"
check "set node.suspect_timeout" "[ \"\$(settings set node.suspect_timeout 2s)\" = 2s ]"
check "set node.dead_timeout" "[ \"\$(settings set node.dead_timeout 3s)\" = 3s ]"

# Load ~1 KiB values: the PD splits ranges above 4 KiB on its own.
val=$(head -c 1000 /dev/zero | tr '\0' v)
# One client process writes the keys in turn (`debug kv load`: it prints
# KEY=VALUE once each is acknowledged).
load() { local i; for i in $(seq "$1" "$2"); do printf 'k%05d %s\n' "$i" "$val"; done |
  "$bin" debug kv load --insecure --host "$(up)" --timeout 60s >>"$dir/acked" 2>>"$dir/load.err"; }
load 1 120
check "120 writes acknowledged" "[ \"\$(wc -l <'$dir/acked')\" = 120 ]"
check "ranges split automatically ($(nranges) now)" "wait_for 120 '[ \$(nranges) -ge 20 ]'"
check "the PD ran splits (metrics)" "[ \"\$(for i in 1 2 3; do metric \$i meridian_pd_ops_done_total; done | paste -sd+ | bc)\" -ge 19 ]"

# Kill the PD's node: range 1's lease moves, and so does the PD, which reads
# the replicated settings back and goes on splitting.
pd_node() { local i; for i in 1 2 3; do [ "$(metric "$i" meridian_pd_leader)" = 1 ] && { echo "$i"; return 0; }; done; return 1; }
check "one node runs the PD" "wait_for 30 pd_node >/dev/null"
pd=$(pd_node)
page() { curl -s --max-time 2 "http://$(http_of "$1")/"; }
all_live() { [ "$(page "$pd" | grep -o '<td class="ok">live</td>' | wc -l)" = 3 ]; }
check "the PD's page shows ranges per node, all live" "wait_for 30 all_live"
bash "$lc" kill "$dir" "$pd"
# The new PD hears no heartbeat from the killed node: dead after 3 s.
dead_seen() { local i; for i in 1 2 3; do [ "$i" = "$pd" ] && continue
  page "$i" | grep -q "<tr><td>$pd</td><td class=\"bad\">dead</td>" && return 0; done; return 1; }
check "the new PD declares node $pd dead" "wait_for 60 dead_seen"
status_dead() { "$bin" node status --host "$(first_up)" --insecure --format json 2>/dev/null |
  python3 -c 'import json,sys; d={str(x["id"]): x["liveness"] for x in json.load(sys.stdin)}
sys.exit(0 if d.get(sys.argv[1]) == "dead" and list(d.values()).count("live") == 2 else 1)' "$pd"; }
check "node status shows node $pd dead, the others live" "wait_for 60 status_dead"
check "the settings survive the PD's node" "wait_for 60 '[ \"\$(settings get range.max_bytes 2>/dev/null)\" = 4096 ]'"
load 121 240
check "240 writes acknowledged" "[ \"\$(wc -l <'$dir/acked')\" = 240 ]"
check "splits go on: >= 50 ranges ($(nranges) now)" "wait_for 180 '[ \$(nranges) -ge 50 ]'"
bash "$lc" restart "$dir" "$pd" >/dev/null 2>&1
echo "info: $(nranges) ranges"

# Every acknowledged write, exactly once, in one scan across all ranges.
"$bin" debug kv scan --insecure --host "$(up)" --timeout 60s >"$dir/scan" 2>"$dir/scan.err"
check "the scan across ranges succeeds" "[ $? = 0 ]"
grep -v '^(' "$dir/scan" >"$dir/rows"
lost=0
while read -r kv; do [ "$(grep -cxF "$kv" "$dir/rows")" = 1 ] || lost=$((lost+1)); done <"$dir/acked"
check "every acknowledged write read back exactly once ($lost lost or doubled)" "[ $lost = 0 ]"
check "no key appears twice" "[ -z \"\$(cut -d= -f1 '$dir/rows' | sort | uniq -d)\" ]"

echo "pd_split_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
