#!/usr/bin/env bash
# Checks the meridian binary's command line: help, version, exit codes.
set -u
bin=$1
fails=0; passes=0
expect() { # expect STATUS DESCRIPTION -- command...
  local want=$1 what=$2; shift 3
  local out; out=$("$@" 2>&1); local got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL: $what: exit $got, want $want"; echo "$out" | head -5; fails=$((fails+1))
  else passes=$((passes+1)); fi
  LAST_OUT=$out
}
contains() { # contains DESCRIPTION NEEDLE
  if printf '%s' "$LAST_OUT" | grep -qF -- "$2"; then passes=$((passes+1)); else
    echo "FAIL: $1: output lacks '$2'"; printf '%s\n' "$LAST_OUT" | head -5; fails=$((fails+1)); fi
}
expect 0 "meridian --help" -- "$bin" --help
contains "help lists version" "version"
expect 2 "meridian with no command" -- "$bin"
expect 2 "unknown command" -- "$bin" frobnicate
contains "unknown command names it" "unknown command 'frobnicate'"
expect 0 "version" -- "$bin" version
contains "version prints the version" "meridian 0."
contains "version prints the revision" "revision:"
contains "version prints the build type" "build:"
expect 0 "version --json" -- "$bin" version --json
contains "json has revision" '"revision":'
expect 0 "version --help" -- "$bin" version --help
expect 2 "unknown flag" -- "$bin" version --bogus
contains "unknown flag names it" "unknown flag '--bogus'"
expect 2 "stray argument" -- "$bin" version extra
# Every listed command answers --help with exit 0.
for c in $("$bin" --help | awk '/^Commands:/{f=1;next} f && /^  [a-z]/{print $1}'); do
  expect 0 "$c --help" -- "$bin" "$c" --help
done
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
