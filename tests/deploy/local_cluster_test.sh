#!/usr/bin/env bash
# deploy/local-cluster.sh when a start fails: it says why, exits non-zero and
# leaves nothing running (the nodes it started are stopped by PID) and no
# cluster behind (a second start in the same folder is not refused). The
# failure is made by a bad flag for `meridian init`, after node 1 is up.
set -u
bin=$1; lc=$2
# shellcheck source=tests/lib/cluster.sh
. "$(dirname "$0")/../lib/cluster.sh"
tc_init lcfail

MERIDIAN_TOOL_FLAGS="--insecure --no-such-flag" bash "$lc" start "$dir" 3 >"$dir/out" 2>&1
check "a failed start exits non-zero" "[ $? != 0 ]"
check "... and says why" "grep -q 'init failed' '$dir/out'"
check "node 1 had started" "grep -q 'node started' '$dir/n1.out'"
check "... and no process of it is left" "! pgrep -f -- '--store $dir/' >/dev/null"
check "no cluster is left in the folder" "[ ! -e '$dir/nodes' ]"
bash "$lc" start "$dir" 1 >"$dir/out2" 2>&1
check "a start in the same folder then works" "[ $? = 0 ]"
bash "$lc" stop "$dir" >/dev/null 2>&1
check "... and stop stops it" "! pgrep -f -- '--store $dir/' >/dev/null"

echo "local_cluster_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
