"""containerd_runtime: main() for real on files in a temporary directory.

This machine has no containerd, so a test double answers for it: a shell script
that prints what the real containerd 1.7.24 printed (fixtures/containerd/real/1.7)
and, for `config dump`, a file each test writes. molecule/containerd runs the
module against the real containerd 1.6, 1.7 and 2.1.
"""

import json
import os
import stat
import uuid

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_config as cc
from ansible_collections.gpunode.nvidia.plugins.module_utils import secret_mask as sm
from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw
from ansible_collections.gpunode.nvidia.plugins.modules import containerd_runtime

from ... import containerd_cases as cases
from ...utils import run_module

FAKE_CONTAINERD = """#!/bin/sh
# Test double for containerd 1.7.24: recorded answers, and a dump chosen by the test.
case "$*" in
  --version) cat '{real}/version.txt' ;;
  "config default") cat '{real}/default.toml' ;;
  *"config dump") cat '{dump}' ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def node(tmp_path):
    """A case directory with Debian's packaged config.toml and a containerd test double."""
    params = cases.write_case(cases.CASES["custom-runc-v2"], str(tmp_path / "etc"))
    fake = tmp_path / "containerd"
    fake.write_text(FAKE_CONTAINERD.format(real=os.path.join(cases.REAL, "1.7"), dump=tmp_path / "dump.toml"))
    fake.chmod(0o755)
    (tmp_path / "dump.toml").write_text(cases.real("1.7", "default.toml"))
    args = {
        "config_path": params["config_path"],
        "dropin_path": params["dropin_path"],
        "containerd_binary": str(fake),
        "default_runtime_options": {"SystemdCgroup": True},
        "verify": False,
    }
    return tmp_path, args


def read(path):
    return cc.read_text(str(path))


def warnings(result):
    """Warning texts (ansible-core 2.19 wraps each in an event record)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def test_check_mode_reports_and_diffs_without_writing(node, capsys):
    tmp_path, args = node
    before = read(args["config_path"])
    failed, result = run_module(containerd_runtime.main, dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert not failed and result["changed"]
    assert [d["after_header"] for d in result["diff"]] == [args["config_path"], args["dropin_path"]]
    assert result["diff"][1]["before_header"].endswith("(absent)")
    assert "runtimes.nvidia" in result["diff"][1]["after"]
    assert read(args["config_path"]) == before and not os.path.exists(args["dropin_path"])
    assert "effective" not in result  # nothing to check while the change is pending


def test_present_writes_dropin_backup_and_import(node, capsys):
    tmp_path, args = node
    original = read(args["config_path"])
    os.chmod(args["config_path"], 0o600)  # config.toml may hold registry credentials
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and result["changed"], result
    assert (result["config_version"], result["plugin_id"], result["plugin_merge"]) == (2, "io.containerd.grpc.v1.cri", "replace")
    assert result["containerd_version"] == "1.7.24" and result["binary_exists"] is False
    assert result["imports"] == [args["dropin_path"]]
    assert result["runtime"]["options"] == {"SystemdCgroup": True, "NoNewKeyring": True, "BinaryName": cases.BINARY}
    assert read(result["backup_file"]) == original
    assert stat.S_IMODE(os.stat(args["dropin_path"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(args["config_path"]).st_mode) == 0o600
    assert read(args["config_path"]) == original.replace("version = 2\n", 'version = 2\nimports = ["%s"]\n' % args["dropin_path"])

    failed, again = run_module(containerd_runtime.main, args, capsys)
    assert not failed and not again["changed"] and "backup_file" not in again


def test_absent_after_present_restores_the_file(node, capsys):
    tmp_path, args = node
    original = read(args["config_path"])
    run_module(containerd_runtime.main, args, capsys)
    failed, result = run_module(containerd_runtime.main, dict(args, state="absent", backup=False), capsys)
    assert not failed and result["changed"]
    assert read(args["config_path"]) == original and not os.path.exists(args["dropin_path"])
    failed, result = run_module(containerd_runtime.main, dict(args, state="absent"), capsys)
    assert not failed and not result["changed"]


def test_malformed_config_fails_and_changes_nothing(node, capsys):
    tmp_path, args = node
    broken = read(args["config_path"]) + '[plugins."io.containerd.grpc.v1.cri".registry\n'
    with open(args["config_path"], "w") as handle:
        handle.write(broken)
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert failed and "is not valid TOML" in result["msg"] and "(line 15, column" in result["msg"]
    assert read(args["config_path"]) == broken
    assert sorted(os.listdir(os.path.dirname(args["config_path"]))) == ["config.toml"]  # no drop-in, no backup


def test_verify_restores_the_files_when_containerd_does_not_show_the_runtime(node, capsys):
    tmp_path, args = node
    original = read(args["config_path"])
    failed, result = run_module(containerd_runtime.main, dict(args, verify=True, backup=False), capsys)
    assert failed and "runtime nvidia is not in containerd's effective configuration" in result["msg"]
    assert "the files were restored" in result["msg"]
    assert read(args["config_path"]) == original and not os.path.exists(args["dropin_path"])


def dump_with_nvidia(extra_options=""):
    """containerd 1.7's `config dump` with the nvidia runtime registered (and ``extra_options`` in its options)."""
    return cases.real("1.7", "default.toml").replace(
        '[plugins."io.containerd.grpc.v1.cri".containerd.untrusted_workload_runtime]',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n  runtime_type = "io.containerd.runc.v2"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\n  BinaryName = "%s"\n%s'
        '[plugins."io.containerd.grpc.v1.cri".containerd.untrusted_workload_runtime]' % (cases.BINARY, extra_options),
    )


