"""Verify the containerd role and module against the real containerd 1.6, 1.7 and 2.1.

Every dump is read with Python's tomllib, not the module's own TOML reader. Commands
go straight through podman; the module runs through Ansible (ansible://).
"""

import json
import os
import subprocess
import sys
import tempfile
import tomllib

import pytest
import testinfra
import testinfra.utils.ansible_runner

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path[:0] = [os.path.join(PROJECT, ".cache", "collections"), os.path.join(PROJECT, "tests", "unit")]

import containerd_cases as cases  # noqa: E402  (tests/unit, shared with the unit tests)
from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_config as cc  # noqa: E402
from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_dropin  # noqa: E402

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = [
    "podman://" + name
    for name in testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("gpu_nodes")
]
IMAGE = "localhost/gpunode-test/busybox:latest"
MALFORMED = "/tmp/gpunode-malformed"
UNDO = "/tmp/gpunode-undo"
# A node nvidia-ctk configured (tests/unit/containerd_cases.py), copied to every node as
# before/ (as it left it) and after/ (where module_checks.yml runs the module on it twice).
TAKEOVER_CASE = "takeover-nvidia-ctk-v2"
# What the role was asked for in converge (its defaults on a systemd node).
ROLE = {
    "name": "nvidia",
    "binary_name": "/usr/bin/nvidia-container-runtime",
    "runtime_type": "io.containerd.runc.v2",
    "default_runtime_options": {"SystemdCgroup": True},
}


@pytest.fixture(scope="session")
def module_checks():
    """Results of tests/module_checks.yml, run once on every node: {task name: {host: result}}.

    Copies of config.toml are made first: /tmp/gpunode-malformed (with a broken
    line, and its SHA-256 noted) and /tmp/gpunode-undo (the site's original).
    """
    hosts = [h.split("://", 1)[1] for h in testinfra_hosts]
    sums = {}
    # The same path on the controller and on the nodes: case files name their directory.
    takeover = tempfile.mkdtemp(prefix="gpunode-takeover-")
    for part in ("before", "after"):
        cases.write_case(cases.CASES[TAKEOVER_CASE], os.path.join(takeover, part))
    for name in hosts:
        node = testinfra.get_host("podman://" + name)
        node.check_output(
            "rm -rf {m} {u} && mkdir {m} {u} && cp /etc/containerd/config.toml {m}/ && echo '[plugins.broken' >> {m}/config.toml"
            " && cp /root/gpunode-config-before.toml {u}/config.toml".format(m=MALFORMED, u=UNDO)
        )
        sums[name] = node.check_output("sha256sum %s/config.toml" % MALFORMED)
        subprocess.run(["podman", "exec", name, "mkdir", "-p", takeover], check=True)
        subprocess.run(["podman", "cp", takeover + "/.", "%s:%s" % (name, takeover)], check=True)
    subprocess.run(["rm", "-rf", takeover], check=False)
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".cache", "collections"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
    )
    playbook = os.path.join(os.path.dirname(__file__), "module_checks.yml")
    proc = subprocess.run(["ansible-playbook", "-i", INVENTORY, "-e", "takeover=%s/after" % takeover, playbook],
                          capture_output=True, text=True, check=False, env=env)
    try:
        tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("ansible-playbook gave no result: %s %s" % (proc.stdout[-2000:], proc.stderr[-2000:])) from None
    results = dict((task["task"]["name"], task["hosts"]) for task in tasks)
    results["sha256 before"] = sums
    results["takeover"] = takeover
    return results


def dump(host, config=None):
    argv = "containerd config dump" if config is None else "containerd --config %s config dump" % config
    return tomllib.loads(host.check_output(argv + " 2>/dev/null"))


def series(host):
    version = cc.parse_version_output(host.check_output("containerd --version"))
    return "%d.%d" % version[:2]


def plugin_id(config):
    return cc.CRI_PLUGIN_IDS[config["version"]]


