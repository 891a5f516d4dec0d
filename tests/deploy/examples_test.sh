#!/usr/bin/env bash
# Syntax check of the deployment examples (they are not run): the systemd
# unit with `systemd-analyze verify` (any warning fails), the Kubernetes
# manifests parsed as YAML with the kinds and references they must have.
# Skips (77) only when neither checker is available.
set -u
bin=$1 root=$2
ran=0 fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if command -v systemd-analyze >/dev/null; then
  ran=1
  # verify wants the binary and the user to exist: point them at this build.
  sed -e "s|/usr/local/bin/meridian|$bin|" -e "s|^User=.*|User=root|" -e "s|^Group=.*|Group=root|" \
    -e "s|/etc/meridian/meridian.env|$root/deploy/systemd/meridian.env|" \
    "$root/deploy/systemd/meridian.service" >"$tmp/meridian.service"
  if ! systemd-analyze verify "$tmp/meridian.service" >"$tmp/verify.out" 2>&1 || [ -s "$tmp/verify.out" ]; then
    echo "FAIL: systemd-analyze verify meridian.service:"; cat "$tmp/verify.out"; fails=$((fails + 1))
  fi
  # Every variable the unit uses is set in the env file example.
  for v in $(grep -o '\${MERIDIAN_[A-Z_]*}' "$root/deploy/systemd/meridian.service" | tr -d '${}' | sort -u); do
    grep -q "^$v=" "$root/deploy/systemd/meridian.env" || { echo "FAIL: meridian.env lacks $v"; fails=$((fails + 1)); }
  done
  # Every flag the unit passes exists in `meridian start`.
  execstart=$(awk '/^ExecStart=/ {on=1} on {print} on && !/\\$/ {exit}' "$root/deploy/systemd/meridian.service")
  for f in $(echo "$execstart" | grep -o -- '--[a-z-]*' | sort -u); do
    "$bin" start --help 2>&1 | grep -q -- "$f " || { echo "FAIL: meridian start has no $f"; fails=$((fails + 1)); }
  done
fi

if python3 -c 'import yaml' 2>/dev/null; then
  ran=1
  python3 - "$root/deploy/k8s" <<'PY' || fails=$((fails + 1))
import glob, os, sys, yaml
docs = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.yaml"))):
    for d in yaml.safe_load_all(open(f)):
        if d is None:
            continue
        for k in ("apiVersion", "kind", "metadata"):
            assert k in d, f"{f}: a document without {k}"
        docs.append(d)
kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
want = {("StatefulSet", "meridian"), ("Service", "meridian"), ("Service", "meridian-public"),
        ("PodDisruptionBudget", "meridian"), ("Job", "meridian-init"),
        ("Secret", "meridian-node-certs"), ("Secret", "meridian-client-certs")}
missing = want - kinds
assert not missing, f"missing: {missing}"
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
sts = by[("StatefulSet", "meridian")]
svc = by[("Service", "meridian")]
assert svc["spec"]["clusterIP"] == "None", "the peers' Service must be headless"
assert sts["spec"]["serviceName"] == "meridian"
labels = sts["spec"]["template"]["metadata"]["labels"]
assert all(labels.get(k) == v for k, v in sts["spec"]["selector"]["matchLabels"].items())
assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
pdb = by[("PodDisruptionBudget", "meridian")]
assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
secrets = {n for (k, n) in kinds if k == "Secret"}
for d in (sts, by[("Job", "meridian-init")]):
    for v in d["spec"]["template"]["spec"].get("volumes", []):
        if "secret" in v:
            assert v["secret"]["secretName"] in secrets, v
print(f"k8s: {len(docs)} documents ok")
PY
fi

[ "$ran" = 1 ] || { echo "SKIP: neither systemd-analyze nor python3 yaml is available"; exit 77; }
[ "$fails" = 0 ] && echo "examples: ok"
[ "$fails" = 0 ]
