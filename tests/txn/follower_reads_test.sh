#!/usr/bin/env bash
# Snapshot reads served by any replica at its safe time, on three real nodes
# (reads_client does the client side):
#  - a strong read after a commit sees it from every node; on a quiet range
#    it is served without a barrier write;
#  - a read at ts T (taken from a strong read of v1) returns v1 after v2 was
#    written, also when a follower serves it;
#  - with the leaseholder and the other follower stopped (SIGSTOP), a
#    bounded-staleness read from the remaining follower returns the committed
#    value, while a strong read cannot be served (no leaseholder);
#  - after SIGCONT the cluster serves strong reads again;
#  - a client redirected to the leaseholder once reads from its follower again;
#  - SQL with --max-staleness is served by a follower, also alone;
#  - SQL AS OF SYSTEM TIME: a meridian_now() timestamp, a UTC time, '-0s',
#    follower_read_timestamp(), BEGIN AS OF, and the refusals; BEGIN READ ONLY;
#  - `meridian bench txn-reads` runs.
# Every process is stopped by PID (local-cluster.sh); stopped ones are
# continued first.
set -u
bin=$1; rc=$2; lc=$3
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-reads-XXXXXX)
paused=""
cleanup() {
  for p in $paused; do kill -CONT "$p" 2>/dev/null; done
  bash "$lc" stop "$dir" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); echo "ok: $*"; }
bad() { fails=$((fails+1)); echo "FAIL: $*"; }
wait_for() { # wait_for SECONDS CMD: a hang guard, not a timing claim
  local n=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.1; done; return 1
}
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
pid_of() { awk -v i="$1" '$1==i {print $2}' "$dir/nodes"; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
metric() { # metric NODE NAME
  curl -s --max-time 2 "http://$(http_of "$1")/metrics" | awk -v m="$2" 'index($0,m)==1 {print $2; exit}'
}
all_hosts() { echo "$(rpc_of 1),$(rpc_of 2),$(rpc_of 3)"; }

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
lead=""
wait_for 60 'lead=$(bash "$lc" leader "$dir")' || { echo "FAIL: no leaseholder"; exit 1; }

# 1. Strong read after commit, from every node.
"$rc" put "$(all_hosts)" fr/k v1 >/dev/null || bad "put v1"
for i in 1 2 3; do
  out=$("$rc" get "$(rpc_of $i),$(all_hosts)" strong 0 fr/k)
  case "$out" in "found v1 "*) ok "strong read from node $i sees v1" ;; *) bad "strong read from node $i: $out" ;; esac
done

# 1b. A strong read of a quiet range takes its timestamp from the
# leaseholder's HLC and writes nothing (server/txn_snapshot.c): that node's
# "settled" counter grows and the read sees v1. Polled: a write in flight
# there (a closed-timestamp update) sends a read the barrier way instead.
settled_read() {
  local i b a out m='meridian_txn_strong_reads_total{path="settled"}'
  for i in 1 2 3; do
    b=$(metric "$i" "$m"); out=$("$rc" get "$(rpc_of "$i")" strong 0 fr/k 2>/dev/null); a=$(metric "$i" "$m")
    [ "${a:-0}" -gt "${b:-0}" ] && case "$out" in "found v1 "*) return 0 ;; esac
  done
  return 1
}
if wait_for 60 settled_read; then ok "a strong read of a quiet range is served without a write"
else bad "no strong read was ever served without a barrier write"; fi

# 2. Read at a timestamp: T from a strong read of v1; v2 written after.
out=$("$rc" get "$(all_hosts)" strong 0 fr/k)
T=${out##*ts=}
"$rc" put "$(all_hosts)" fr/k v2 >/dev/null || bad "put v2"
for i in 1 2 3; do
  out=$("$rc" get "$(rpc_of $i),$(all_hosts)" at "$T" fr/k)
  case "$out" in "found v1 "*) ok "read at T from node $i: v1" ;; *) bad "read at T from node $i: $out" ;; esac
done
out=$("$rc" get "$(all_hosts)" strong 0 fr/k)
case "$out" in "found v2 "*) ok "strong read after v2: v2" ;; *) bad "strong read after v2: $out" ;; esac
# A follower serves the read at T itself once its safe time passed T (the
# leaseholder keeps closing up to its last write): its counter of reads
# served without the lease shows it. Whichever node does is f1 (the lease
# may move meanwhile: no node is assumed to stay a follower).
f1=""
served_at() { # served_at NODE EXPECTED-PREFIX MODE ARG KEY: served there, with that answer
  local before after out
  before=$(metric "$1" meridian_txn_follower_reads_total)
  out=$("$rc" get "$(rpc_of "$1")" "$3" "$4" "$5" 2>/dev/null)
  after=$(metric "$1" meridian_txn_follower_reads_total)
  [ "${after:-0}" -gt "${before:-0}" ] && case "$out" in "$2"*) return 0 ;; esac
  return 1
}
some_serves() { # some_serves ARGS...: served_at on some node, which becomes f1
  local i
  for i in 1 2 3; do served_at "$i" "$@" && { f1=$i; return 0; }; done
  return 1
}
others_of() { local i; for i in 1 2 3; do [ "$i" = "$1" ] || printf '%s ' "$(pid_of "$i")"; done; }
if wait_for 60 'some_serves "found v1 " at $T fr/k'; then ok "follower $f1 served the read at T: v1"
else bad "no follower ever served the read at T itself"; fi

