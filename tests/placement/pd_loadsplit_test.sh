#!/usr/bin/env bash
# Load-based splits on three real nodes (docs/placement.md, "Load splits"):
# with a small range.split_qps, a write load spread over a key span makes
# the leaseholder sample its requests and report the load median; the PD
# splits range 1 there (reason=load, nobody calls `debug split`), at a key
# strictly inside the hot span. A bad split_qps is refused with a clear
# error and changes nothing. Every acknowledged write reads back once. Every
# process is stopped by PID.
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-pdload-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  [ -n "${MERIDIAN_TEST_KEEP:-}" ] && { echo "kept $dir"; return; }
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
up() { bash "$lc" status "$dir" | awk '$3=="up" {printf "%s%s", s, $4; s=","}'; }
first_up() { up | cut -d, -f1; }
settings() { "$bin" debug settings "$@" --insecure --host "$(up)" --timeout 60s; }
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

# The load: one put at a time to fresh keys bench/<ns clock + i>, in short
# bench runs until the PD has split (60 runs: a hang guard only). Each run
# prints how many puts were acknowledged.
: >"$dir/bench"
for _ in $(seq 1 60); do
  # bench kv takes one HOST:PORT; timeout is a hang guard only.
  timeout 60 "$bin" bench kv --host "$(first_up)" --insecure --duration 2s --concurrency 1 \
    --value-size 8 2>&1 | grep '^total' >>"$dir/bench"
  [ "$(load_splits)" -ge 1 ] && [ "$(nranges)" -ge 2 ] && break
done
acked=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' "$dir/bench" | paste -sd+ | bc)
check "the PD split by load ($(load_splits) load splits, $(nranges) ranges, $acked puts)" \
  "[ \"\$(load_splits)\" -ge 1 ] && [ \"\$(nranges)\" -ge 2 ]"
check "no split by size" "! cat '$dir'/n*.out | grep 'operation started' | grep -q 'reason=size'"

# Every split key lies strictly inside the hot span: above its first key
# (some load stays left), at most its last (some goes right).
"$bin" debug kv scan bench/ bench0 --insecure --host "$(up)" --timeout 60s >"$dir/scan" 2>&1
check "the scan across ranges succeeds" "[ $? = 0 ]"
grep '^bench/' "$dir/scan" | cut -d= -f1 >"$dir/keys"
first=$(head -1 "$dir/keys"); last=$(tail -1 "$dir/keys")
inside() { starts | grep -v '^-inf$' | python3 -c 'import sys
lo, hi = sys.argv[1], sys.argv[2]
ks = [k.strip() for k in sys.stdin if k.strip()]
sys.exit(0 if ks and all(lo < k <= hi for k in ks) else 1)' "$first" "$last"; }
check "split keys ($(starts | grep -v '^-inf$' | paste -sd' ')) inside ($first, $last]" inside
check "as many keys as acknowledged puts or more, none twice ($(wc -l <"$dir/keys") keys, $acked acked)" \
  "[ \"\$(wc -l <'$dir/keys')\" -ge '${acked:-1}' ] && [ -z \"\$(sort '$dir/keys' | uniq -d)\" ]"
"$bin" debug ranges --host "$(first_up)" --insecure | sed 's/^/  /'

echo "pd_loadsplit_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
