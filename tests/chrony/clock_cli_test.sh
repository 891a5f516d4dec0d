#!/usr/bin/env bash
# `meridian clock` end to end without chronyd: the static source, JSON lines,
# --watch/--count, SIGINT, exit codes for bad flags, an unreachable chronyd and
# an uncertainty above the maximum.
set -u
bin=$1
fails=0; passes=0
check() { # check DESCRIPTION WANT_STATUS GOT_STATUS
  if [ "$2" = "$3" ]; then passes=$((passes+1)); else
    echo "FAIL: $1: exit $3, want $2"; fails=$((fails+1)); fi
}
has() { # has DESCRIPTION HAYSTACK NEEDLE
  if printf '%s' "$2" | grep -qF -- "$3"; then passes=$((passes+1)); else
    echo "FAIL: $1: output lacks '$3'"; printf '%s\n' "$2" | head -3; fails=$((fails+1)); fi
}

out=$("$bin" clock --source static --json 2>/dev/null); check "static once" 0 $?
has "static status" "$out" '"status":"STATIC"'
has "static epsilon" "$out" '"epsilon_ns":100000000'
has "static ok" "$out" '"ok":true'
err=$("$bin" clock --source static 2>&1 >/dev/null)
has "static warns" "$err" "static time source"

out=$("$bin" clock --source static --static-uncertainty 3ms --json --watch --count 2 2>/dev/null)
check "watch count" 0 $?
check "two lines" 2 "$(printf '%s\n' "$out" | grep -c '"epsilon_ns":3000000')"

out=$("$bin" clock --source static --static-uncertainty 1s --max-uncertainty 500ms --json 2>/dev/null)
check "above max" 1 $?
has "above max unknown" "$out" '"status":"UNKNOWN"'
has "above max error" "$out" 'cannot vouch for time'

# Nothing listens on the discard port: chronyc cannot talk to a daemon.
out=$("$bin" clock --chrony-port 9 --json 2>/dev/null); check "no daemon" 1 $?
has "no daemon unknown" "$out" '"status":"UNKNOWN"'
has "no daemon says why" "$out" 'Cannot talk to daemon'
out=$("$bin" clock --chronyc /nonexistent/chronyc --json 2>/dev/null); check "no chronyc" 1 $?
has "no chronyc says why" "$out" '/nonexistent/chronyc'

# The kernel source answers whatever the kernel's state: ok iff exit 0.
out=$(timeout 20 "$bin" clock --source kernel --json 2>/dev/null); st=$?
has "kernel source" "$out" '"source":"kernel"'
if [ $st = 0 ]; then has "kernel ok" "$out" '"ok":true'; else check "kernel exit" 1 $st; has "kernel not ok" "$out" '"ok":false'; fi

"$bin" clock --source bogus >/dev/null 2>&1; check "bad source" 2 $?
"$bin" clock --max-uncertainty soon >/dev/null 2>&1; check "bad duration" 2 $?
"$bin" clock --chrony-port 70000 >/dev/null 2>&1; check "bad port" 2 $?
"$bin" clock --chrony-socket relative.sock >/dev/null 2>&1; check "relative socket" 2 $?
"$bin" clock --max-drift -3 >/dev/null 2>&1; check "negative drift" 2 $?
"$bin" clock extra >/dev/null 2>&1; check "stray argument" 2 $?

# --watch runs until SIGINT, then exits 0.
tmp=$(mktemp)
"$bin" clock --source static --watch --json >"$tmp" 2>/dev/null &
pid=$!
for _ in $(seq 1 500); do [ -s "$tmp" ] && break; sleep 0.01; done
kill -INT "$pid"
wait "$pid"; check "watch until SIGINT" 0 $?
has "watch printed" "$(cat "$tmp")" '"status":"STATIC"'
rm -f "$tmp"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
