#!/usr/bin/env bash
# Placement policies in a real cluster (docs/placement.md, "Policies"):
# three nodes in regions us, eu and ap. `debug policy` refuses bad input
# with a clear message and changes nothing; a region without nodes warns;
# ALTER TABLE t SET PLACEMENT (lead_region = 'us') moves the lease of the
# table's range to the us node; a policy over every user key with
# replicas=1 regions=us,eu lead_region=eu leaves each covered range one
# replica, on the eu node, holding the lease; removing it brings back
# three replicas. The data reads back after each step; DROP TABLE removes
# the table's policy. Every process is stopped by PID.
set -u
bin=$1; lc=$2
export MERIDIAN_REGIONS="us eu ap"
# shellcheck source=tests/lib/cluster.sh
. "$(dirname "$0")/../lib/cluster.sh"
tc_init pdpolicy
hosts() { awk '{printf "%s%s", s, $3; s=","}' "$dir/nodes"; }
first() { awk 'NR==1 {print $3}' "$dir/nodes"; }
policy() { "$bin" debug policy "$@" --insecure --host "$(hosts)" --timeout 60s; }
kv() { "$bin" debug kv "$@" --insecure --host "$(hosts)" --timeout 60s; }
intact() { [ "$(kv get apple | head -1)" = 1 ] && [ "$(kv get mango | head -1)" = 2 ]; }
start_s=$(date +%s)

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
kv put apple 1 >/dev/null && kv put mango 2 >/dev/null
check "split at m" "'$bin' debug split --key m --insecure --host '$(first)' >/dev/null"

# Bad input: refused with a reason, nothing stored.
refused() { # refused NEEDLE ARGS...: fails with NEEDLE in its message
  local needle=$1; shift
  policy "$@" >"$dir/out" 2>&1 && return 1
  grep -q "$needle" "$dir/out" || { cat "$dir/out"; return 1; }
}
check "replicas 2 refused" "refused '1, 3 or 5' set p --replicas 2"
check "bad region refused" "refused 'lower-case' set p --regions US"
check "lead region outside the regions refused" "refused 'not among' set p --regions us --lead-region eu"
check "system keys refused" "refused '0x01' set p --start 0x0001"
check "a start below the user tables refused" "refused 'where user tables begin' set p --start 0x02"
check "empty span refused" "refused 'below' set p --start b --end a"
check "bad name refused" "refused 'letters' set 'a/b'"
check "unknown survival refused" "refused 'zone or region' set p --survive rack"
check "rm of an unknown policy refused" "refused 'no policy named' rm nope"
check "nothing stored" "[ \"\$(policy list | wc -l)\" = 1 ]"

# A region no node is in: accepted, with a warning (once the PD has its
# first snapshot of the nodes); then an overlapping policy is refused.
check "a region without nodes warns" \
  "wait_for 60 \"policy set far --start zz --regions mars 2>&1 | grep -q 'no node is in region'\""
check "overlap refused, naming the policy" "refused 'overlaps policy \"far\"' set all"
check "rm far" "policy rm far"

# ranges_ok LEASE REPLICAS: every range at or above 0x01 has its lease on
# node LEASE (or any) and exactly the voters REPLICAS (in any order). Reading every key first
# renews quiet ranges' leases (a lapsed lease shows as none).
ranges_ok() {
  kv get apple >/dev/null 2>&1; kv get mango >/dev/null 2>&1
  "$bin" debug ranges --insecure --host "$(first)" --format json 2>/dev/null >"$dir/ranges.json" || return 1
  python3 - "$dir/ranges.json" "$1" "$2" <<'EOF'
import json, sys
rs = [r for r in json.load(open(sys.argv[1])) if r["start"] != "-inf"]
want = sorted(sys.argv[3].split(","))
ok = len(rs) >= 2 and all(
    (sys.argv[2] == "any" or r["leaseholder"] == int(sys.argv[2]))
    and sorted(r["replicas"].split(",")) == want for r in rs)
sys.exit(0 if ok else 1)
EOF
}
show() { "$bin" debug ranges --insecure --host "$(first)" | sed 's/^/  /'; }

# The SQL form: a policy over exactly one table's keys, by an admin.
sql() { # prints what the shell printed; fails when the statement did
  "$bin" sql --insecure --host "$(hosts)" --format csv -e "$1" >"$dir/sql.out" 2>&1
  local rc=$?; cat "$dir/sql.out"; return $rc
}
check "create a table" "sql \"CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y')\" >/dev/null"
check "ALTER TABLE t SET PLACEMENT" "sql \"ALTER TABLE t SET PLACEMENT (lead_region = 'us', replicas = 3)\" >/dev/null"
check "SHOW PLACEMENT FOR TABLE t" "sql 'SHOW PLACEMENT FOR TABLE t' | grep -q '^table\.[0-9]*,t,.*,3,,us,zone'"
check "a bad placement is refused" "! sql 'ALTER TABLE t SET PLACEMENT (replicas = 2)' >/dev/null && grep -q '1, 3 or 5' '$dir/sql.out'"
# Reading the table renews its range's lease; then every range holding t
# must lead from us (node 1).
t_leads_us() {
  sql 'SELECT count(*) FROM t' | grep -qx 2 &&
    [ "$(sql "SELECT group_concat(DISTINCT coalesce(leader_node, 0)) FROM meridian_ranges WHERE table_name = 't'" | tail -1)" = 1 ]
}
check "the table's range leads from us (node 1)" "wait_for 60 t_leads_us" || show
check "debug ranges names each replica's locality" \
  "'$bin' debug ranges --insecure --host '$(first)' --format json | grep -q '\"localities\":\"[^\"]*1:us/'"
check "ALTER TABLE t RESET PLACEMENT" "sql 'ALTER TABLE t RESET PLACEMENT' >/dev/null && [ \"\$(policy list | wc -l)\" = 1 ]"
check "data intact" intact

check "set all: one replica in us or eu, leading from eu" \
  "policy set all --replicas 1 --regions us,eu --lead-region eu"
check "policy listed" "policy list | grep -q '^all .* - .* us,eu  *eu  *zone'"
check "every covered range has one replica, on the eu node" "wait_for 90 'ranges_ok 2 2'" || show
check "data intact" intact

check "rm all" "policy rm all && [ \"\$(policy list | wc -l)\" = 1 ]"
check "the default factor comes back: three replicas" "wait_for 90 'ranges_ok any 1,2,3'" || show
check "data intact" intact
check "the table reads back" "wait_for 60 \"sql 'SELECT count(*) FROM t' | grep -qx 2\""
# DROP TABLE takes its policy along (sql/placement.c).
check "DROP TABLE removes the table's policy" \
  "sql \"CREATE TABLE u(a INTEGER PRIMARY KEY); ALTER TABLE u SET PLACEMENT (replicas = 3)\" >/dev/null && [ \"\$(policy list | wc -l)\" = 2 ] && sql 'DROP TABLE u' >/dev/null && [ \"\$(policy list | wc -l)\" = 1 ]"

echo "pd_policy_test: $passes passed, $fails failed in $(( $(date +%s) - start_s )) s"
[ "$fails" = 0 ]
