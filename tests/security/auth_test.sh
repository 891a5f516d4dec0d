#!/usr/bin/env bash
# Users and privileges on a real secure 1-node cluster (certificates from
# `meridian cert`): root by certificate, alice by SCRAM password (right,
# wrong, unknown user, dropped), a certificate user, SELECT/INSERT privileges
# granted and revoked, passwords never stored or logged in clear, a password
# never sent in plaintext, and repeated failures throttled (counted in
# /metrics, not timed).
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-auth-XXXXXX)
certs=$dir/certs
cleanup() { bash "$lc" stop "$dir/c" >/dev/null 2>&1; [ -n "${KEEP:-}" ] && cp -r "$dir" /tmp/keep-auth; rm -rf "$dir"; }
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
wait_for() { for _ in $(seq 1 300); do eval "$1" && return 0; sleep 0.1; done; return 1; }

"$bin" cert create-ca --certs-dir "$certs" --ca-key "$dir/ca.key" >/dev/null &&
  "$bin" cert create-node 127.0.0.1 localhost --certs-dir "$certs" --ca-key "$dir/ca.key" >/dev/null &&
  "$bin" cert create-client root --certs-dir "$certs" --ca-key "$dir/ca.key" >/dev/null &&
  "$bin" cert create-client carol --certs-dir "$certs" --ca-key "$dir/ca.key" >/dev/null ||
  { echo "cannot make certificates"; exit 1; }
export MERIDIAN_START_FLAGS="--certs-dir $certs --clock-source static --static-uncertainty 1ms"
export MERIDIAN_TOOL_FLAGS="--certs-dir $certs"
export MERIDIAN_METRICS_TOKEN=$(cat "$certs/metrics.token")
export MERIDIAN_HTTP_CA=$certs/ca.crt
bash "$lc" start "$dir/c" 1 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
host=$(awk '$1==1 {print $3}' "$dir/c/nodes")
http=$(awk '$1==1 {print $4}' "$dir/c/nodes")
store=$(awk '$1==1 {print $5}' "$dir/c/nodes")
PW='Al1ce-pencil-7731'

root() { "$bin" sql --host "$host" --certs-dir "$certs" --format csv -e "$1" 2>&1; }
# as USER PASSWORD SQL: a password login (no client certificate for USER)
as() { MERIDIAN_PASSWORD=$2 "$bin" sql --host "$host" --certs-dir "$certs" --user "$1" --password --format csv -e "$3" 2>&1; }

out=$(root "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); INSERT INTO t VALUES(1, 'one'); CREATE USER alice WITH PASSWORD '$PW'")
check "root (client certificate) creates a table and a user: $out" "[ $? = 0 ]"
out=$(as alice "$PW" "SELECT 42")
check "alice logs in with her password: $out" "[ \"$out\" = \$'42\\n42' ] || echo \"$out\" | grep -qx 42"
out=$(as alice "wrong-password" "SELECT 42"); rc=$?
check "a wrong password is refused (exit 1): $out" "[ $rc = 1 ] && echo \"$out\" | grep -q 'authentication failed for user alice'"
# The failure makes alice wait a moment (backoff); poll until she is let in.
check "after the backoff alice logs in again" "wait_for 'as alice \"\$PW\" \"SELECT 1\" >/dev/null'"
out=$(as nobody "$PW" "SELECT 42"); rc=$?
check "an unknown user gets the same refusal: $out" "[ $rc = 1 ] && echo \"$out\" | grep -q 'authentication failed for user nobody'"
out=$(MERIDIAN_PASSWORD=$PW "$bin" sql --host "$host" --user alice --password -e "SELECT 1" 2>&1); rc=$?
check "a password is not sent over plaintext: $out" "[ $rc = 1 ] && echo \"$out\" | grep -q 'refusing to send a password over a plaintext connection'"

# Privileges: SELECT, then INSERT granted and revoked.
out=$(as alice "$PW" "SELECT b FROM t")
check "alice cannot read t yet: $out" "echo \"$out\" | grep -q 'permission denied: user alice has no SELECT privilege on table t'"
root "GRANT SELECT ON TABLE t TO alice" >/dev/null
out=$(as alice "$PW" "SELECT b FROM t")
check "after GRANT SELECT alice reads t: $out" "echo \"$out\" | grep -qx one"
out=$(as alice "$PW" "INSERT INTO t VALUES(2, 'two')")
check "alice cannot INSERT: $out" "echo \"$out\" | grep -q 'no INSERT privilege on table t'"
root "GRANT INSERT ON t TO alice" >/dev/null
out=$(as alice "$PW" "INSERT INTO t VALUES(2, 'two')"); rc=$?
check "after GRANT INSERT she can: $out" "[ $rc = 0 ]"
root "REVOKE INSERT ON t FROM alice" >/dev/null
out=$(as alice "$PW" "INSERT INTO t VALUES(3, 'three')")
check "after REVOKE she cannot: $out" "echo \"$out\" | grep -q 'no INSERT privilege on table t'"
check "two rows, as granted" "[ \"\$(root 'SELECT count(*) FROM t' | tail -1)\" = 2 ]"
out=$(as alice "$PW" "CREATE USER mallory")
check "alice cannot manage users: $out" "echo \"$out\" | grep -q 'no ADMIN privilege'"
out=$(root "SHOW GRANTS FOR alice")
check "SHOW GRANTS lists alice's: $out" "echo \"$out\" | grep -q 'alice,TABLE t,SELECT'"