# 3. Bounded staleness with the leaseholder stopped.
"$rc" put "$(all_hosts)" fr/k2 v3 >/dev/null || bad "put v3"
# The follower's closed ts passes the write (it serves the bounded read itself).
# The bound is generous: the check must hold on a slow, loaded machine.
if wait_for 60 'some_serves "found v3 " bounded 120000000 fr/k2'; then ok "follower $f1 serves v3 at safe time"
else bad "no follower ever reached the write's ts"; fi
paused=$(others_of "$f1")
kill -STOP $paused
out=$("$rc" get "$(rpc_of $f1)" bounded 120000000 fr/k2)
case "$out" in "found v3 "*) ok "bounded read from follower $f1 with the others stopped: v3" ;; *) bad "bounded read from follower: $out" ;; esac
# Exact staleness of 10 minutes: before the cluster existed, so nothing there.
out=$("$rc" get "$(rpc_of $f1)" exact 600000000 fr/k2)
case "$out" in "absent "*) ok "exact staleness 10 min from follower $f1: absent" ;; *) bad "exact staleness 10 min: $out" ;; esac
out=$(MERIDIAN_TEST_TIMEOUT_MS=3000 "$rc" get "$(rpc_of $f1)" strong 0 fr/k2 2>&1)
if [ $? -ne 0 ] || case "$out" in found*) false ;; *) true ;; esac; then ok "strong read without a leaseholder fails ($out)"
else bad "strong read served without a leaseholder: $out"; fi
kill -CONT $paused; paused=""
if wait_for 60 '"$rc" get "$(all_hosts)" strong 0 fr/k2 | grep -q "^found v3 "'; then ok "strong reads again after SIGCONT"
else bad "no strong read after SIGCONT"; fi

# 3b. A redirect does not pin later follower reads to the leaseholder: one
# client whose seed is a follower reads at exact staleness 0 (its safe time is
# behind: NOT_LEADER, served by the leaseholder), then bounded: the second
# read goes back to the follower. Polled: the lease may move meanwhile.
came_back() {
  local i out
  for i in 1 2 3; do
    out=$("$rc" gets "$(rpc_of "$i")" fr/k2 exact 0 bounded 120000000 2>/dev/null)
    [ "$(echo "$out" | awk 'NR==1 {print $1}')" != "$(rpc_of "$i")" ] &&
      [ "$(echo "$out" | awk 'NR==2 {print $1" "$2" "$3}')" = "$(rpc_of "$i") found v3" ] && return 0
  done
  return 1
}
if wait_for 60 came_back; then ok "a redirected follower read does not pin the next one to the leaseholder"
else bad "after a redirect, follower reads stayed at the leaseholder"; fi

# 4. SQL: a session with max_staleness (the shell's --max-staleness, conninfo
# max_staleness=) reads at the nearest replica, also with the others stopped.
sqlf() { "$bin" sql --insecure --format csv --host "$(rpc_of "$1")" "${@:2}" 2>&1; }
sqlf 1 -e "CREATE TABLE fr (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO fr VALUES (1, 'one')" >"$dir/sql.out" || { cat "$dir/sql.out"; bad "sql setup"; }
sql_served() { # some follower itself answers the stale SELECT (it becomes f1)
  local before after out i
  for i in 1 2 3; do
    before=$(metric "$i" meridian_txn_follower_reads_total)
    out=$(sqlf "$i" --max-staleness 120s -e "SELECT v FROM fr WHERE k = 1")
    after=$(metric "$i" meridian_txn_follower_reads_total)
    [ "${after:-0}" -gt "${before:-0}" ] && echo "$out" | grep -qx one && { f1=$i; return 0; }
  done
  return 1
}
if wait_for 60 sql_served; then ok "stale SELECT served by follower $f1"; else bad "stale SELECT never served by a follower"; fi
paused=$(others_of "$f1")
kill -STOP $paused
out=$(sqlf "$f1" --max-staleness 120s -e "SELECT v FROM fr WHERE k = 1")
if echo "$out" | grep -qx one; then ok "stale SELECT with the others stopped: one"; else bad "stale SELECT with the others stopped: $out"; fi
kill -CONT $paused; paused=""

