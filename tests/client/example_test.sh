#!/usr/bin/env bash
# Installs Meridian into a temporary prefix, checks the installed files and
# the library's exported symbols, builds examples/embed.c against the
# installed header and pkg-config file only, and runs it against a gateway.
#   example_test.sh BUILD_DIR EMBED_C SESSION_SERVER "EXTRA_CFLAGS" LIBMERIDIAN_SO
set -euo pipefail
build=$1 src=$2 server=$3 extra=$4 so=$5
tmp=$(mktemp -d)
spid=""
cleanup() {
  if [ -n "$spid" ]; then kill -9 "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Only the public API leaves the shared library.
bad=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | sed 's/@.*//' \
  | grep -v '^meridian_[a-z]' || true)
if [ -n "$bad" ]; then echo "FAIL: libmeridian exports non-API symbols:"; echo "$bad" | head; exit 1; fi
nm -D --defined-only "$so" | grep -q ' T meridian_open@@MERIDIAN_0.1$' || { echo "FAIL: meridian_open not exported"; exit 1; }

# ...and every function of the header is exported.
for f in $(grep -oE 'meridian_[a-z0-9_]+\(' "$(dirname "$src")/../include/meridian.h" | tr -d '(' | sort -u); do
  nm -D --defined-only "$so" | grep -q " T $f@@" || { echo "FAIL: $f not exported"; exit 1; }
done

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in include/meridian.h lib/libmeridian.so lib/pkgconfig/meridian.pc; do
  [ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs meridian)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $extra "$src" $flags -o "$tmp/embed"

"$server" --node-id 5 > "$tmp/port" &
spid=$!
for _ in $(seq 1 3000); do grep -q '^port=' "$tmp/port" 2>/dev/null && break; sleep 0.01; done
port=$(sed -n 's/^port=//p' "$tmp/port")
[ -n "$port" ] || { echo "FAIL: server did not start"; exit 1; }

out=$(LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/embed" "127.0.0.1:$port")
expected=$'apple 0.50\nbanana 0.25'
if [ "$out" != "$expected" ]; then
  echo "FAIL: example printed:"; echo "$out"; exit 1
fi
# A bad address: a clear error and a non-zero exit, no crash.
if LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/embed" "not-an-address" 2> "$tmp/err"; then
  echo "FAIL: example succeeded without a server"; exit 1
fi
grep -q "not-an-address" "$tmp/err" || { echo "FAIL: unclear error:"; cat "$tmp/err"; exit 1; }
echo "ok"
