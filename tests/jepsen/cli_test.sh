#!/usr/bin/env bash
# jp_check end to end: exit status 0 valid, 1 invalid, 2 unknown / malformed
# history / usage error, and the verdict line on stdout.
set -u
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
expect() { # expect STATUS PATTERN ARGS...
  local want=$1 pat=$2
  shift 2
  out=$("$bin" "$@" 2>&1)
  st=$?
  if [ "$st" != "$want" ] || ! grep -qE -- "$pat" <<<"$out"; then
    echo "FAIL: jp_check $* -> $st (wanted $want, /$pat/):"
    echo "$out"
    fails=$((fails + 1))
  fi
}
printf '1 0 invoke write 1 5\n2 0 ok write 1 5\n3 1 invoke read 1 _\n4 1 ok read 1 5\n' >"$dir/reg-ok"
printf '1 0 invoke write 1 5\n2 0 ok write 1 5\n3 1 invoke read 1 _\n4 1 ok read 1 nil\n' >"$dir/reg-bad"
printf '1 0 invoke txn [append 1 1]\n2 0 ok txn [append 1 1]\n3 1 invoke txn [r 1 nil]\n4 1 ok txn [r 1 []]\n5 2 invoke txn [r 1 nil]\n6 2 ok txn [r 1 [1]]\n' >"$dir/la"
printf '1 0 invoke txn [w 1 1]\n2 0 ok txn [w 1 1]\n3 1 invoke txn [r 1 _]\n4 1 ok txn [r 1 nil]\n' >"$dir/rw"
printf '1 0 invoke balances\n2 0 ok balances [0 60] [1 40]\n' >"$dir/bank"
printf '1 0 invoke insert 1\n2 0 ok insert 1\n3 1 invoke members _\n4 1 ok members []\n' >"$dir/set"
printf '1 0 invoke write 1 5\n2 0 ok write 1\n' >"$dir/malformed"

expect 0 '^register: valid \(2 operations\)' --workload register "$dir/reg-ok"
expect 1 '^register: invalid' --workload register "$dir/reg-bad"
expect 1 'nonlinearizable: key 1: line 4' --workload register "$dir/reg-bad"
expect 1 'G-single-realtime' --workload list-append "$dir/la"
expect 0 '^list-append: valid' --workload list-append --no-realtime "$dir/la"
expect 1 '^rw-register: invalid.*' --workload rw-register "$dir/rw"
expect 0 '^rw-register: valid' --workload rw-register --no-realtime "$dir/rw"
expect 0 '^list-append: valid' --workload list-append --no-realtime --process-order "$dir/la"
printf '1 0 invoke txn [w 1 1]\n2 0 ok txn [w 1 1]\n3 0 invoke txn [r 1 _]\n4 0 ok txn [r 1 nil]\n' >"$dir/rw-session"
expect 1 'G-single-session' --workload rw-register --no-realtime --process-order "$dir/rw-session"
expect 0 '^bank: valid' --workload bank --total 100 "$dir/bank"
expect 1 'balances sum to 100, not 90' --workload bank --total 90 "$dir/bank"
expect 1 '^set: invalid' --workload set "$dir/set"
expect 2 '^set: unknown' --workload set "$dir/reg-ok"
expect 2 'malformed: line 2: expected an integer value' --workload register "$dir/malformed"
expect 2 'No such file|not found' --workload register "$dir/absent"
expect 2 'unknown workload' --workload queue "$dir/reg-ok"
expect 2 'usage' --workload register
expect 2 'usage' "$dir/reg-ok"
expect 2 'bad --total' --workload bank --total x "$dir/bank"
exit $((fails > 0))
