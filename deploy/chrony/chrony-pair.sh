#!/usr/bin/env bash
# Starts, stops or shows a local chrony pair for Meridian: a time master
# (local stratum 1, NTP on 127.0.0.1 only) and a node chronyd that syncs from it.
# Both run with `chronyd -x` (the system clock is never touched), each in a
# folder of its own under DIR, on non-standard ports, and are stopped by PID.
#
#   chrony-pair.sh start DIR     start both (fails if either is already running)
#   chrony-pair.sh stop DIR      stop both by PID (SIGTERM, then SIGKILL)
#   chrony-pair.sh stop-master DIR   stop only the master (to test a lost source)
#   chrony-pair.sh status DIR    print each daemon's PID and the node's tracking
#
# Ports (environment): MASTER_PORT (default 11123), MASTER_CMDPORT (11124),
# NODE_CMDPORT (11125). The node's command port answers `chronyc -h 127.0.0.1
# -p $NODE_CMDPORT tracking`; its unix socket is DIR/node/chronyd.sock.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop|stop-master|status DIR" >&2
  exit 2
fi
MASTER_PORT=${MASTER_PORT:-11123}
MASTER_CMDPORT=${MASTER_CMDPORT:-11124}
NODE_CMDPORT=${NODE_CMDPORT:-11125}
CHRONYD=${CHRONYD:-$(command -v chronyd || echo /usr/sbin/chronyd)}

pid_of() { # pid_of NAME: the PID of a running daemon, or nothing
  local f=$dir/$1/chronyd.pid p
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  if [[ $p =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null; then echo "$p"; fi
}

start_one() { # start_one NAME TEMPLATE
  local name=$1 tmpl=$2 d=$dir/$1
  if [ -n "$(pid_of "$name")" ]; then
    echo "$name already running (pid $(pid_of "$name"))" >&2
    return 1
  fi
  mkdir -p "$d"
  # chronyd insists that its socket folder belongs to its user and is private.
  chmod 0700 "$d"
  rm -f "$d/chronyd.pid" "$d/chronyd.sock"
  sed -e "s|@DIR@|$dir|g" -e "s|@MASTER_PORT@|$MASTER_PORT|g" \
      -e "s|@MASTER_ADDR@|127.0.0.1|g" -e "s|@MASTER_ALLOW@|127.0.0.1|g" \
      -e "s|@MASTER_CMDPORT@|$MASTER_CMDPORT|g" -e "s|@NODE_CMDPORT@|$NODE_CMDPORT|g" \
      "$here/$tmpl" > "$d/chronyd.conf"
  # -x: never adjust the system clock. -u: stay the user we are, so the daemon
  # can write in DIR. The parent returns once the daemon is up (or failed).
  if ! "$CHRONYD" -x -u "$(id -un)" -f "$d/chronyd.conf" -l "$d/chronyd.log"; then
    echo "$name: chronyd failed to start; see $d/chronyd.log" >&2
    tail -n 5 "$d/chronyd.log" >&2 2>/dev/null || true
    return 1
  fi
  local i
  for i in $(seq 1 100); do # the pidfile appears as the daemon finishes starting
    [ -n "$(pid_of "$name")" ] && return 0
    sleep 0.05
  done
  echo "$name: no pidfile after start; see $d/chronyd.log" >&2
  return 1
}

stop_one() { # stop_one NAME
  local p i
  p=$(pid_of "$1")
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$p" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$p" 2>/dev/null || true
}

case $cmd in
start)
  if [ "$(id -u)" != 0 ]; then
    echo "chronyd must be started as root (it refuses otherwise, even with -x)" >&2
    exit 1
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  start_one master master.conf.in
  if ! start_one node node.conf.in; then stop_one master; exit 1; fi
  echo "master pid $(pid_of master) ntp 127.0.0.1:$MASTER_PORT cmd 127.0.0.1:$MASTER_CMDPORT"
  echo "node   pid $(pid_of node) cmd 127.0.0.1:$NODE_CMDPORT socket $dir/node/chronyd.sock"
  ;;
stop)
  stop_one node
  stop_one master
  ;;
stop-master)
  stop_one master
  ;;
status)
  for n in master node; do
    p=$(pid_of $n)
    if [ -n "$p" ]; then echo "$n: running pid $p"; else echo "$n: stopped"; fi
  done
  if [ -n "$(pid_of node)" ]; then
    chronyc -n -h 127.0.0.1 -p "$NODE_CMDPORT" tracking || true
  fi
  ;;
*)
  echo "usage: $0 start|stop|stop-master|status DIR" >&2
  exit 2
  ;;
esac
