#!/usr/bin/env bash
# PostgreSQL for `meridian tpcc --pg-url`: what a user would otherwise pick,
# set up on this machine from Debian's packages (scripts/install-deps.sh) so
# Meridian can be compared with it on the same hardware.
#
#   bench/pg-setup.sh start DIR [--port P] [--standbys 0|2]
#   bench/pg-setup.sh stop DIR
#   bench/pg-setup.sh url DIR
#
# start: a primary on 127.0.0.1:P (default 55432) and, unless --standbys 0,
#   two streaming standbys s1 and s2 on P+1 and P+2 with
#   synchronous_standby_names = 'ANY 1 (s1, s2)' (a commit waits until one of
#   the two has flushed it: the durability of a 3-replica quorum, as Meridian's
#   Paxos groups give). Everything lives in DIR; trust authentication on
#   loopback only. Prints the libpq URL. Idempotent: a running setup is left
#   as it is.
# stop: stops every server of DIR by the PID in its postmaster.pid (standbys
#   first), waits for each to exit, and removes what start created. Safe to
#   run twice, or after a crash.
set -euo pipefail

usage() { echo "usage: $0 start|stop|url DIR [--port P] [--standbys 0|2]" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
port=55432 standbys=2
while [ $# -gt 0 ]; do
  case $1 in
    --port) port=$2; shift 2 ;;
    --standbys) standbys=$2; shift 2 ;;
    *) usage ;;
  esac
done
[ "$standbys" = 0 ] || [ "$standbys" = 2 ] || usage

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] && [ -x "$bin/initdb" ] || {
  echo "pg-setup: PostgreSQL server binaries not found; run scripts/install-deps.sh" >&2
  exit 1
}

# PostgreSQL refuses to run as root. As root, its programs run in a user
# namespace as the `postgres` uid (still root's files outside, so DIR needs no
# chown and its parents no permissions; it also works where /dev/null is not
# world-writable); where user namespaces are off, as the real `postgres` user.
mode=plain
if [ "$(id -u)" = 0 ]; then
  pguid=$(id -u postgres) pggid=$(id -g postgres)
  if unshare --user --map-user="$pguid" --map-group="$pggid" true 2>/dev/null; then
    mode=userns
  else
    mode=runuser
  fi
fi
as_pg() {
  case $mode in
    userns) unshare --user --map-user="$pguid" --map-group="$pggid" "$@" ;;
    runuser) runuser -u postgres -- "$@" ;;
    *) "$@" ;;
  esac
}

# PID of the server whose data directory is $1, if it runs.
pid_of() {
  local f=$1/postmaster.pid pid
  [ -f "$f" ] || return 1
  pid=$(head -1 "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_one() {
  local d=$1 pid i
  pid=$(pid_of "$d") || return 0
  kill -INT "$pid" 2>/dev/null || true # fast shutdown: roll back, checkpoint, exit
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "pg-setup: $d (pid $pid) ignored SIGINT for 30 s; SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

start_one() {
  local d=$1
  pid_of "$d" >/dev/null && return 0
  as_pg "$bin/pg_ctl" -D "$d" -l "$d.log" -w -t 60 start >/dev/null
}

psql_p() { as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc "$1"; }

url() { echo "postgresql://postgres@127.0.0.1:$port/postgres"; }

case $cmd in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$mode" = runuser ] && chown postgres: "$dir"
  as_pg test -w "$dir" -a -x "$dir" || {
    echo "pg-setup: $dir is not writable by the server's user (as root: postgres; every" \
      "parent directory must be searchable by it)" >&2
    exit 1
  }
  echo "$port" >"$dir/port"
  if [ ! -f "$dir/primary/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log"
    cat >>"$dir/primary/postgresql.conf" <<EOF
# bench/pg-setup.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 10
max_connections = 300
shared_buffers = 256MB
EOF
  fi
  start_one "$dir/primary"
  if [ "$standbys" = 2 ]; then
    for i in 1 2; do
      s=$dir/s$i
      if [ ! -f "$s/PG_VERSION" ]; then
        as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$s" -X stream -R \
          >"$dir/basebackup-s$i.log" 2>&1
        # Later settings win: this standby's port and the name the primary's
        # synchronous_standby_names refers to.
        cat >>"$s/postgresql.auto.conf" <<EOF
port = $((port + i))
primary_conninfo = 'host=127.0.0.1 port=$port user=postgres application_name=s$i'
EOF
      fi
      start_one "$s"
    done
    psql_p "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (s1, s2)'" >/dev/null
    psql_p "SELECT pg_reload_conf()" >/dev/null
    # Ready when both standbys stream as quorum candidates.
    for i in $(seq 1 300); do
      n=$(psql_p "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'")
      [ "$n" = 2 ] && break
      sleep 0.1
    done
    [ "$n" = 2 ] || { echo "pg-setup: standbys did not become synchronous" >&2; exit 1; }
  fi
  url
  ;;
stop)
  [ -d "$dir" ] || exit 0
  stop_one "$dir/s2"
  stop_one "$dir/s1"
  stop_one "$dir/primary"
  rm -rf "$dir/primary" "$dir/s1" "$dir/s2" "$dir"/*.log "$dir/port"
  rmdir "$dir" 2>/dev/null || true
  ;;
url)
  [ -f "$dir/port" ] || { echo "pg-setup: nothing started in $dir" >&2; exit 1; }
  port=$(cat "$dir/port")
  url
  ;;
*) usage ;;
esac
