#!/usr/bin/env bash
# Installs every Debian package Meridian needs to build, test and run.
# Idempotent: packages already present are skipped by apt. Debian 12, as root.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libsqlite3-dev sqlite3
  libuv1-dev
  libssl-dev openssl         # TLS (rpc/tls.c) and certificates (meridian cert)
  libprotobuf-c-dev protobuf-c-compiler
  chrony
  libcmocka-dev
  libedit-dev                # line editing and history in the SQL shell
  clang libclang-rt-14-dev   # libFuzzer and sanitizer runtimes
  clang-format
  python3                    # plots and small test helpers
  libpq-dev postgresql       # meridian tpcc --pg-url, bench/pg-setup.sh
  procps iproute2 curl
  iptables                   # the netns-partition nemesis (tests/jepsen): cuts inside namespaces
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# chrony's package may start the system chronyd: that is the machine's own
# time keeping and stays as it is. Meridian's tests run their own pair with -x
# (never touching the clock) on non-standard loopback ports.
