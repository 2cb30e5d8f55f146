"""The release path, checked offline (scripts/test-deploy.sh runs it).

- Every `uses:` in .github/workflows is pinned to a 40-hex commit, with the
  release's version in a comment (`@<sha> # v1.2.3`): a tag can move, and a
  tag that does not exist fails the job at "Set up job", which actionlint
  cannot see.
- docker-bake.hcl builds the five images for amd64 and arm64, each tagged by
  `image_tags` (TAG, and :latest when asked) and carrying the OCI labels.
- release.yml asks bake for :latest and the labels' values, and signs every
  image bake built (from its metadata), not a list that can fall behind.
- e2e.yml runs kind, `scripts/up.sh kind`, `helm install --wait`, `helm test`
  and a CVE scan of every image bake builds.

`release.py ROOT` checks the repository at ROOT; `release.py --self-test ROOT`
also checks that each known mistake, made in a copy, is caught.
"""

import re
import shutil
import sys
import tempfile
from pathlib import Path

import hcl2

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s*#\s*v\d+\.\d+\.\d+\s*$")
LABELS = (
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.version",
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.licenses",
)


def bake_images(root):
    """The default group's targets, checked; returns their names."""
    bake = hcl2.load(open(root / "docker-bake.hcl"))
    unquote = lambda v: v.strip('"') if isinstance(v, str) else v
    targets = {unquote(n): body for block in bake["target"] for n, body in block.items()}
    groups = {unquote(n): body for block in bake["group"] for n, body in block.items()}
    images = [unquote(t) for t in groups["default"]["targets"]]
    assert len(images) == 5, f"bake's default group builds {len(images)} images, not five: {images}"
    platforms = [unquote(p) for p in targets["_platforms"]["platforms"]]
    assert platforms == ["linux/amd64", "linux/arm64"], platforms
    functions = {unquote(n) for block in bake.get("function", []) for n in block}
    assert {"image_tags", "image_labels"} <= functions, f"bake functions: {functions}"
    for name in images:
        body = targets[name]
        assert [unquote(i) for i in body.get("inherits", [])] == ["_platforms"], f"{name}: both platforms"
        tags = str(body.get("tags", ""))
        assert "image_tags" in tags and name in tags, f"{name}: tags = {tags}, not image_tags(\"{name}\")"
        labels = str(body.get("labels", ""))
        assert "image_labels" in labels and name in labels, f"{name}: no OCI labels ({labels or 'none'})"
    text = (root / "docker-bake.hcl").read_text()
    for label in LABELS:
        assert f'"{label}"' in text, f"docker-bake.hcl: no {label} label"
    assert re.search(r'\$\{REGISTRY\}\$\{name\}:latest', text), "docker-bake.hcl: no :latest tag"
    return images


def pins(root):
    """Every action reference, pinned and commented."""
    count = 0
    for workflow in sorted((root / ".github/workflows").glob("*.yml")):
        for number, line in enumerate(workflow.read_text().splitlines(), 1):
            m = USES.match(line)
            if not m:
                continue
            ref, rest = m.group(1), m.group(2)
            where = f"{workflow.name}:{number}: {ref}"
            if ref.startswith("./"):
                continue
            assert PINNED.match(ref), f"{where} is not pinned to a 40-hex commit"
            assert VERSION_COMMENT.match(rest), f"{where} has no '# vX.Y.Z' comment naming its release"
            count += 1
    assert count > 0, "no actions found"
    return count


def code(path):
    """A workflow without its comment lines (which name what it should do)."""
    return "\n".join(l for l in path.read_text().splitlines() if not l.lstrip().startswith("#"))