def test_verify_returns_containerd_view(node, capsys):
    tmp_path, args = node
    dump = dump_with_nvidia()
    (tmp_path / "dump.toml").write_text(dump)
    failed, result = run_module(containerd_runtime.main, dict(args, verify=True), capsys)
    assert not failed, result
    assert result["effective"]["runtime"]["options"]["BinaryName"] == cases.BINARY
    assert result["effective"]["runtimes"] == ["nvidia", "runc"]


def test_missing_binary_is_never_made_the_default(node, capsys):
    tmp_path, args = node
    original = read(args["config_path"])
    failed, result = run_module(containerd_runtime.main, dict(args, set_as_default=True), capsys)
    assert failed and "refusing to make nvidia the default runtime" in result["msg"]
    assert read(args["config_path"]) == original
    failed, result = run_module(containerd_runtime.main, dict(args, set_as_default=True, binary_name=str(tmp_path / "containerd")), capsys)
    assert not failed and result["binary_exists"] is True


def test_without_containerd_a_fresh_config_is_version_2(tmp_path, capsys):
    args = {"config_path": str(tmp_path / "config.toml"), "dropin_path": str(tmp_path / "conf.d/99-nvidia.toml"),
            "containerd_binary": "no-such-containerd"}
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and result["containerd_version"] is None
    assert read(args["config_path"]) == 'version = 2\nimports = ["%s"]\n' % args["dropin_path"]
    assert any("effective configuration was not checked" in w for w in warnings(result))
    failed, result = run_module(containerd_runtime.main, dict(args, state="absent"), capsys)
    assert not failed and result["changed"] and not os.path.exists(args["config_path"])


def test_k3s_and_rke2_get_advice(node, capsys, monkeypatch):
    tmp_path, args = node
    k3s = tmp_path / "k3s/agent/etc/containerd"
    k3s.mkdir(parents=True)
    monkeypatch.setattr(cc, "RANCHER_CONTAINERD_DIRS", (("k3s", str(k3s)),))
    failed, result = run_module(containerd_runtime.main, dict(args, config_path=str(k3s / "config.toml")), capsys)
    assert failed and "config.toml.tmpl" in result["msg"] and "--default-runtime" in result["msg"]
    failed, result = run_module(containerd_runtime.main, dict(args, containerd_binary="no-such-containerd"), capsys)
    assert failed and "runs k3s's own containerd and has no system containerd" in result["msg"]
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and any("system containerd and k3s's own" in w for w in warnings(result))


