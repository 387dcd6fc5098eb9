"""containerd_runtime: main() for real on files in a temporary directory.

This machine has no containerd, so a test double answers for it: a shell script
that prints what the real containerd 1.7.24 printed (fixtures/containerd/real/1.7)
and, for `config dump`, a file each test writes. molecule/containerd runs the
module against the real containerd 1.6, 1.7 and 2.1.
"""

import os
import stat

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_config as cc
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


def test_verify_returns_containerd_view(node, capsys):
    tmp_path, args = node
    dump = cases.real("1.7", "default.toml").replace(
        '[plugins."io.containerd.grpc.v1.cri".containerd.untrusted_workload_runtime]',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n  runtime_type = "io.containerd.runc.v2"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\n  BinaryName = "%s"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.untrusted_workload_runtime]' % cases.BINARY,
    )
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