# 4b. AS OF SYSTEM TIME (docs/sql.md "Reading the past") through `meridian sql
# -e`: a timestamp from meridian_now() after v1, then v2; reads at it see v1
# from every node; now sees v2; writes, the future, past the retention window
# and inside a read-write transaction are refused.
sqlv() { sqlf "$1" -e "$2" | tail -n 1; } # the value (csv: after its header)
before=$(date -u '+%F %T.%6N')
sqlf 1 -e "CREATE TABLE asof (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO asof VALUES (1, 'v1')" >"$dir/sql.out" || { cat "$dir/sql.out"; bad "asof setup"; }
T=$(sqlv 2 "SELECT meridian_now()")
sqlf 3 -e "UPDATE asof SET v = 'v2' WHERE k = 1" >"$dir/sql.out" || { cat "$dir/sql.out"; bad "asof v2"; }
for i in 1 2 3; do
  out=$(sqlv "$i" "SELECT v FROM asof AS OF SYSTEM TIME $T WHERE k = 1")
  [ "$out" = v1 ] && ok "AS OF meridian_now() from node $i: v1" || bad "AS OF T from node $i: $out"
done
out=$(sqlv 1 "SELECT v FROM asof AS OF SYSTEM TIME '-0s'")
[ "$out" = v2 ] && ok "AS OF '-0s': v2" || bad "AS OF '-0s': $out"
out=$(sqlv 2 "SELECT v FROM asof AS OF SYSTEM TIME '$(date -u '+%F %T.%6N')'")
[ "$out" = v2 ] && ok "AS OF a UTC time after v2: v2" || bad "AS OF a UTC time after v2: $out"
out=$(sqlf 3 -e "SELECT v FROM asof AS OF SYSTEM TIME '$before'")
echo "$out" | grep -q "no such table: asof" && ok "AS OF a time before CREATE TABLE: no table" || bad "AS OF before CREATE TABLE: $out"
out=$(sqlf 1 -e "BEGIN AS OF SYSTEM TIME $T; SELECT v FROM asof; SELECT meridian_now(); COMMIT")
echo "$out" | grep -qx v1 && echo "$out" | grep -qx "$T" && ok "BEGIN AS OF: v1 at T" || bad "BEGIN AS OF: $out"
if wait_for 60 '[ "$(sqlv 2 "SELECT v FROM asof AS OF SYSTEM TIME follower_read_timestamp()")" = v2 ]'; then
  ok "AS OF follower_read_timestamp() reaches v2"; else bad "follower_read_timestamp() never saw v2"; fi
out=$(sqlf 1 -e "UPDATE asof SET v = 'x' AS OF SYSTEM TIME $T")
echo "$out" | grep -q "this statement writes" && ok "UPDATE AS OF refused" || bad "UPDATE AS OF: $out"
out=$(sqlf 2 -e "SELECT v FROM asof AS OF SYSTEM TIME $((T + (3600000000 << 12)))")
echo "$out" | grep -q "in the future" && ok "AS OF an hour ahead refused" || bad "AS OF the future: $out"
out=$(sqlf 3 -e "SELECT v FROM asof AS OF SYSTEM TIME '-2h'")
echo "$out" | grep -q "retention window" && ok "AS OF '-2h' refused (retention)" || bad "AS OF -2h: $out"
out=$(sqlf 1 -e "BEGIN; SELECT v FROM asof AS OF SYSTEM TIME '-0s'")
echo "$out" | grep -q "inside an open transaction" && ok "AS OF inside BEGIN refused" || bad "AS OF inside BEGIN: $out"
out=$(sqlf 2 -e "SELECT v FROM asof AS OF SYSTEM TIME 'soon'")
echo "$out" | grep -q "bad expression" && ok "a bad AS OF expression refused" || bad "bad AS OF expression: $out"
# (the shell stops at the first error; that the transaction goes on after
# a refused write is tests/unit/sql/test_session.c's)
out=$(sqlf 2 -e "BEGIN READ ONLY; SELECT v FROM asof; UPDATE asof SET v = 'ro' WHERE k = 1")
echo "$out" | grep -qx v2 && echo "$out" | grep -q "cannot write in a READ ONLY transaction" &&
  ok "BEGIN READ ONLY reads and refuses a write" || bad "BEGIN READ ONLY: $out"
out=$(sqlv 3 "SELECT v FROM asof")
[ "$out" = v2 ] && ok "nothing written by the refusals: v2" || bad "after the refusals: $out"

# 5. The benchmark runs both phases and prints the ratio (no speed is asserted).
out=$("$bin" bench txn-reads --insecure --host "$(all_hosts)" --concurrency 2 --duration 1s --keys 20 2>&1)
if echo "$out" | grep -q "^ratio " && echo "$out" | grep -q "^replicas .* 0 errors" &&
   echo "$out" | grep -q "^leaseholder .* 0 errors"; then ok "bench txn-reads"; else bad "bench txn-reads: $out"; fi
if "$bin" bench txn-reads --insecure --host "$(all_hosts)" --concurrency 0 >/dev/null 2>&1; then
  bad "bench txn-reads accepted --concurrency 0"; else ok "bench txn-reads refuses bad flags"; fi

# Bad input: an unknown read mode is refused (nothing is lost).
if "$rc" get "$(all_hosts)" sideways 0 fr/k >/dev/null 2>&1; then bad "unknown mode accepted"; else ok "unknown mode refused"; fi

bash "$lc" stop "$dir" >/dev/null 2>&1
if grep -l "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer" "$dir"/n*.out; then
  bad "a node reported a sanitizer error"
else
  ok "no sanitizer reports"
fi
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