@pytest.mark.parametrize("bad,message", [
    ({"config_path": "etc/containerd/config.toml"}, "must be an absolute path"),
    ({"dropin_path": "/x/config.toml", "config_path": "/x/config.toml"}, "must differ"),
    ({"cdi_spec_dirs": ["/etc/cdi"]}, "only together with enable_cdi"),
    ({"name": ""}, "must not be empty"),
])
def test_arguments_are_checked(node, capsys, bad, message):
    tmp_path, args = node
    failed, result = run_module(containerd_runtime.main, dict(args, **bad), capsys)
    assert failed and message in result["msg"]


def test_a_node_configured_by_nvidia_ctk_is_taken_over_then_left_alone(node, capsys):
    """Issue 9: converge twice on an nvidia-ctk node (changed, then changed=0), then undo."""
    tmp_path, args = node
    params = cases.write_case(cases.CASES["takeover-nvidia-ctk-v2"], str(tmp_path / "ctk"))
    args = dict(args, config_path=params["config_path"], dropin_path=params["dropin_path"])
    main, earlier = read(args["config_path"]), read(args["dropin_path"])
    failed, result = run_module(containerd_runtime.main, dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert not failed and result["changed"] and [d["after_header"] for d in result["diff"]] == [args["dropin_path"]]
    assert read(args["dropin_path"]) == earlier  # check mode wrote nothing
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and result["changed"] and "backup_file" not in result, result
    assert any("taken over with every setting it made" in w for w in warnings(result))
    assert read(args["config_path"]) == main  # its conf.d glob already imports the drop-in
    failed, again = run_module(containerd_runtime.main, args, capsys)
    assert not failed and not again["changed"], again
    failed, undo = run_module(containerd_runtime.main, dict(args, state="absent"), capsys)
    assert not failed and undo["changed"]
    assert (read(args["config_path"]), read(args["dropin_path"])) == (main, earlier)
    assert any("stays registered" in w for w in warnings(undo))


def test_backup_keeps_the_mode_of_config_toml(node, capsys):
    """config.toml may hold registry credentials: its backup is as closed as it is."""
    tmp_path, args = node
    os.chmod(args["config_path"], 0o600)
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and result["changed"] and result["backup_file"]
    assert stat.S_IMODE(os.stat(result["backup_file"]).st_mode) == 0o600


# ---- issue 16: registry credentials stay out of the result ----

# Where the registry settings live for each config version (containerd_config's CRI_PLUGIN_IDS hold the
# runtimes; from version 3 the registry is in the images plugin).
REGISTRY_PLUGIN = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.images"}
CANARY_HOST = "canary.registry.test"
CANARY_USER = "canary-user"


def canaries(tag):
    """Secret values no other part of a run can produce, one per kind."""
    unique = uuid.uuid4().hex
    return {
        "password": "pw-%s-%s" % (tag, unique),
        "auth": "YXV0aC1%s==" % unique,
        "identitytoken": "it %s with spaces" % unique,
        "comment": "old-%s" % unique,
    }


def credentials(version, secret):
    """A registry auth table for config ``version`` (None: no version key, so version 1), with a commented-out old password."""
    plugin = REGISTRY_PLUGIN[version or 1]
    return (
        '\n[plugins."%s".registry.configs."%s".auth]\n'
        '  username = "%s"\n'
        '  # password = "%s"\n'
        '  password = "%s"\n'
        '  auth = "%s"\n'
        "  identitytoken = '%s'\n"
    ) % (plugin, CANARY_HOST, CANARY_USER, secret["comment"], secret["password"], secret["auth"], secret["identitytoken"])


def fake_containerd(directory, series):
    """A containerd test double of ``series`` (its version and defaults as recorded); no dump."""
    fake = os.path.join(directory, "containerd-%s" % series)
    with open(fake, "w") as handle:
        handle.write(FAKE_CONTAINERD.format(real=os.path.join(cases.REAL, series), dump="/nonexistent"))
    os.chmod(fake, 0o755)
    return fake


def merged_auth(params, series):
    """The canary host's auth table in the configuration containerd builds from the files on disk (by the module's model)."""
    semantics = cases.semantics(series)
    main = cc.read_text(params["config_path"])
    order = cc.load_order(params["config_path"], toml_rw.loads(main), semantics, None)
    data = cc.merge([item.data for item in order], semantics)
    return [cc.get_path(data, ("plugins", plugin, "registry", "configs", CANARY_HOST, "auth")) for plugin in REGISTRY_PLUGIN.values()]


def credential_combinations():
    """(case, series) for every case with a config.toml; a file without version reads as version 1, which 2.x refuses."""
    return [(name, series) for name, series in cases.combinations()
            if cases.CASES[name].files.get("config.toml") is not None
            and not (cases.CASES[name].version in (None, 1) and series == "2.1")]


@pytest.mark.parametrize("name,series", credential_combinations())
def test_registry_credentials_are_masked_in_every_case(tmp_path, capsys, name, series):
    case = cases.CASES[name]
    directory = str(tmp_path / "etc")
    params = cases.write_case(case, directory)
    secret = canaries(name)
    block = credentials(case.version, secret)
    with open(params["config_path"], "a") as handle:
        handle.write(block)
    before = {path: read(path) for path in (params["config_path"], params["dropin_path"])}
    auth_before = merged_auth(params, series)
    args = dict(
        {key: params[key] for key in ("name", "binary_name", "runtime_type", "set_as_default", "enable_cdi", "cdi_spec_dirs",
                                      "default_runtime_options", "config_path", "dropin_path")},
        containerd_binary=fake_containerd(str(tmp_path), series), verify=False, _ansible_diff=True,
    )
    if args["set_as_default"]:  # the module makes only a binary that exists the default
        args["binary_name"] = str(tmp_path / ("containerd-%s" % series))

    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and result["changed"], result
    after = {path: read(path) for path in before}
    dumped = json.dumps(result)
    for value in secret.values():
        assert value not in dumped and value.split()[1 if " " in value else 0] not in dumped
    # Each diff says it masked exactly when its file held a secret, and keeps the user name.
    for entry, path in ((d, d["after_header"].split(" (")[0]) for d in result["diff"]):
        held = any(secret["password"] in (text or "") for text in (before[path], after[path]))
        assert (entry["before_header"].endswith(sm.NOTE) and entry["after_header"].endswith(sm.NOTE)) == held, entry
        if held:
            assert CANARY_USER in entry["before"] + entry["after"]
            assert sm.UNCHANGED in entry["after"] or sm.ADDED in entry["after"]
    # config.toml's diff always shows its credentials; the drop-in's only when it copies them.
    config_changed = after[params["config_path"]] != before[params["config_path"]]
    dropin_holds = secret["password"] in (after[params["dropin_path"]] or "")
    assert any(d["after_header"].endswith(sm.NOTE) for d in result["diff"]) == (config_changed or dropin_holds)
    # The settings are kept: config.toml holds them as written, and containerd sees what it saw before.
    assert block in after[params["config_path"]]
    assert merged_auth(params, series) == auth_before
    if set(case.files) == {"config.toml"}:  # no imported file whose CRI table replaces config.toml's before 2.1
        assert {"username": CANARY_USER, "password": secret["password"], "auth": secret["auth"],
                "identitytoken": secret["identitytoken"]} in auth_before

    failed, undo = run_module(containerd_runtime.main, dict(args, state="absent"), capsys)
    assert not failed and undo["changed"] and "diff" in undo
    dumped = json.dumps(undo)
    assert not any(value in dumped for value in secret.values())
    assert block in read(params["config_path"])


def test_check_mode_masks_too_and_writes_nothing(node, capsys):
    tmp_path, args = node
    secret = canaries("check")
    with open(args["config_path"], "a") as handle:
        handle.write(credentials(2, secret))
    original = read(args["config_path"])
    failed, result = run_module(containerd_runtime.main, dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert not failed and result["changed"]
    assert [d["after_header"] for d in result["diff"]] == [args["config_path"] + sm.NOTE, args["dropin_path"] + sm.NOTE]
    assert result["diff"][1]["before_header"] == args["dropin_path"] + " (absent)" + sm.NOTE
    # config.toml's credentials are unchanged context; the drop-in's copy of them is new.
    assert result["diff"][0]["before"].count(sm.UNCHANGED) == 4 == result["diff"][0]["after"].count(sm.UNCHANGED)
    assert result["diff"][1]["after"].count(sm.ADDED) == 3  # toml_rw writes no comments
    assert not any(value in json.dumps(result) for value in secret.values())
    assert read(args["config_path"]) == original and not os.path.exists(args["dropin_path"])


def test_containerd_errors_are_masked(node, capsys):
    """containerd's own message, when it cannot load the files, is returned without a secret it quotes."""
    tmp_path, args = node
    fake = tmp_path / "containerd"
    fake.write_text(fake.read_text().replace(
        "*\"config dump\") cat '%s' ;;" % (tmp_path / "dump.toml"),
        "*\"config dump\") echo 'failed to load: password = \"canary pw 1\" is wrong' >&2; exit 1 ;;"))
    failed, result = run_module(containerd_runtime.main, dict(args, verify=True), capsys)
    assert failed and "containerd cannot load the configuration: failed to load: password = <masked>" in result["msg"], result
    assert "canary" not in json.dumps(result)


def test_the_runtime_and_containerd_view_show_no_secret(node, capsys):
    tmp_path, args = node
    dump = dump_with_nvidia('  ApiToken = "canary-t"\n')
    (tmp_path / "dump.toml").write_text(dump)
    with open(args["config_path"], "a") as handle:
        handle.write('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.Secrets]\n  token = "canary-r"\n')
    failed, result = run_module(containerd_runtime.main, dict(args, verify=True), capsys)
    assert not failed, result
    assert result["effective"]["runtime"]["options"]["ApiToken"] == sm.MASKED
    assert result["runtime"]["options"]["Secrets"] == {"token": sm.MASKED}
    assert "canary" not in json.dumps(result)
    assert 'token = "canary-r"' in read(args["dropin_path"])  # written as it is


def test_credentials_in_a_drop_in_taken_over_are_masked(node, capsys):
    """The drop-in's record keeps the earlier tool's text (as JSON in a comment): masked there too."""
    tmp_path, args = node
    params = cases.write_case(cases.CASES["takeover-nvidia-ctk-v2"], str(tmp_path / "ctk"))
    args = dict(args, config_path=params["config_path"], dropin_path=params["dropin_path"], _ansible_diff=True)
    secret = canaries("takeover")
    with open(args["dropin_path"], "a") as handle:
        handle.write(credentials(2, secret))
    earlier = read(args["dropin_path"])
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and result["changed"] and result["diff"][0]["after_header"] == args["dropin_path"] + sm.NOTE
    assert not any(value in json.dumps(result) for value in secret.values())
    assert secret["password"] in read(args["dropin_path"])  # its copy of the CRI table, and its record
    failed, undo = run_module(containerd_runtime.main, dict(args, state="absent"), capsys)
    assert not failed and undo["changed"] and not any(value in json.dumps(undo) for value in secret.values())
    assert read(args["dropin_path"]) == earlier


def test_dropin_is_never_left_more_readable_than_config_toml(node, capsys):
    """A config.toml made 0600 after the drop-in was written (say, when credentials were added): the
    drop-in, which may copy its CRI table, follows on the next run, and then nothing changes."""
    tmp_path, args = node
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and stat.S_IMODE(os.stat(args["dropin_path"]).st_mode) == 0o644
    os.chmod(args["config_path"], 0o600)
    failed, result = run_module(containerd_runtime.main, dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert not failed and result["changed"] and result["dropin_mode"] == "0600"
    assert result["diff"][-1]["after"] == {"path": args["dropin_path"], "mode": "0600"}
    assert stat.S_IMODE(os.stat(args["dropin_path"]).st_mode) == 0o644
    failed, result = run_module(containerd_runtime.main, args, capsys)
    assert not failed and result["changed"]
    assert stat.S_IMODE(os.stat(args["dropin_path"]).st_mode) == 0o600
    failed, again = run_module(containerd_runtime.main, args, capsys)
    assert not failed and not again["changed"]