def release(root):
    text = code(root / ".github/workflows/release.yml")
    assert re.search(r'LATEST:\s*"true"', text), "release.yml does not ask bake for :latest"
    for var in ("SOURCE", "REVISION"):
        assert re.search(rf"^\s+{var}:\s*\$\{{\{{", text, re.M), f"release.yml does not set {var} for the labels"
    assert "steps.bake.outputs.metadata" in text, "release.yml does not sign from bake's metadata"
    assert not re.search(r"for image in yelb-", text), "release.yml signs a hard-coded list of images"
    assert "cosign sign" in text, "release.yml signs nothing"
    for attest in ("type=sbom", "type=provenance"):
        assert attest in text, f"release.yml: no {attest} attestation"


def e2e(root, images):
    text = code(root / ".github/workflows/e2e.yml")
    assert re.search(r"^\s+pull_request:", text, re.M), "e2e.yml does not run on pull requests"
    assert "helm/kind-action@" in text, "e2e.yml: no kind cluster"
    assert "scripts/up.sh kind" in text, "e2e.yml does not walk the README's up.sh kind"
    assert re.search(r"helm install .*--wait", text), "e2e.yml: no helm install --wait"
    assert re.search(r"helm test ", text), "e2e.yml: no helm test"
    assert "anchore/scan-action@" in text, "e2e.yml: no CVE scan"
    scanned = re.findall(r"\{\s*name:\s*([\w-]+)", text)
    assert sorted(scanned) == sorted(images), f"e2e.yml scans {scanned}, bake builds {images}"


def check(root):
    images = bake_images(root)
    count = pins(root)
    release(root)
    e2e(root, images)
    return images, count


# Each known mistake: a file, the text to find, what to put instead.
MUTATIONS = [
    (".github/workflows/release.yml", r"sigstore/cosign-installer@[0-9a-f]{40}", "sigstore/cosign-installer@v4"),
    (".github/workflows/e2e.yml", r"(actions/checkout@[0-9a-f]{40}) # v[\d.]+", r"\1"),
    (".github/workflows/release.yml", r"jq -r 'to_entries", "for image in yelb-ui yelb-appserver yelb-db yelb-cache; do :; done; jq -r 'to_entries"),
    (".github/workflows/release.yml", r'LATEST: "true"', 'LATEST: "false"'),
    (".github/workflows/release.yml", r"REVISION: \$\{\{ github.sha \}\}", ""),
    ("docker-bake.hcl", r'  labels     = image_labels\("yelb-loadgen".*\n', ""),
    ("docker-bake.hcl", r'"yelb-loadgen"\]', "]"),
    ("docker-bake.hcl", r'"org.opencontainers.image.source" += SOURCE\n', ""),
    (".github/workflows/e2e.yml", r"--wait --timeout 5m", "--timeout 5m"),
    (".github/workflows/e2e.yml", r"\n +- \{ name: yelb-loadgen.*", ""),
    (".github/workflows/e2e.yml", r"helm test yelb", "echo yelb"),
]


def self_test(root):
    for file, pattern, replacement in MUTATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp)
            shutil.copytree(root / ".github", copy / ".github")
            shutil.copy(root / "docker-bake.hcl", copy / "docker-bake.hcl")
            target = copy / file
            text = target.read_text()
            mutated, n = re.subn(pattern, replacement, text, count=1)
            assert n == 1, f"mutation {pattern!r} found nothing in {file}: update the self-test"
            target.write_text(mutated)
            try:
                check(copy)
            except AssertionError:
                continue
            raise SystemExit(f"release.py missed a mutation of {file}: {pattern!r} -> {replacement!r}")
    print(f"  release.py: all {len(MUTATIONS)} mutations caught")


def main(argv):
    args = [a for a in argv if a != "--self-test"]
    root = Path(args[0] if args else ".")
    try:
        images, count = check(root)
    except AssertionError as e:
        raise SystemExit(f"release: {e}")
    print(f"  release: {count} actions pinned to release commits; {len(images)} images labelled, tagged, signed and scanned")
    if "--self-test" in argv:
        self_test(root)


if __name__ == "__main__":
    main(sys.argv[1:])
