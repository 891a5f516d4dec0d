#!/usr/bin/env bash
# `meridian bench sql` smoke test on a 1-node cluster: each workload runs for
# a moment through libmeridian and reports statements done without errors;
# mixed also draws its SVG; compare runs point-select, update and scan on
# the cluster and on a local SQLite file and prints a well-formed ratio line
# for each; bad flags exit 2. No speed is asserted. Every process is stopped
# by PID (local-cluster.sh).
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-bsql-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }

bash "$lc" start "$dir" 1 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
host=$(awk '$1==1 {print $3}' "$dir/nodes")

for w in point-select insert update scan mixed; do
  svg=()
  [ "$w" = mixed ] && svg=(--svg "$dir/mixed.svg")
  out=$("$bin" bench sql --host "$host" --workload "$w" --duration 2s --concurrency 4 \
        --rows 200 "${svg[@]}" 2>&1)
  rc=$?
  total=$(grep '^total' <<<"$out")
  ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$total")
  errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$total")
  if [ "$rc" -ne 0 ] || [ "${ok:-0}" -lt 1 ] || [ "${errs:-1}" -ne 0 ] ||
     ! grep -q 'p50=.* p90=.* p99=.* p999=' <<<"$total" || ! grep -q '^progress' <<<"$out"; then
    fail "bench sql --workload $w (rc $rc): $out"
  fi
done
# compare: six phases, each with statements done and none failed, then
# three ratio lines of positive numbers.
out=$("$bin" bench sql --host "$host" --workload compare --duration 1s --concurrency 2 \
      --rows 200 --sqlite "$dir/lite.db" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "bench sql --workload compare exits $rc: $out"
for op in point-select update scan; do
  for side in meridian sqlite; do
    line=$(grep "^phase $op $side total" <<<"$out")
    ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
    errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
    { [ "${ok:-0}" -ge 1 ] && [ "${errs:-1}" -eq 0 ] && grep -q 'p50=.* p99=' <<<"$line"; } ||
      fail "compare phase $op on $side: '$line'"
  done
  num='[0-9.]+(e[-+][0-9]+)?'
  grep -Eq "^ratio $op meridian/sqlite: throughput=$num p50=$num p99=$num\$" <<<"$out" ||
    fail "compare ratio line for $op: $(grep "^ratio $op" <<<"$out")"
done
[ "$(sqlite3 "$dir/lite.db" 'SELECT count(*) FROM bench_sql' 2>/dev/null || echo 200)" = 200 ] ||
  fail "the SQLite side holds --rows rows"

grep -q '<svg' "$dir/mixed.svg" 2>/dev/null || fail "no SVG from --svg"
# The table bench sql made holds its rows.
n=$("$bin" sql --host "$host" --format csv -e "SELECT count(*) >= 200 FROM bench_sql" | tail -1)
[ "$n" = 1 ] || fail "bench_sql has fewer rows than --rows ($n)"

"$bin" bench sql --host "$host" --workload nope >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown workload exits 2"
"$bin" bench sql --workload insert >/dev/null 2>&1
[ $? -eq 2 ] || fail "no --host exits 2"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
