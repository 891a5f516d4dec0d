# Shell helpers shared by local-cluster.sh and multi-region.sh (sourced).

# wait_for SECONDS CMD...: polls CMD every 0.1 s; the limit only guards hangs.
wait_for() {
  local limit=$1; shift
  local n=$((limit * 10))
  for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}

gone() { # gone PID: exited (or a zombie nobody reaped yet)
  ! kill -0 "$1" 2>/dev/null && return 0
  local st
  st=$(ps -o stat= -p "$1")
  # Z plus flags (ZN when niced); empty: reaped between the two looks.
  case "$st" in "" | Z*) return 0 ;; esac
  return 1
}

metric() { # metric HTTP NAME: value of a metric line starting with NAME
  # A secure cluster's /metrics wants its bearer token, over HTTPS checked
  # against MERIDIAN_HTTP_CA (the cluster's ca.crt; docs/security.md).
  local auth=() url="http://$1/metrics"
  [ -n "${MERIDIAN_METRICS_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $MERIDIAN_METRICS_TOKEN")
  [ -n "${MERIDIAN_HTTP_CA:-}" ] && auth+=(--cacert "$MERIDIAN_HTTP_CA") && url="https://$1/metrics"
  curl -s --max-time 2 "${auth[@]}" "$url" | awk -v m="$2" 'index($0, m)==1 {print $2; exit}'
}

voters_ok() { # voters_ok NODES WANT: a node of NODES (4th field: http) reports range 1 with WANT voters
  local h
  for h in $(awk '{print $4}' "$1"); do
    [ "$(metric "$h" 'meridian_range_voters{range="1"}')" = "$2" ] && return 0
  done
  return 1
}
