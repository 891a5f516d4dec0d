#!/usr/bin/env bash
# Quick start, command 1: install what is needed, build, and start the main
# job: `meridian demo`, a local 3-node cluster with the SQL shell on it (the
# cluster and its files go away when the shell exits). Extra arguments go to
# `meridian demo` (e.g. --global, --dataset flights, --nodes 5).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
dir=$(bash "$root/scripts/build.sh" | tail -n 1)
exec "$dir/server/meridian" demo "$@"
