"""Checks the rendered OpenShift overlay for what the restricted SCC needs,
and writes every object but the Route (which no Kubernetes schema knows) for
kubernetes-validate.

Usage: openshift.py RENDERED OUT_WITHOUT_ROUTE
"""

import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
routes = [d for d in docs if d["kind"] == "Route"]
assert len(routes) == 1, "exactly one Route"
route = routes[0]
assert route["apiVersion"] == "route.openshift.io/v1", route["apiVersion"]
# The fields route.openshift.io/v1 requires, and what they must point at.
assert route["spec"]["to"] == {"kind": "Service", "name": "yelb-ui", "weight": 100}, route["spec"]["to"]
assert route["spec"]["port"]["targetPort"] == "http"
assert route["spec"]["tls"]["termination"] in ("edge", "passthrough", "reencrypt")
for doc in docs:
    if doc["kind"] != "Deployment":
        continue
    pod = doc["spec"]["template"]["spec"]
    fixed = {"runAsUser", "runAsGroup", "fsGroup"} & set(pod.get("securityContext", {}))
    assert not fixed, f"{doc['metadata']['name']} asks for {fixed}: the restricted SCC refuses it"
    for container in pod["containers"]:
        context = container.get("securityContext", {})
        assert "runAsUser" not in context, container["name"]
        assert context.get("allowPrivilegeEscalation") is False, container["name"]
        assert context.get("capabilities", {}).get("drop") == ["ALL"], container["name"]
    assert pod["securityContext"].get("runAsNonRoot") is True, doc["metadata"]["name"]
yaml.safe_dump_all([d for d in docs if d["kind"] != "Route"], open(sys.argv[2], "w"))
print(f"  openshift: Route ok, {len(docs) - 1} objects ask for no UID")
