"""Checks that every deployment describes the same app: the same four
services under the original names, the same images, container ports,
environment variables (names, and values where both give a literal one) and
health-check paths; and that whatever restarts a container checks liveness
(/healthz), never readiness (/readyz): a container restarted for failing
readiness would take every app server down with the database.

Usage: agree.py COMPOSE SWARM KUSTOMIZE_RENDERED HELM_RENDERED ECS_TEMPLATE
Prints one line per target and exits 1 on the first disagreement.
"""

import re
import sys

import yaml

SERVICES = {
    "yelb-ui": {"image": "yelb-ui", "port": 8080},
    "yelb-appserver": {"image": "yelb-appserver", "port": 4567},
    "yelb-db": {"image": "yelb-db", "port": 5432},
    "redis-server": {"image": "yelb-cache", "port": 6379},
}


def image_name(ref):
    """`registry/x/yelb-ui:tag` or `${REGISTRY}yelb-ui:${TAG}` -> `yelb-ui`."""
    ref = re.sub(r"\$\{[^}]*\}", "", ref)
    return ref.rsplit("/", 1)[-1].split(":", 1)[0]


def from_compose(path):
    doc = yaml.safe_load(open(path))
    out = {}
    for name, svc in doc["services"].items():
        ports = [p["target"] if isinstance(p, dict) else int(str(p).split(":")[-1]) for p in svc.get("ports", [])]
        test = svc.get("healthcheck", {}).get("test", [])
        paths = {test[i + 1] for i, t in enumerate(test) if t == "--path"}
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        out[name] = {
            "image": image_name(svc["image"]),
            "ports": set(ports),
            "env": set(env),
            "values": {k: v for k, v in env.items() if "${" not in v},
            "paths": paths,
            # A failing container health check gets the container replaced.
            "liveness": paths,
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
        live = container.get("livenessProbe", {}).get("httpGet")
        out[doc["metadata"]["name"]] = {
            "image": image_name(container["image"]),
            "ports": {p["containerPort"] for p in container.get("ports", [])},
            "env": {e["name"] for e in container.get("env", [])},
            "values": {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e},
            "paths": paths,
            "liveness": {live["path"]} if live else set(),
        }
    return out


class CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !Sub, ...) as plain values."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


CloudFormationLoader.add_multi_constructor("!", _any_tag)


def from_ecs(path):
    doc = yaml.load(open(path), Loader=CloudFormationLoader)
    out = {}
    for resource in doc["Resources"].values():
        if resource["Type"] != "AWS::ECS::TaskDefinition":
            continue
        for c in resource["Properties"]["ContainerDefinitions"]:
            image = c["Image"]
            image = image[0] if isinstance(image, list) else image
            test = c.get("HealthCheck", {}).get("Command", [])
            paths = {test[i + 1] for i, t in enumerate(test) if t == "--path"}
            env = {e["Name"]: str(e["Value"]) for e in c.get("Environment", [])}
            out[c["Name"]] = {
                "image": image_name(image),
                "ports": {p["ContainerPort"] for p in c.get("PortMappings", [])},
                "env": set(env) | {e["Name"] for e in c.get("Secrets", [])},
                "values": env,
                "paths": paths,
                "liveness": paths,
            }
    return out


def main():
    compose, swarm, kustomize, helm, ecs = sys.argv[1:6]
    targets = {
        "compose": from_compose(compose),
        "swarm": from_compose(swarm),
        "kustomize": from_kubernetes(kustomize),
        "helm": from_kubernetes(helm),
        "ecs": from_ecs(ecs),
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
        for target in ("helm", "compose", "swarm", "ecs"):
            got = targets[target][name]
            # YELB_UI_HEADER_TIMEOUT: ECS's UI outlasts its ALB's idle timeout
            # (deploy/test/ecs.py checks the two).
            ecs_only = {"YELB_UI_HEADER_TIMEOUT"} if target == "ecs" else set()
            extra = got["env"] - base["env"] - {"YELB_UI_TITLE", "YELB_UI_UPSTREAM_KEEPALIVE"} - ecs_only
            # YELB_NODE: Compose has no nodes, and Fargate does not say.
            missing = base["env"] - got["env"] - {"YELB_SHUTDOWN_TIMEOUT", "YELB_SHUTDOWN_DELAY", "YELB_NODE"}
            if extra or missing:
                failures.append(f"{target}/{name}: env differs from kustomize (extra {extra}, missing {missing})")
            if got["paths"] and not got["paths"] <= base["paths"]:
                failures.append(f"{target}/{name}: health paths {got['paths']} not in {base['paths']}")
            for var in set(got["values"]) & set(base["values"]):
                if got["values"][var] != base["values"][var]:
                    failures.append(
                        f"{target}/{name}: {var}={got['values'][var]!r}, kustomize says {base['values'][var]!r}"
                    )
        for target in targets:
            live = targets[target][name]["liveness"]
            if live != {"/healthz"}:
                failures.append(f"{target}/{name}: what restarts the container checks {sorted(live)}, not /healthz")
    for target, services in targets.items():
        print(f"  {target}: {len(services)} services agree" if not any(f.startswith(target) for f in failures) else f"  {target}: DISAGREES")
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