def test_containerd_active_and_answering(host):
    assert host.service("containerd").is_running and host.service("containerd").is_enabled
    out = host.check_output("ctr version")
    assert "Server:" in out
    assert cc.parse_version_output(host.check_output("containerd --version"))[:2] == tuple(int(x) for x in series(host).split("."))


def test_runtime_in_the_effective_config(host):
    after = dump(host)
    assert cases.runtime_problems(after, plugin_id(after), ROLE) == []
    runtime = after["plugins"][plugin_id(after)]["containerd"]["runtimes"]["nvidia"]
    assert runtime["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert runtime["options"]["SystemdCgroup"] is True
    assert runtime["options"]["NoNewKeyring"] is True  # the site's runc option, inherited


def test_site_settings_still_effective(host):
    before = dump(host, "/root/gpunode-config-before.toml")
    after = dump(host)
    assert cases.lost_settings(before, after, plugin_id(after), ROLE) == []
    cri = after["plugins"][plugin_id(after)]
    if after["version"] == 2:
        assert cri["cni"]["bin_dir"] == "/opt/site/cni/bin"
        assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
        assert cri["sandbox_image"] == "registry.example.test/pause:3.9"
    else:
        assert cri["cni"]["bin_dirs"] == ["/opt/site/cni/bin"]
        assert after["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert after["plugins"]["io.containerd.gc.v1.scheduler"]["deletion_threshold"] == 5  # from the site's import


def test_config_toml_gained_one_import_entry(host):
    original = host.file("/root/gpunode-config-before.toml").content_string
    now = host.file("/etc/containerd/config.toml").content_string
    assert now == original.replace('10-gc.toml"]', '10-gc.toml", "/etc/containerd/conf.d/99-nvidia.toml"]')


def test_a_container_still_runs_with_the_default_runtime(host):
    host.check_output("ctr images import /root/busybox-oci.tar")
    name = "verify-%d" % os.getpid()
    assert host.check_output("ctr run --rm %s %s /bin/busybox echo gpunode-ok" % (IMAGE, name)) == "gpunode-ok"


def test_malformed_config_fails_and_stays_byte_identical(host, module_checks):
    result = module_checks["Register the runtime in a malformed config.toml"][host.backend.name]
    assert result["failed"] and "is not valid TOML" in result["msg"] and "(line " in result["msg"], result
    assert host.check_output("sha256sum %s/config.toml" % MALFORMED) == module_checks["sha256 before"][host.backend.name]
    assert host.check_output("ls -A %s" % MALFORMED) == "config.toml"


def test_absent_after_present_restores_the_original(host, module_checks):
    name = host.backend.name
    original = dump(host, "/root/gpunode-config-before.toml")
    present = module_checks["Register the runtime in the site's original config.toml"][name]
    assert present["changed"] and not present.get("failed"), present
    assert present["effective"]["runtime"]["options"]["BinaryName"] == ROLE["binary_name"]
    with_runtime = tomllib.loads(module_checks["Dump the configuration with the runtime"][name]["stdout"])
    assert cases.runtime_problems(with_runtime, plugin_id(original), ROLE) == []
    absent = module_checks["Remove the runtime again"][name]
    assert absent["changed"] and not absent.get("failed"), absent
    restored = dump(host, UNDO + "/config.toml")
    # containerd 1.x lists the files it loaded under imports: the copy has another path.
    for config in (original, restored):
        config.pop("imports", None)
    assert restored == original
    assert host.file(UNDO + "/config.toml").content_string == host.file("/root/gpunode-config-before.toml").content_string
    assert not host.file(UNDO + "/conf.d/99-nvidia.toml").exists


def test_every_case_keeps_every_setting_in_the_real_containerd(host):
    """The unit tests' cases, merged by this node's real containerd instead of the module's model.

    Each case is written twice under one path on the controller and on the node:
    before/ as it is, after/ with what the module plans for it (planned here with
    this node's containerd version and defaults). The node dumps both.
    """
    here = series(host)
    semantics = cc.Semantics(cc.parse_version_output(host.check_output("containerd --version")))
    defaults = tomllib.loads(host.check_output("containerd config default 2>/dev/null"))
    names = sorted(n for n, c in cases.CASES.items() if here in c.series)
    assert len(names) >= 10
    root = tempfile.mkdtemp(prefix="gpunode-cases-")
    try:
        planned = {}
        for name in names:
            cases.write_case(cases.CASES[name], os.path.join(root, "before", name))
            params = cases.write_case(cases.CASES[name], os.path.join(root, "after", name))
            plan = containerd_dropin.plan_present(params, *(cc.read_text(params[k]) for k in ("config_path", "dropin_path")),
                                                  semantics, defaults=lambda: defaults)
            for path, text in ((params["dropin_path"], plan.dropin_after), (params["config_path"], plan.main_after)):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as handle:
                    handle.write(text)
            again = containerd_dropin.plan_present(params, plan.main_after, plan.dropin_after, semantics, defaults=lambda: defaults)
            assert not again.changed, name
            planned[name] = params
        container = host.backend.name
        subprocess.run(["podman", "exec", container, "mkdir", "-p", root], check=True)
        subprocess.run(["podman", "cp", root + "/.", "%s:%s" % (container, root)], check=True)
        # One exec dumps every file set; a missing config.toml reads as an empty one.
        script = (
            'for d in {root}/before/* {root}/after/*; do f=$d/config.toml; [ -e "$f" ] || f=/dev/null; '
            'echo "#=== $d"; containerd --config "$f" config dump 2>/dev/null || echo "#=== FAILED"; done'
        ).format(root=root)
        dumps, current = {}, None
        for line in host.check_output(script).splitlines(True):
            if line.startswith("#=== "):
                current = line[5:].strip()
                dumps[current] = ""
            else:
                dumps[current] += line
        problems = []
        for name in names:
            before_text, after_text = dumps[os.path.join(root, "before", name)], dumps[os.path.join(root, "after", name)]
            assert "FAILED" not in dumps and before_text and after_text, name
            before, after = tomllib.loads(before_text), tomllib.loads(after_text)
            case = cases.CASES[name]
            quirks = case.quirks.get(here, ())
            for path, was, now in cases.lost_settings(before, after, plugin_id(after), planned[name],
                                                      default_runtime=case.base, quirks=quirks):
                problems.append("%s: %s was %r, now %r" % (name, ".".join(path), was, now))
            problems += ["%s: %s" % (name, p)
                         for p in cases.runtime_problems(after, plugin_id(after), planned[name], default_runtime=case.base)]
        assert problems == []
    finally:
        subprocess.run(["podman", "exec", host.backend.name, "rm", "-rf", root], check=False)
        subprocess.run(["rm", "-rf", root], check=False)


def test_a_node_configured_by_nvidia_ctk_is_taken_over_with_every_setting(host, module_checks):
    """Issue 9, through Ansible on the real containerd: changed, then changed=0, nothing lost."""
    name, root = host.backend.name, module_checks["takeover"]
    case = cases.CASES[TAKEOVER_CASE]
    first = module_checks["Take over the drop-in nvidia-ctk left"][name]
    assert first["changed"] and not first.get("failed"), first
    assert first["effective"]["runtime"]["options"]["SystemdCgroup"] is True  # containerd's own dump
    again = module_checks["Run again on the taken-over drop-in"][name]
    assert not again["changed"] and not again.get("failed"), again
    before = dump(host, root + "/before/config.toml")
    after = tomllib.loads(module_checks["Dump the taken-over configuration"][name]["stdout"])
    params = cases.params_for(case, root + "/after")
    assert cases.lost_settings(before, after, plugin_id(after), params, default_runtime=case.base) == []
    assert cases.runtime_problems(after, plugin_id(after), params, default_runtime=case.base) == []
    # config.toml as nvidia-ctk left it (each copy names its own directory): its conf.d glob
    # already imports the drop-in.
    left = host.file(root + "/before/config.toml").content_string
    assert host.file(root + "/after/config.toml").content_string == left.replace(root + "/before/", root + "/after/")
