#!/usr/bin/env bash
# The placement driver merges on its own (docs/placement.md, "Merges"): with
# a small range.max_bytes, loading data splits the key span into several
# ranges; after most of the data is deleted, the ranges stay apart while
# range.merge_cooldown has not passed since their splits (a recent split is
# never undone), and once it is lowered the PD merges the small cold
# neighbours back (nobody calls `debug merge`). The keys left and the
# writes made meanwhile read back exactly once. Every process is stopped by
# PID.
set -u
bin=$1; lc=$2
# shellcheck source=tests/lib/cluster.sh
. "$(dirname "$0")/../lib/cluster.sh"
tc_init pdmerge
kv() { "$bin" debug kv "$@" --insecure --host "$(up)" --timeout 60s >/dev/null 2>&1; }

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }

# Small ranges; merges held back by a long cool-down at first.
check "set range.min_bytes" "[ \"\$(settings set range.min_bytes 2KiB)\" = 2048 ]"
check "set range.max_bytes" "[ \"\$(settings set range.max_bytes 4KiB)\" = 4096 ]"
check "set range.merge_cooldown" "settings set range.merge_cooldown 1h >/dev/null"

# Load ~1 KiB values: the PD splits the key span into several ranges.
val=$(head -c 1000 /dev/zero | tr '\0' v)
for i in $(seq 1 40); do kv put "$(printf 'k%05d' "$i")" "$val" || echo "put $i failed"; done
check "the PD split the data into >= 5 ranges ($(nranges) now)" "wait_for 180 '[ \$(nranges) -ge 5 ]'"
split_ranges=$(nranges)

# Delete all but three keys: every user range is now small and cold.
for i in $(seq 1 40); do
  case $i in 1|20|40) continue ;; esac
  check "delete k$i" "kv del $(printf 'k%05d' "$i")"
done >/dev/null
check "deletes acknowledged" "[ $fails = 0 ]"

# Within the cool-down nothing merges: the PD runs (its run counter moves)
# and the range count holds.
pd_runs() { sum_metric meridian_pd_runs_total; }
r0=$(pd_runs)
check "the PD keeps running" "wait_for 60 '[ \$(pd_runs) -ge $((r0 + 5)) ]'"
check "no merge within range.merge_cooldown ($(nranges) ranges, $split_ranges after the splits)" \
  "[ \"\$(nranges)\" -ge $split_ranges ] && [ \"\$(sum_metric meridian_range_merges_total)\" = 0 ]"

# Lower the cool-down: the PD merges the small cold neighbours back.
check "lower range.merge_cooldown" "settings set range.merge_cooldown 1s >/dev/null"
kv put k00020 again # a write meanwhile, into a range about to merge
echo "k00020=again" >"$dir/expect"
check "ranges merge back on their own ($(nranges) -> at most 2)" "wait_for 300 '[ \$(nranges) -le 2 ]'"
check "the PD ran the merges (metrics: $(sum_metric meridian_range_merges_total))" \
  "[ \"\$(sum_metric meridian_range_merges_total)\" -ge $((split_ranges - 2)) ]"
echo "info: $split_ranges ranges after the load, $(nranges) after the merges"

# What is left reads back exactly once.
printf 'k00001=%s\nk00040=%s\n' "$val" "$val" >>"$dir/expect"
"$bin" debug kv scan --insecure --host "$(up)" --timeout 60s >"$dir/scan" 2>"$dir/scan.err"
check "the scan succeeds" "[ $? = 0 ]"
grep -v '^(' "$dir/scan" | grep '^k' | LC_ALL=C sort >"$dir/rows"
LC_ALL=C sort "$dir/expect" >"$dir/expect.sorted"
check "exactly the keys left, once each" "cmp -s '$dir/rows' '$dir/expect.sorted'"
"$bin" debug ranges --host "$(first_up)" --insecure | sed 's/^/  /'

echo "pd_merge_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
