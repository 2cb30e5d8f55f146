"""Adapts rendered Kubernetes YAML to what podman 4.3's `kube play` can run
on one host, and writes the podman secret files it needs. Each change works
around a podman limitation, not a problem of the manifests:

- Secrets: podman 4.3 stores a played Secret as YAML but reads it back as a
  flat JSON map of base64 values, so secretKeyRef fails. The Secret objects
  are left out and written as such JSON files, for `podman secret create`.
- One replica per Deployment: podman publishes every container port on the
  host, so a second replica's port collides with the first.
- The downward API's spec.nodeName (YELB_NODE) is not supported by podman
  4.3 ("fieldPath spec.nodeName is either not valid or not supported"), so
  it becomes a literal value naming the podman host.
- The Secret yelb-admin and the ConfigMap yelb-ui are made by scripts/up.sh
  on a cluster, not by the manifests: the Secret is written here with a
  fresh token (so stage control's wiring is exercised), and the ConfigMap's
  optional public URL becomes an empty literal (podman 4.3 does not look
  ConfigMaps up by name).
- yelb-db keeps a writable root and no emptyDir for its socket: podman does
  not apply fsGroup to emptyDir volumes, so Postgres (UID 999) could not
  write there.

Services are not implemented by podman either; the test gives each pod its
Service's name as a network alias instead.

Usage: podman-kube.py RENDERED OUT_YAML SECRETS_DIR
"""

import base64
import json
import os
import secrets as random
import sys

import yaml

rendered, out, secrets = sys.argv[1:4]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
os.makedirs(secrets, exist_ok=True)
kept = []
with open(os.path.join(secrets, "yelb-admin"), "w") as f:
    json.dump({"token": base64.b64encode(random.token_hex(16).encode()).decode()}, f)
for doc in docs:
    if doc["kind"] == "Secret":
        data = {k: base64.b64encode(v.encode()).decode() for k, v in doc.get("stringData", {}).items()}
        data.update(doc.get("data", {}))
        with open(os.path.join(secrets, doc["metadata"]["name"]), "w") as f:
            json.dump(data, f)
        continue
    if doc["kind"] == "Deployment":
        doc["spec"]["replicas"] = 1
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for env in container.get("env", []):
                if env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                    env.pop("valueFrom")
                    env["value"] = "podman-host"
                if "configMapKeyRef" in env.get("valueFrom", {}):
                    env.pop("valueFrom")
                    env["value"] = ""
        if doc["metadata"]["name"] == "yelb-db":
            container = pod["containers"][0]
            container["securityContext"].pop("readOnlyRootFilesystem", None)
            container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] == "data"]
            pod["volumes"] = [v for v in pod["volumes"] if v["name"] == "data"]
    kept.append(doc)
with open(out, "w") as f:
    yaml.safe_dump_all(kept, f)
print(f"  {len(kept)} objects for podman, {len(docs) - len(kept)} secret(s) as podman secrets")
