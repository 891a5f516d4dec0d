#!/usr/bin/env bash
# The authorization matrix (authz_matrix.py) on a real secure 1-node
# cluster: certificates from `meridian cert`, root by client certificate,
# every other user by SCRAM password.
set -u
bin=$1; lc=$2; matrix=$3; users=${4:-}
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-authz-XXXXXX)
certs=$dir/certs
cleanup() { bash "$lc" stop "$dir/c" >/dev/null 2>&1; [ -n "${KEEP:-}" ] && cp -r "$dir" /tmp/keep-authz; rm -rf "$dir"; }
trap cleanup EXIT

"$bin" cert create-ca --certs-dir "$certs" --ca-key "$dir/ca.key" >/dev/null &&
  "$bin" cert create-node 127.0.0.1 localhost --certs-dir "$certs" --ca-key "$dir/ca.key" >/dev/null &&
  "$bin" cert create-client root --certs-dir "$certs" --ca-key "$dir/ca.key" >/dev/null ||
  { echo "cannot make certificates"; exit 1; }
export MERIDIAN_START_FLAGS="--certs-dir $certs --clock-source static --static-uncertainty 1ms"
export MERIDIAN_TOOL_FLAGS="--certs-dir $certs"
export MERIDIAN_METRICS_TOKEN=$(cat "$certs/metrics.token")
export MERIDIAN_HTTP_CA=$certs/ca.crt
bash "$lc" start "$dir/c" 1 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
host=$(awk '$1==1 {print $3}' "$dir/c/nodes")
python3 "$matrix" "$bin" "$host" "$certs" $users
