#!/usr/bin/env bash
# Load-based splits on three real nodes (docs/placement.md, "Load splits"):
# with a small range.split_qps, a read load spread over a key span makes the
# leaseholder sample its requests and report the load median; the PD splits
# range 1 there (reason=load, nobody calls `debug split`), at a key strictly
# inside the hot span that about halves it. A bad split_qps is refused with
# a clear error and changes nothing. The keys read back once each after the
# split. Every process is stopped by PID.
set -u
bin=$1; lc=$2
# shellcheck source=tests/lib/cluster.sh
. "$(dirname "$0")/../lib/cluster.sh"
tc_init pdload
starts() { "$bin" debug ranges --host "$(first_up)" --insecure --format json 2>/dev/null |
  python3 -c 'import json,sys; [print(r["start"]) for r in json.load(sys.stdin)]' 2>/dev/null; }
nranges() { starts | wc -l; }
load_splits() { cat "$dir"/n*.out | grep 'operation started' | grep -c 'SPLIT.*reason=load'; }

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
check "one range at first" "[ \"\$(nranges)\" = 1 ]"

out=$(settings set range.split_qps 0 2>&1)
check "split_qps 0 refused ($out)" "[ \$? != 0 ] && echo \"\$out\" | grep -q 'range.split_qps must be > 0'"
check "nothing changed" "[ \"\$(settings get range.split_qps)\" = 2500 ]"
check "set range.split_qps 20" "[ \"\$(settings set range.split_qps 20)\" = 20 ]"

# The load: snapshot reads at the leaseholder of 100 keys bench/reads/NNNNNN
# at random (uniform), in short bench runs until the PD has split (40 runs:
# a hang guard only; timeout too). A run spans at least two heartbeat
# windows: the first hot one turns sampling on, the next reports the key.
# debug ranges shows the load while it runs (the leaseholder's reads/s since
# its last heartbeat), read once in the middle of the first run.
( sleep 1.5; "$bin" debug ranges --host "$(first_up)" --insecure --format json >"$dir/load.json" 2>&1 ) &
for _ in $(seq 1 40); do
  timeout 60 "$bin" bench txn-reads --host "$(first_up)" --insecure --keys 100 --leader-only \
    --concurrency 1 --duration 3s >>"$dir/bench" 2>&1
  [ "$(load_splits)" -ge 1 ] && [ "$(nranges)" -ge 2 ] && break
done
wait
check "debug ranges shows the load (reads/s > 0 somewhere)" \
  "python3 -c 'import json,sys; sys.exit(0 if any(r[\"reads_per_s\"] > 0 for r in json.load(open(sys.argv[1]))) else 1)' '$dir/load.json'"
check "the PD split by load ($(load_splits) load splits, $(nranges) ranges)" \
  "[ \"\$(load_splits)\" -ge 1 ] && [ \"\$(nranges)\" -ge 2 ]"
[ "$(load_splits)" -ge 1 ] || { echo "diagnostics: PD operations, the last bench runs, ranges:"
  cat "$dir"/n*.out | grep -E 'operation|placement driver|setting changed' | sort | tail -20
  tail -4 "$dir/bench"; "$bin" debug ranges --host "$(first_up)" --insecure; }
check "no split by size" "! cat '$dir'/n*.out | grep 'operation started' | grep -q 'reason=size'"

# Every split key lies strictly inside the hot span (above its first key:
# some load stays left; at most its last: some goes right), and the first
# one, made while the load was uniform over the whole span, about halves it.
inside() { starts | grep -v '^-inf$' | python3 -c 'import sys
ks = [k.strip() for k in sys.stdin if k.strip()]
sys.exit(0 if ks and all("bench/reads/000000" < k <= "bench/reads/000099" for k in ks) else 1)'; }
check "split keys ($(starts | grep -v '^-inf$' | paste -sd' ')) inside the hot span" inside
first=$(cat "$dir"/n*.out | grep 'operation started' | grep 'SPLIT.*reason=load' | sort |
  head -1 | sed 's/.* key=\([^ ]*\) .*/\1/')
check "the first load split ($first) about halves the load" \
  "[[ '$first' > bench/reads/000015 && '$first' < bench/reads/000085 ]]"
"$bin" debug kv scan bench/ bench0 --insecure --host "$(up)" --timeout 60s >"$dir/scan" 2>&1
check "the scan across ranges succeeds" "[ $? = 0 ]"
check "the 100 keys read back once each" \
  "[ \"\$(grep -c '^bench/reads/' '$dir/scan')\" = 100 ] && [ -z \"\$(cut -d= -f1 '$dir/scan' | sort | uniq -d)\" ]"
"$bin" debug ranges --host "$(first_up)" --insecure | sed 's/^/  /'

echo "pd_loadsplit_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
