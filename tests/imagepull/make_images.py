#!/usr/bin/env python3
"""Writes small OCI images into an OCI layout, for pushing to a test registry with skopeo.

Usage: make_images.py LAYOUT_DIR SPEC...
SPEC is NAME:TAG=BASE/BASE_KIB+OWN_KIB, e.g. app1:v1=base0/512+64. Images naming the same
BASE share that base layer byte for byte (deterministic random data seeded by the name), so
a registry access log shows whether shared blobs are fetched once. Prints one line per image:
NAME:TAG followed by the digests of its blobs (config, layers).
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

def blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", d)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

def layer_tar(seed, kib):
    rnd = random.Random(seed)
    payload = rnd.randbytes(kib * 1024)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("data/" + seed.replace("/", "_"))
        info.size = len(payload)
        info.mtime = 0
        info.mode = 0o644
        t.addfile(info, io.BytesIO(payload))
    return buf.getvalue()

def main():
    layout = sys.argv[1]
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index_path = os.path.join(layout, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    for spec in sys.argv[2:]:
        ref, recipe = spec.split("=", 1)
        base, sizes = recipe.split("/", 1)
        base_kib, own_kib = (int(x) for x in sizes.split("+"))
        layers = [layer_tar("base:" + base, base_kib), layer_tar("own:" + ref, own_kib)]
        # gzip-compressed (deterministically) so skopeo pushes the blobs as they are.
        descs = [dict(blob(layout, gzip.compress(l, mtime=0)), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
                 for l in layers]
        diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
        config = {
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/true"], "Labels": {"nodeagent.test": ref}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        cdesc = dict(blob(layout, json.dumps(config, sort_keys=True).encode()),
                     mediaType="application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": descs}
        mdesc = dict(blob(layout, json.dumps(manifest, sort_keys=True).encode()),
                     mediaType="application/vnd.oci.image.manifest.v1+json")
        mdesc["annotations"] = {"org.opencontainers.image.ref.name": ref}
        index["manifests"] = [m for m in index["manifests"]
                              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != ref]
        index["manifests"].append(mdesc)
        print(ref, cdesc["digest"], *(d["digest"] for d in descs))
    with open(index_path, "w") as f:
        json.dump(index, f)

main()
