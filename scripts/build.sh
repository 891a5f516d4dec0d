#!/usr/bin/env bash
# Configures and builds Meridian into a build folder. Used by quickstart.sh and
# test.sh; also handy on its own.
#   BUILD_DIR   (default build, or build-asan when MERIDIAN_SANITIZE=1)
#   BUILD_TYPE  (default RelWithDebInfo)
#   MERIDIAN_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
san=${MERIDIAN_SANITIZE:-0}
if [ "$san" = 1 ]; then
  dir=${BUILD_DIR:-$root/build-asan}
  type=${BUILD_TYPE:-Debug}
  sanflag=ON
else
  dir=${BUILD_DIR:-$root/build}
  type=${BUILD_TYPE:-RelWithDebInfo}
  sanflag=OFF
fi
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DMERIDIAN_SANITIZE="$sanflag" >/dev/null
cmake --build "$dir" -j"$(nproc)"
echo "$dir"
