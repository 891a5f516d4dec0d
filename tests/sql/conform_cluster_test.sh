#!/usr/bin/env bash
# The SQL conformance corpus (tests/sql/scripts) on three real nodes with
# tables spread over many ranges: range.max_bytes is made small so the
# placement driver splits as rows arrive, and sql_conform_cluster splits
# every table it sees created at row-key boundaries. Every statement must
# give what sqlite3 gives (conform_cluster.c); at the end the cluster must
# hold many ranges. Every process is stopped by PID (local-cluster.sh).
set -u
bin=$1; prog=$2; scripts=$3; lc=$4; per_table=${5:-3}
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-conform-XXXXXX)
cleanup() { bash "$lc" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
hosts="$(rpc_of 1),$(rpc_of 2),$(rpc_of 3)"
settings() { "$bin" debug settings "$@" --insecure --host "$hosts" --timeout 60s; }
nranges() { "$bin" debug ranges --host "$(rpc_of 1)" --insecure --format json 2>/dev/null |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0; }

check "set range.min_bytes" "settings set range.min_bytes 1KiB >/dev/null"
check "set range.max_bytes" "settings set range.max_bytes 4KiB >/dev/null"

"$prog" "$bin" "$hosts" "$scripts" "$per_table" >"$dir/out" 2>&1
rc=$?
cat "$dir/out"
check "the corpus gives sqlite3's results on a multi-range cluster (rc $rc)" "[ $rc = 0 ]"
stmts=$(sed -n 's/.* \([0-9]*\) statements compared.*/\1/p' "$dir/out")
check "hundreds of statements compared (${stmts:-0})" "[ \"\${stmts:-0}\" -ge 300 ]"
splits=$(sed -n 's/.*compared, \([0-9]*\) splits.*/\1/p' "$dir/out")
check "tables were split at row keys (${splits:-0})" "[ \"\${splits:-0}\" -ge $((per_table * 30)) ]"
n=$(nranges)
want=$((per_table >= 3 ? 50 : 30))
check "the cluster holds many ranges ($n, want >= $want)" "[ '$n' -ge $want ]"

echo "conform_cluster_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
