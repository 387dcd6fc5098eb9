"""Checks of the Kubernetes manifests the roles build, shared by tests/unit and tests/build.

- validate_objects: every object against Kubernetes' own OpenAPI schemas (kubernetes-validate,
  offline, strict: a field Kubernetes does not know fails), for the oldest and the newest
  Kubernetes supported.
- checkov_findings: checkov's Kubernetes policies (privileged containers, missing limits, ...) on
  a directory of rendered manifests, run from the tests' own venv, .venv-checkov
  (scripts/checkov-venv.sh).
- accepted_findings / unaccepted: a YAML file of the findings a role accepts on purpose (a device
  plugin must mount the kubelet's socket directory), each with its reason; a finding not accepted
  fails, and so does an acceptance that matched nothing (stale).

Import it as ``import k8s_checks``: pytest puts tests/ on sys.path for tests/unit (a package in
tests/, which is none), and tests/build/conftest.py puts it there for tests/build.
"""

import fnmatch
import json
import os
import subprocess

import pytest
import yaml

try:
    import kubernetes_validate
except ImportError:  # a leg of the controller matrix: its pins have no kubernetes-validate
    kubernetes_validate = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CHECKOV = os.path.join(ROOT, ".venv-checkov", "bin", "checkov")
OLDEST = "1.29"


def _newest():
    """The newest Kubernetes minor version whose schemas kubernetes-validate ships ("1.37")."""
    if kubernetes_validate is None:
        return None
    return ".".join(kubernetes_validate.latest_version().split(".")[:2])


NEWEST = _newest()

# Kinds whose schema is a CRD's, which kubernetes-validate does not ship: these, of these API groups
# only, are skipped (and reported); any other kind without a schema fails.
CRD_KINDS = {
    "monitoring.coreos.com": ("ServiceMonitor",),
    "nfd.k8s-sigs.io": ("NodeFeature", "NodeFeatureRule"),
}


def describe(obj, index=None):
    """'DaemonSet gpu-operator/nvidia-device-plugin (object 3)' for messages."""
    meta = (obj.get("metadata") or {}) if isinstance(obj, dict) else {}
    kind = obj.get("kind", "?") if isinstance(obj, dict) else type(obj).__name__
    name = meta.get("name", "?") if isinstance(meta, dict) else "?"
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    text = "%s %s" % (kind, "%s/%s" % (namespace, name) if namespace else name)
    return text if index is None else "%s (object %d)" % (text, index)


def _needs_kubernetes_validate():
    if kubernetes_validate is None:
        pytest.skip("kubernetes-validate is in requirements/controller.txt, not in this leg's pins")


def validate_objects(objects, versions=(OLDEST, NEWEST)):
    """Validate every object, strictly, against the schemas of each Kubernetes version in ``versions``.

    Returns the kinds skipped (CRD_KINDS), one per skipped object in the order given, so a test can
    assert exactly which were. Raises AssertionError naming the object, the version and the error.
    """
    _needs_kubernetes_validate()
    skipped = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
            raise AssertionError("%s: not a Kubernetes object (a mapping with apiVersion and kind): %r" % (describe(obj, index), obj))
        group = obj["apiVersion"].rpartition("/")[0]
        if obj["kind"] in CRD_KINDS.get(group, ()):
            skipped.append(obj["kind"])
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(str(part) for part in exc.absolute_path) or "(the object)"
                raise AssertionError("%s does not validate against Kubernetes %s (strict) at %s: %s"
                                     % (describe(obj, index), version, where, exc.message)) from None
            except kubernetes_validate.SchemaNotFoundError as exc:
                raise AssertionError("%s: %s" % (describe(obj, index), exc.message)) from None
    return skipped


