# shellcheck shell=bash
# shellcheck disable=SC2154 # bin and lc are set by the test that sources this
# The prologue the real-process cluster tests share (sourced after `set -u`
# with bin (the meridian binary) and lc (deploy/local-cluster.sh) set):
#
#   tc_init NAME   a temporary DIR /tmp/meridian-NAME-XXXXXX for the cluster,
#                  whose nodes are stopped by PID and which is removed at exit
#                  (kept, and said so, with MERIDIAN_TEST_KEEP=1)
#   check WHAT COND        evals COND; counts passes, says FAIL: WHAT (and is false)
#   wait_for SECONDS COND  polls COND every 0.1 s (the limit is a hang guard)
#   up / first_up          the rpc addresses of the nodes that are up
#   settings ARGS..        `meridian debug settings` against them
#   nranges                how many ranges `debug ranges` lists
#   http_of I / metric I NAME / sum_metric NAME   node I's /metrics
# Tests define what else they need after sourcing it.

tc_init() {
  export MERIDIAN_BIN=$bin
  dir=$(mktemp -d "/tmp/meridian-$1-XXXXXX")
  fails=0
  passes=0
  trap tc_cleanup EXIT
}

tc_cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  [ -n "${MERIDIAN_TEST_KEEP:-}" ] && { echo "kept $dir"; return; }
  rm -rf "$dir"
}

check() { if eval "$2"; then passes=$((passes + 1)); else echo "FAIL: $1"; fails=$((fails + 1)); return 1; fi; }
wait_for() {
  local n=$(($1 * 10))
  shift
  for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.1; done
  return 1
}
up() { bash "$lc" status "$dir" | awk '$3=="up" {printf "%s%s", s, $4; s=","}'; }
first_up() { up | cut -d, -f1; }
settings() { "$bin" debug settings "$@" --insecure --host "$(up)" --timeout 60s; }
nranges() {
  "$bin" debug ranges --host "$(first_up)" --insecure --format json 2>/dev/null |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0
}
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
metric() { curl -s --max-time 2 "http://$(http_of "$1")/metrics" | awk -v m="$2" 'index($0,m)==1 {print $2; exit}'; }
sum_metric() {
  local i s=0 v
  for i in 1 2 3; do v=$(metric "$i" "$1"); s=$((s + ${v:-0})); done
  echo "$s"
}
