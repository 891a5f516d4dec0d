# Helpers shared by the 2PC cluster tests (sourced; needs $dir and sqlite3).

# same_replicas: every range's replicas on nodes 1..3 hold the same versions
# and no prepared intent (read-only opens of the live WAL databases).
same_replicas() {
  local r n f
  for f in "$dir"/n1/ranges/r*.db; do
    r=$(basename "$f")
    for n in 1 2 3; do
      [ -e "$dir/n$n/ranges/$r" ] || return 1
      sqlite3 "file:$dir/n$n/ranges/$r?mode=ro" \
        "SELECT (SELECT count(*) FROM intents), hex(key), ts, hex(val) FROM versions ORDER BY key, ts" \
        >"$dir/cmp.$n" 2>/dev/null || return 1
      grep -qv '^0|' "$dir/cmp.$n" && return 1
    done
    cmp -s "$dir/cmp.1" "$dir/cmp.2" && cmp -s "$dir/cmp.1" "$dir/cmp.3" || return 1
  done
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
