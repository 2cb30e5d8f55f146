"""Checks a render of the chart with deploy/test/helm-extras-values.yaml:
every pod (the test pod too) carries the scheduling values and the pull
secret, extraEnv lands in its container, and the ServiceMonitor and HTTPRoute
(custom resources no Kubernetes schema knows) point at what exists. Writes
every other object for kubernetes-validate.

Usage: helm_extras.py RENDERED VALUES OUT_WITHOUT_CUSTOM_RESOURCES
"""

import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
values = yaml.safe_load(open(sys.argv[2]))
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

pods = [(n, d["spec"]["template"]["spec"]) for n, d in by_kind["Deployment"].items()]
pods += [(n, d["spec"]) for n, d in by_kind["Pod"].items()]
assert len(pods) == 5, [n for n, _ in pods]
want = values["scheduling"]
for name, pod in pods:
    assert pod.get("imagePullSecrets") == values["imagePullSecrets"], f"{name}: pull secrets"
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod.get(key) == want[key], f"{name}: {key} is {pod.get(key)!r}"

for name in ("yelb-ui", "yelb-appserver"):
    component = name.removeprefix("yelb-")
    container = by_kind["Deployment"][name]["spec"]["template"]["spec"]["containers"][0]
    for entry in values[component]["extraEnv"]:
        assert entry in container["env"], f"{name}: extraEnv {entry['name']} missing"

monitor = by_kind["ServiceMonitor"]["yelb-appserver"]
service = by_kind["Service"]["yelb-appserver"]
assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
selector = monitor["spec"]["selector"]["matchLabels"]
assert all(service["metadata"]["labels"].get(k) == v for k, v in selector.items()), "the ServiceMonitor selects no Service"
port = monitor["spec"]["endpoints"][0]
assert port["port"] in {p["name"] for p in service["spec"]["ports"]}, port
assert port["path"] == "/metrics" and port["interval"] == "30s", port
assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack", "labels for the operator's selector"

route = by_kind["HTTPRoute"]["yelb-ui"]
assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
assert route["spec"]["parentRefs"] == values["httpRoute"]["parentRefs"]
assert route["spec"]["hostnames"] == values["httpRoute"]["hostnames"]
backend = route["spec"]["rules"][0]["backendRefs"][0]
ui = by_kind["Service"]["yelb-ui"]
assert backend["name"] == "yelb-ui" and backend["port"] in {p["port"] for p in ui["spec"]["ports"]}, backend

custom = ("ServiceMonitor", "HTTPRoute")
yaml.safe_dump_all([d for d in docs if d["kind"] not in custom], open(sys.argv[3], "w"))
print(f"  helm extras: {len(pods)} pods scheduled and pulling as asked, extraEnv in place, ServiceMonitor and HTTPRoute aim right")
