"""Checks that every deployment describes the same app: the same four
services under the original names, the same images, container ports,
environment variables (by name) and health-check paths.

Usage: agree.py COMPOSE SWARM KUSTOMIZE_RENDERED HELM_RENDERED
Prints one line per target and exits 1 on the first disagreement.
"""

import sys

import yaml

SERVICES = {
    "yelb-ui": {"image": "yelb-ui", "port": 8080},
    "yelb-appserver": {"image": "yelb-appserver", "port": 4567},
    "yelb-db": {"image": "yelb-db", "port": 5432},
    "redis-server": {"image": "yelb-cache", "port": 6379},
}


def image_name(ref):
    """`registry/x/yelb-ui:tag` -> `yelb-ui`."""
    return ref.rsplit("/", 1)[-1].split(":", 1)[0]


def from_compose(path):
    doc = yaml.safe_load(open(path))
    out = {}
    for name, svc in doc["services"].items():
        ports = [p["target"] if isinstance(p, dict) else int(str(p).split(":")[-1]) for p in svc.get("ports", [])]
        test = svc.get("healthcheck", {}).get("test", [])
        paths = {test[i + 1] for i, t in enumerate(test) if t == "--path"}
        out[name] = {
            "image": image_name(svc["image"]),
            "ports": set(ports),
            "env": set((svc.get("environment") or {}).keys()),
            "paths": paths,
        }
    return out


def from_kubernetes(path):
    out = {}
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc["kind"] != "Deployment":
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        paths = set()
        for probe in ("readinessProbe", "livenessProbe"):
            get = container.get(probe, {}).get("httpGet")
            if get:
                paths.add(get["path"])
        out[doc["metadata"]["name"]] = {
            "image": image_name(container["image"]),
            "ports": {p["containerPort"] for p in container.get("ports", [])},
            "env": {e["name"] for e in container.get("env", [])},
            "paths": paths,
        }
    return out


def main():
    compose, swarm, kustomize, helm = sys.argv[1:5]
    targets = {
        "compose": from_compose(compose),
        "swarm": from_compose(swarm),
        "kustomize": from_kubernetes(kustomize),
        "helm": from_kubernetes(helm),
    }
    failures = []
    for target, services in targets.items():
        if set(services) != set(SERVICES):
            failures.append(f"{target}: services {sorted(services)}, expected {sorted(SERVICES)}")
            continue
        for name, want in SERVICES.items():
            got = services[name]
            if got["image"] != want["image"]:
                failures.append(f"{target}/{name}: image {got['image']}, expected {want['image']}")
            # Compose files publish only the UI; Kubernetes declares every port.
            if got["ports"] and got["ports"] != {want["port"]}:
                failures.append(f"{target}/{name}: ports {got['ports']}, expected {want['port']}")
    # Variables and probe paths of our two services agree everywhere (the
    # Kubernetes targets add only what has no meaning outside a cluster).
    for name in ("yelb-ui", "yelb-appserver"):
        base = targets["kustomize"][name]
        for target in ("helm", "compose", "swarm"):
            got = targets[target][name]
            extra = got["env"] - base["env"] - {"YELB_UI_TITLE", "YELB_UI_UPSTREAM_KEEPALIVE"}
            missing = base["env"] - got["env"] - {"YELB_SHUTDOWN_TIMEOUT", "YELB_SHUTDOWN_DELAY"}
            if extra or missing:
                failures.append(f"{target}/{name}: env differs from kustomize (extra {extra}, missing {missing})")
            if got["paths"] and not got["paths"] <= base["paths"]:
                failures.append(f"{target}/{name}: health paths {got['paths']} not in {base['paths']}")
    for target, services in targets.items():
        print(f"  {target}: {len(services)} services agree" if not any(f.startswith(target) for f in failures) else f"  {target}: DISAGREES")
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
