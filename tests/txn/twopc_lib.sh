# Helpers shared by the 2PC cluster tests (sourced; needs $dir and sqlite3).

# same_replicas: every range's replicas on nodes 1..3 hold the same versions
# and no prepared intent (read-only opens of the live WAL databases). On
# failure, $dir/why says which range and node differ, and how.
same_replicas() {
  local r n f
  for f in "$dir"/n1/ranges/r*.db; do
    r=$(basename "$f")
    for n in 1 2 3; do
      [ -e "$dir/n$n/ranges/$r" ] || { echo "$r: missing on node $n" >"$dir/why"; return 1; }
      sqlite3 "file:$dir/n$n/ranges/$r?mode=ro" \
        "SELECT (SELECT count(*) FROM intents), hex(key), ts, hex(val) FROM versions ORDER BY key, ts" \
        >"$dir/cmp.$n" 2>"$dir/why" || { echo "$r: unreadable on node $n" >>"$dir/why"; return 1; }
      if grep -qv '^0|' "$dir/cmp.$n"; then
        { echo "$r: node $n holds intents:"
          sqlite3 "file:$dir/n$n/ranges/$r?mode=ro" "SELECT hex(key), * FROM intents" 2>&1 | head -5
        } >"$dir/why"
        return 1
      fi
    done
    for n in 2 3; do
      cmp -s "$dir/cmp.1" "$dir/cmp.$n" && continue
      { echo "$r: node 1 and node $n differ ($(wc -l <"$dir/cmp.1") / $(wc -l <"$dir/cmp.$n") versions):"
        diff "$dir/cmp.1" "$dir/cmp.$n" | head -10
      } >"$dir/why"
      return 1
    done
  done
}

# same_replicas_or_say: waits up to $1 s for same_replicas; on timeout prints
# why, each node's view of its ranges and their applied slots.
same_replicas_or_say() {
  wait_for "$1" same_replicas && return 0
  cat "$dir/why"
  local n
  for n in 1 2 3; do
    echo "node $n (range: applied slot, ballot, leaseholder):"
    curl -s --max-time 2 "http://$(awk -v i="$n" '$1==i {print $4}' "$dir/nodes")/metrics" |
      grep -E '^meridian_range_(applied_slot|ballot_round|leaseholder)\{' | tr '\n' ' '
    echo
  done
  return 1
}

# split_rows N K1 K2 ...: splits the cluster's data at the K-th of the last N
# row keys.
split_rows() {
  local n=$1 i k; shift
  "$bin" debug kv scan --hex --insecure --host "$hosts" | grep -av '^(' | tail -"$n" | cut -d= -f1 >"$dir/keys"
  for i in "$@"; do
    k=$(sed -n "${i}p" "$dir/keys")
    "$bin" debug split --key "$k" --insecure --host "$hosts" >/dev/null || return 1
  done
}