def _count_objects(directory):
    """The Kubernetes objects (apiVersion, kind, metadata) in the directory's YAML files, recursively."""
    count = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(dirpath, name)
                with open(path) as handle:
                    try:
                        docs = list(yaml.safe_load_all(handle))
                    except yaml.YAMLError as exc:
                        raise AssertionError("%s is no YAML (checkov would pass over it): %s" % (path, exc)) from None
                count += sum(1 for doc in docs if isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind") and doc.get("metadata"))
    return count


def checkov_findings(directory):
    """Run checkov's Kubernetes policies on ``directory``; return the failed checks, sorted, as
    (check_id, resource, file) tuples: resource as checkov names it (Kind.namespace.name, 'default'
    for a cluster-scoped object; a workload's pod template is Pod.namespace.name.<label>-<value>,
    e.g. Pod.gpu-operator.nvidia-device-plugin.app-nvidia-device-plugin), file relative to ``directory``.

    Without .venv-checkov the test fails (run scripts/checkov-venv.sh), unless GPUNODE_NO_CHECKOV=1,
    for quick local runs, skips it.
    """
    if not os.access(CHECKOV, os.X_OK):
        if os.environ.get("GPUNODE_NO_CHECKOV") == "1":
            pytest.skip("GPUNODE_NO_CHECKOV=1: checkov's policy checks skipped")
        pytest.fail("%s is missing: run scripts/checkov-venv.sh (or set GPUNODE_NO_CHECKOV=1 to skip these checks locally)" % CHECKOV)
    directory = str(directory)
    # checkov passes over YAML it cannot read without a word: count what it should read.
    expected = _count_objects(directory)
    argv = [CHECKOV, "-d", directory, "--framework", "kubernetes", "-o", "json", "--quiet", "--compact", "--skip-download"]
    # checkov exits 1 when a check fails: the JSON says which.
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=directory)
    if proc.returncode not in (0, 1):
        raise AssertionError("checkov failed (exit %d): %s%s" % (proc.returncode, proc.stdout, proc.stderr))
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("checkov printed no JSON: %s%s" % (proc.stdout, proc.stderr)) from None
    reports = report if isinstance(report, list) else [report]
    findings = []
    resources = 0
    for one in reports:
        # With nothing to report checkov prints only the summary, not nested under "summary".
        summary = one.get("summary", one)
        if summary.get("parsing_errors"):
            raise AssertionError("checkov could not parse files in %s: %s" % (directory, one.get("results", {}).get("parsing_errors", summary)))
        resources += summary.get("resource_count", 0)
        for check in one.get("results", {}).get("failed_checks", []):
            findings.append((check["check_id"], check["resource"], check["file_path"].lstrip("/")))
    if resources < expected:
        raise AssertionError("checkov read %d Kubernetes objects in %s, its YAML files hold %d" % (resources, directory, expected))
    return sorted(findings)


def accepted_findings(path):
    """Load a YAML file of accepted findings::

        CKV_K8S_16:
          resources: [DaemonSet.gpu-operator.nvidia-device-plugin]   # or globs: DaemonSet.*.nvidia-*
          reason: the plugin's init container must be privileged to ...

    Returns {check_id: {"resources": [...], "reason": "..."}}; a malformed file raises AssertionError.
    """
    with open(str(path)) as handle:
        data = yaml.safe_load(handle) or {}
    problems = []
    if not isinstance(data, dict):
        raise AssertionError("%s: a mapping of check IDs is expected, got %r" % (path, data))
    for check_id, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != {"resources", "reason"}:
            problems.append("%s: exactly the keys resources and reason are expected" % check_id)
            continue
        resources, reason = entry["resources"], entry["reason"]
        if not isinstance(resources, list) or not resources or not all(isinstance(r, str) and r for r in resources):
            problems.append("%s: resources must be a non-empty list of Kind.namespace.name (or globs)" % check_id)
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason.strip():
            problems.append("%s: reason must be one line" % check_id)
    if problems:
        raise AssertionError("%s: %s" % (path, "; ".join(problems)))
    return data


def unaccepted(findings, accepted):
    """Split ``findings`` (checkov_findings) by ``accepted`` (accepted_findings).

    Returns (not_accepted, stale): the findings no acceptance covers, and the acceptances, as
    (check_id, resource pattern), that matched no finding.
    """
    used = set()
    not_accepted = []
    for check_id, resource, path in findings:
        patterns = [p for p in accepted.get(check_id, {}).get("resources", []) if fnmatch.fnmatchcase(resource, p)]
        if patterns:
            used.update((check_id, p) for p in patterns)
        else:
            not_accepted.append((check_id, resource, path))
    stale = [(check_id, p) for check_id, entry in accepted.items() for p in entry["resources"] if (check_id, p) not in used]
    return not_accepted, stale


def assert_findings_accepted(findings, accepted):
    """AssertionError listing every finding not accepted and every stale acceptance."""
    not_accepted, stale = unaccepted(findings, accepted)
    lines = ["not accepted: %s %s (%s)" % finding for finding in not_accepted]
    lines += ["accepted but not found (stale, remove it): %s %s" % entry for entry in stale]
    if lines:
        raise AssertionError("checkov findings:\n  " + "\n  ".join(lines))
