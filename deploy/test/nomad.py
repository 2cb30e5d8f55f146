"""Parses the Nomad job (no nomad binary can be installed here) and checks
that it describes the same app as the other targets: the four groups and
services under the original names, their images, container ports and health
paths.

Usage: nomad.py JOB_FILE
"""

import sys

import hcl2

WANT = {
    "yelb-ui": ("yelb-ui", 8080, "/readyz"),
    "yelb-appserver": ("yelb-appserver", 4567, "/readyz"),
    "yelb-db": ("yelb-db", 5432, None),
    "redis-server": ("yelb-cache", 6379, None),
}


def unquote(s):
    return s.strip('"') if isinstance(s, str) else s


def blocks(items):
    """[{'"name"': {...}}, ...] -> {'name': {...}}"""
    out = {}
    for item in items:
        for key, value in item.items():
            out[unquote(key)] = value
    return out


doc = hcl2.load(open(sys.argv[1]))
jobs = blocks(doc["job"])
assert list(jobs) == ["yelb"], list(jobs)
groups = blocks(jobs["yelb"]["group"])
assert set(groups) == set(WANT), sorted(groups)
for name, (image, port, path) in WANT.items():
    group = groups[name]
    service = group["service"][0]
    assert unquote(service["name"]) == name, (name, service["name"])
    ports = blocks(group["network"][0]["port"])
    assert [p["to"] for p in ports.values()] == [port], (name, ports)
    task = blocks(group["task"])[name]
    assert unquote(task["driver"]) == "docker"
    ref = unquote(task["config"][0]["image"])
    assert ref.rsplit("/", 1)[-1].split(":")[0].endswith(image), (name, ref)
    check = service["check"][0]
    if path:
        assert unquote(check["type"]) == "http" and unquote(check["path"]) == path, (name, check)

# The failures this job once had on a real cluster.
app = blocks(groups["yelb-appserver"]["task"])["yelb-appserver"]
app_env = app["env"][0]
assert unquote(app_env.get("RACK_ENV")) == "custom", (
    "without backends registered, the app server must refuse to start, not run in memory"
)
assert groups["yelb-appserver"].get("spread"), "app-server replicas spread over clients"
db_env = blocks(groups["yelb-db"]["task"])["yelb-db"]["env"][0]
assert unquote(db_env.get("PGDATA", "")).startswith("/var/lib/postgresql/data/"), (
    "PGDATA in a subdirectory of the host volume (initdb refuses a root-owned mount point)"
)
ui_template = unquote(blocks(groups["yelb-ui"]["task"])["yelb-ui"]["template"][0]["data"])
assert "range" in ui_template and "nomadService \"yelb-appserver\"" in ui_template, (
    "the UI gets every app server, not one"
)
print(f"  nomad: job yelb parses; {len(groups)} groups agree with the other targets")
