"""module_utils/containerd_config.py: containerd's own model of its configuration
(versions, merge rules, imports and load order, `config dump`) over the real
binaries' outputs, and k3s/RKE2 detection."""

import os

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_config as cc
from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw

from ... import containerd_cases as cases

V2 = "io.containerd.grpc.v1.cri"
V3 = "io.containerd.cri.v1.runtime"


# ---- containerd itself ----


def test_versions_from_the_real_binaries():
    assert [cases.containerd_version(s) for s in cases.SERIES] == [(1, 6, 20), (1, 7, 24), (2, 1, 9)]
    assert cc.parse_version_output("containerd containerd.io v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da") == (1, 7, 27)
    assert cc.parse_version_output("") is None and cc.parse_version_output("no version here") is None


def test_rules_per_release():
    old, mid, new = [cases.semantics(s) for s in cases.SERIES]
    unknown = cc.Semantics(None)
    assert [s.plugin_merge for s in (old, mid, new, unknown)] == ["replace", "replace", "deep", "replace"]
    assert [s.missing_import_fatal for s in (old, mid, new, unknown)] == [True, True, False, True]
    assert [s.relative_glob_from_cwd for s in (old, mid, new, unknown)] == [True, False, False, False]
    assert [s.fresh_config_version() for s in (old, mid, new, unknown)] == [2, 2, 3, 2]
    assert cc.Semantics((2, 0, 5)).plugin_merge == "replace"
    assert cc.Semantics((1, 7, 0), "deep").plugin_merge == "deep"
    with pytest.raises(ValueError):
        cc.Semantics(None, "shallow")


def test_config_version_comes_from_the_file():
    assert cc.config_version({}, "f") == 1
    assert cc.config_version({"version": 2}, "f") == 2
    assert cc.config_version(toml_rw.loads(cases.real("2.1", "default.toml")), "f") == 3
    for bad in (4, 0, "2", True, 2.0):
        with pytest.raises(cc.ConfigError, match="knows versions 1, 2 and 3"):
            cc.config_version({"version": bad}, "f")


# ---- imports and load order ----


def test_relative_globs_follow_each_release(tmp_path):
    semantics_16, semantics_17 = cases.semantics("1.6"), cases.semantics("1.7")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-a.toml").write_text("version = 2\n")
    (tmp_path / "conf.d" / ".hidden.toml").write_text("version = 2\n")
    parent = str(tmp_path / "config.toml")
    assert cc.resolve_imports(parent, ["conf.d/*.toml"], semantics_17) == [
        str(tmp_path / "conf.d" / ".hidden.toml"), str(tmp_path / "conf.d" / "10-a.toml")]
    assert cc.resolve_imports(parent, ["conf.d/*.toml"], semantics_16) == []  # 1.6 globs from its working dir
    assert cc.resolve_imports(parent, ["conf.d/10-a.toml", "/abs/../x.toml"], semantics_16) == [
        str(tmp_path / "conf.d" / "10-a.toml"), "/x.toml"]
    # Only '*' makes a glob for containerd; the drop-in about to be written counts as present.
    assert cc.resolve_imports(parent, ["conf.d/1?-a.toml"], semantics_17) == [str(tmp_path / "conf.d" / "1?-a.toml")]
    assert cc.resolve_imports(parent, ["conf.d/*.toml"], semantics_17, str(tmp_path / "conf.d" / "99-n.toml"))[-1].endswith("99-n.toml")


def test_nested_imports_load_breadth_first(tmp_path):
    a, b, c = (str(tmp_path / n) for n in ("a.toml", "b.toml", "c.toml"))
    cases.write_file(a, 'version = 2\nimports = ["c.toml"]\n')
    cases.write_file(b, "version = 2\n")
    cases.write_file(c, 'version = 2\nimports = ["a.toml"]\n')
    order = cc.load_order(str(tmp_path / "main.toml"), {"version": 2, "imports": [a, b]}, cases.semantics("1.7"), None)
    assert [os.path.basename(item.path) for item in order] == ["main.toml", "a.toml", "b.toml", "c.toml"]


# ---- reading containerd's own view, and k3s/RKE2 ----


@pytest.mark.parametrize("series", cases.SERIES)
def test_effective_runtime_reads_a_dump(series):
    # `config default` prints what `config dump` prints for an empty config.
    view = cc.effective_runtime(cases.real(series, "default.toml"), "runc")
    assert view["runtime"]["runtime_type"] == "io.containerd.runc.v2"
    assert view["default_runtime_name"] == "runc" and view["runtimes"] == ["runc"]
    assert view["plugin_id"] == (V3 if series == "2.1" else V2)
    assert cc.effective_runtime(cases.real(series, "default.toml"), "nvidia")["runtime"] is None


def test_rancher_detection(tmp_path):
    assert cc.rancher_containerd("/etc/containerd/config.toml", str(tmp_path)) == []
    (tmp_path / "var/lib/rancher/k3s/agent/etc/containerd").mkdir(parents=True)
    assert cc.rancher_containerd("/etc/containerd/config.toml", str(tmp_path)) == [
        ("k3s", "/var/lib/rancher/k3s/agent/etc/containerd", False)]
    assert cc.rancher_containerd("/var/lib/rancher/k3s/agent/etc/containerd/config.toml", str(tmp_path))[0][2] is True
