#!/usr/bin/env bash
# deploy/ applied for real: every Kubernetes manifest in deploy/ goes to the real
# kube-apiserver (tests/k8s) with `kubectl apply --server-side --validate=strict` and is
# read back; the server keeps every field the manifest sets as written (its defaults come
# on top), a second apply changes nothing, and the ConfigMap's config as stored by the server
# passes `nodeagentd --check-config`.
# Usage: manifests_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"; src="$2"
D="$(mktemp -d /tmp/nodeagent-manifests-XXXXXX)"
trap 'bash "$src/tests/k8s/control-plane.sh" stop "$D/cp" >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
bash "$src/tests/k8s/control-plane.sh" start "$D/cp" >/dev/null 2>"$D/cp.log" || { cat "$D/cp.log"; exit 1; }
# shellcheck disable=SC1091
. "$D/cp/env"
kubectl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

manifests=()
for f in "$src"/deploy/*.yaml; do
  grep -q '^kind:' "$f" && manifests+=("$f")
done
kinds="$(cat "${manifests[@]}" | sed -n 's/^kind: *//p' | sort | tr '\n' ' ')"
echo "manifests: ${manifests[*]##*/} ($kinds)"
for k in ClusterRole ClusterRoleBinding ConfigMap DaemonSet ServiceAccount; do
  grep -qw "$k" <<<"$kinds" || { echo "deploy/ has no $k"; exit 1; }
done

for f in "${manifests[@]}"; do
  kubectl apply --server-side --validate=strict --field-manager=nodeagent-deploy -f "$f" > "$D/apply.out" 2>&1 ||
    { echo "apply ${f##*/} refused:"; cat "$D/apply.out"; exit 1; }
  if grep -qi warning "$D/apply.out"; then echo "apply ${f##*/} warned:"; cat "$D/apply.out"; exit 1; fi
  sed 's/^/  /' "$D/apply.out"
  kubectl get -f "$f" -o json > "$D/back.json"
  # Every field the manifest sets must come back as written.
  python3 - "$f" "$D/back.json" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
back = json.load(open(sys.argv[2]))
items = back["items"] if back.get("kind") == "List" else [back]
problems = []
def same(want, got, path):
    if isinstance(want, dict):
        if not isinstance(got, dict):
            problems.append(f"{path}: {got!r} is not a map"); return
        for k, v in want.items():
            if k not in got:
                problems.append(f"{path}.{k}: dropped by the server")
            else:
                same(v, got[k], f"{path}.{k}")
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            problems.append(f"{path}: {len(want)} items written, {got!r} read back"); return
        for i, (w, g) in enumerate(zip(want, got)):
            same(w, g, f"{path}[{i}]")
    elif want != got and str(want) != str(got):
        problems.append(f"{path}: wrote {want!r}, read back {got!r}")
for d, b in zip(docs, items):
    same(d, b, f"{d['kind']}/{d['metadata']['name']}")
if len(docs) != len(items):
    problems.append(f"{len(docs)} objects applied, {len(items)} read back")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
  # A second apply of the same file is a no-op: no field of it is defaulted away or fought over.
  before="$(kubectl get -f "$f" -o jsonpath='{range .items[*]}{.metadata.resourceVersion} {end}{.metadata.resourceVersion}')"
  kubectl apply --server-side --validate=strict --field-manager=nodeagent-deploy -f "$f" >/dev/null
  after="$(kubectl get -f "$f" -o jsonpath='{range .items[*]}{.metadata.resourceVersion} {end}{.metadata.resourceVersion}')"
  [ "$before" = "$after" ] || { echo "re-applying ${f##*/} changed it ($before -> $after)"; exit 1; }
  echo "${f##*/}: read back unchanged, re-apply is a no-op"
done

kubectl -n kube-system get configmap nodeagent-config -o jsonpath='{.data.config\.yaml}' > "$D/config.yaml"
[ -s "$D/config.yaml" ] || { echo "the ConfigMap has no config.yaml"; exit 1; }
"$build/agent/nodeagentd" --check-config --config "$D/config.yaml" > "$D/effective.yaml" ||
  { echo "the ConfigMap's config fails --check-config"; exit 1; }
grep -q '^kube:' "$D/effective.yaml" || { echo "check-config printed no kube section"; exit 1; }
echo "ConfigMap config.yaml passes nodeagentd --check-config"
# The DaemonSet runs the image deploy/build-image.sh makes, under the ServiceAccount rbac.yaml binds.
img="$(kubectl -n kube-system get ds nodeagent -o jsonpath='{.spec.template.spec.containers[0].image}')"
version="$(sed -nE 's/^project\(nodeagent VERSION ([0-9.]+).*/\1/p' "$src/CMakeLists.txt")"
[ "$img" = "nodeagent:$version" ] || { echo "DaemonSet image $img, build-image.sh makes nodeagent:$version"; exit 1; }
[ "$(kubectl -n kube-system get ds nodeagent -o jsonpath='{.spec.template.spec.serviceAccountName}')" = \
  "$(kubectl get clusterrolebinding nodeagent -o jsonpath='{.subjects[0].name}')" ] || { echo "ServiceAccount mismatch"; exit 1; }
echo "manifests test ok"