# A certificate user: its CN is the user; it needs a catalog entry and grants.
out=$("$bin" sql --host "$host" --certs-dir "$certs" --user carol -e "SELECT 1" 2>&1)
check "a certificate for a user not in the catalog gets nothing: $out" "echo \"$out\" | grep -q 'user carol does not exist'"
root "CREATE USER carol; GRANT SELECT ON t TO carol" >/dev/null
out=$("$bin" sql --host "$host" --certs-dir "$certs" --user carol --format csv -e "SELECT count(*) FROM t" 2>&1)
check "carol (client certificate) reads t: $out" "echo \"$out\" | tail -1 | grep -qx 2"

# A dropped user cannot log in.
root "DROP USER alice" >/dev/null
out=$(as alice "$PW" "SELECT 1"); rc=$?
check "a dropped user is refused: $out" "[ $rc = 1 ] && echo \"$out\" | grep -q 'authentication failed for user alice'"

# The clear password is nowhere on disk: not in the catalog, not in the log.
check "no file of the store holds the password" "! grep -rqa -- '$PW' '$store'"
check "the node logged the failures without it" "grep -q 'authentication failed' $store/logs/meridian.log"

# Brute force: failures per user+address make the next tries wait; tries
# inside the wait are refused unchecked and counted.
root "CREATE USER dave WITH PASSWORD 'dave-Secret-99'" >/dev/null
metric() { curl -s --max-time 2 --cacert "$certs/ca.crt" -H "Authorization: Bearer $MERIDIAN_METRICS_TOKEN" "https://$http/metrics" | awk -v m="$1" '$1==m {print $2}'; }
t0=$(metric meridian_sql_auth_throttled_total)
for _ in $(seq 1 30); do
  as dave "guess-$RANDOM" "SELECT 1" >/dev/null
  [ "$(metric meridian_sql_auth_throttled_total)" -gt "${t0:-0}" ] && break
done
check "guesses get throttled (meridian_sql_auth_throttled_total grew)" "[ \"\$(metric meridian_sql_auth_throttled_total)\" -gt \"${t0:-0}\" ]"
check "failures are counted" "[ \"\$(metric meridian_sql_auth_failures_total)\" -ge 2 ]"
check "successful logins are counted" "[ \"\$(metric meridian_sql_auth_ok_total)\" -ge 1 ]"

# /metrics and the status page want the token of certs/metrics.token, over
# HTTPS (the node certificate) only; /health and /ready stay open for
# probes, in plaintext and over HTTPS.
code() { curl -s -o "$dir/body" -w '%{http_code}' "$@"; }
sec() { code --cacert "$certs/ca.crt" "$@"; }
check "metrics.token is 0600" "[ \"\$(stat -c %a $certs/metrics.token)\" = 600 ]"
check "/metrics without a token: 401" "[ \"\$(sec https://$http/metrics)\" = 401 ] && grep -q 'Authorization: Bearer' $dir/body"
check "/metrics with a wrong token: 401" "[ \"\$(sec -H 'Authorization: Bearer nope' https://$http/metrics)\" = 401 ]"
check "/metrics with the token: 200" "[ \"\$(sec -H \"Authorization: Bearer \$MERIDIAN_METRICS_TOKEN\" https://$http/metrics)\" = 200 ] && grep -q meridian_uptime_seconds $dir/body"
check "/metrics in plaintext, even with the token: 403, go to https" "[ \"\$(code -H \"Authorization: Bearer \$MERIDIAN_METRICS_TOKEN\" http://$http/metrics)\" = 403 ] && grep -q 'https://' $dir/body && ! grep -q meridian_uptime $dir/body"
check "the status page without a token: 401" "[ \"\$(sec https://$http/)\" = 401 ]"
check "the status page in plaintext: 403" "[ \"\$(code http://$http/)\" = 403 ]"
check "curl without the cluster CA refuses the node certificate" "! curl -s -o /dev/null https://$http/health"
check "/health stays open" "[ \"\$(code http://$http/health)\" = 200 ] && [ \"\$(sec https://$http/health)\" = 200 ]"
check "/ready stays open" "[ \"\$(code http://$http/ready)\" = 200 ] && [ \"\$(sec https://$http/ready)\" = 200 ]"
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
