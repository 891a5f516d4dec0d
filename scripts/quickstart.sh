#!/usr/bin/env bash
# Quick start, command 1: install what is needed, build, and start the main job.
# Until the node exists this prints `meridian --help`; later it starts a local
# cluster and opens the shell (`meridian demo`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
dir=$(bash "$root/scripts/build.sh" | tail -n 1)
exec "$dir/server/meridian" --help
