#!/usr/bin/env python3
"""Turns deploy/daemonset.yaml's pod into what `docker run` needs, so the image test runs
the container the way the DaemonSet does, with the manifest as the single source.

  pod_spec.py DAEMONSET CONFIGMAP DIR NODE [OVERLAY]

Writes DIR/volumes/<volume>/ for every volume (a configMap volume gets the ConfigMap's data
as files, config.yaml merged with the optional OVERLAY YAML; a hostPath volume becomes an
empty directory under DIR/host<path>, never the host's own path) and prints shell
assignments: IMAGE, RUN_ARGS (docker run options), ARGS (the container's args), LIVENESS
(the liveness command), GRACE (terminationGracePeriodSeconds), each as a bash array.
hostNetwork is deliberately not carried over: the test keeps the agent in its own network
namespace so the host's network stays as it was.
"""
import os
import shlex
import sys

import yaml


def merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def main():
    ds_path, cm_path, out, node = sys.argv[1:5]
    overlay = yaml.safe_load(sys.argv[5]) if len(sys.argv) > 5 else None
    ds = yaml.safe_load(open(ds_path))
    configmaps = {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(cm_path)) if d and d.get("kind") == "ConfigMap"}
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    run = []
    if c.get("securityContext", {}).get("privileged"):
        run.append("--privileged")
    for e in c.get("env", []):
        if "value" in e:
            run += ["-e", f"{e['name']}={e['value']}"]
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            run += ["-e", f"{e['name']}={node}"]
        else:
            sys.exit(f"pod_spec.py: env {e['name']}: only value and fieldRef spec.nodeName are known")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        v = volumes[m["name"]]
        if "configMap" in v:
            src = os.path.join(out, "volumes", m["name"])
            os.makedirs(src, exist_ok=True)
            for key, text in configmaps[v["configMap"]["name"]]["data"].items():
                if key == "config.yaml" and overlay:
                    text = yaml.safe_dump(merge(yaml.safe_load(text) or {}, overlay), sort_keys=False)
                with open(os.path.join(src, key), "w") as f:
                    f.write(text)
        elif "hostPath" in v:
            src = os.path.join(out, "host" + v["hostPath"]["path"])
            os.makedirs(src, exist_ok=True)
        else:
            sys.exit(f"pod_spec.py: volume {m['name']}: only configMap and hostPath are known")
        run += ["-v", f"{src}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]
    probe = c["livenessProbe"]["exec"]["command"]
    out_vars = {
        "IMAGE": [c["image"]],
        "RUN_ARGS": run,
        "ARGS": c.get("args", []),
        "LIVENESS": probe,
        "GRACE": [str(pod.get("terminationGracePeriodSeconds", 30))],
    }
    for name, words in out_vars.items():
        print(f"{name}=({' '.join(shlex.quote(w) for w in words)})")


main()
