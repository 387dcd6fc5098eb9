"""k8s_render: main() for real on a directory in tmp_path."""

import os
import stat

import pytest
import yaml

from ansible_collections.gpunode.nvidia.plugins.modules import k8s_render

from ...utils import run_module

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-operator"}}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plugin-config", "namespace": "gpu-operator"},
             "data": {"config.yaml": "version: v1\nflags:\n  migStrategy: none\n"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry", "namespace": "gpu-operator"},
          "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "c2VjcmV0LXRva2Vu"},
          "stringData": {"token": "s3cr3t-plain"}}
OBJECTS = [NAMESPACE, CONFIGMAP, SECRET]
SECRET_VALUES = ("c2VjcmV0LXRva2Vu", "s3cr3t-plain")


def render(capsys, dest, objects=None, **args):
    args.setdefault("_ansible_check_mode", False)
    return run_module(k8s_render.main, dict(objects=OBJECTS if objects is None else objects, dest=str(dest), **args), capsys)


def snapshot(root):
    """{relative path: (content, mode, mtime_ns)} of every file and directory under root."""
    found = {}
    for dirpath, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            content = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    content = handle.read()
            found[os.path.relpath(path, str(root))] = (content, stat.S_IMODE(info.st_mode), info.st_mtime_ns)
    return found


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def load(path):
    with open(str(path)) as handle:
        return list(yaml.safe_load_all(handle))


def test_writes_one_file_per_object_and_a_kustomization(capsys, tmp_path):
    dest = tmp_path / "gitops"
    failed, result = render(capsys, dest)
    assert not failed, result
    assert result["changed"]
    names = ["namespace-gpu-operator.yaml", "configmap-plugin-config.yaml", "secret-registry.yaml"]
    assert result["files"] == [str(dest / n) for n in names + ["kustomization.yaml"]]
    assert result["changed_files"] == result["files"] and result["removed_files"] == []
    assert sorted(os.listdir(str(dest))) == sorted(names + ["kustomization.yaml"])
    assert mode(dest) == 0o750
    assert load(dest / "kustomization.yaml") == [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": names}]
    assert load(dest / "configmap-plugin-config.yaml") == [CONFIGMAP]
    text = (dest / "configmap-plugin-config.yaml").read_text()
    assert text.startswith(k8s_render.MARKER + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n")  # keys in the order given
    assert mode(dest / "configmap-plugin-config.yaml") == 0o644
    assert mode(dest / "secret-registry.yaml") == 0o600
    assert load(dest / "secret-registry.yaml") == [SECRET]  # the file itself has the data
    for value in SECRET_VALUES:  # the result has not, not even in the arguments it returns
        assert value not in repr(result)


def test_second_run_changes_nothing(capsys, tmp_path):
    dest = tmp_path / "gitops"
    assert render(capsys, dest, component="device-plugin")[1]["changed"]
    before = snapshot(dest)
    failed, result = render(capsys, dest, component="device-plugin", _ansible_diff=True)
    assert not failed and not result["changed"], result
    assert result["changed_files"] == [] and result["removed_files"] == [] and "diff" not in result
    assert len(result["files"]) == 5
    assert snapshot(dest) == before  # not rewritten: same mtimes


def test_a_mode_change_alone_is_a_change(capsys, tmp_path):
    render(capsys, tmp_path)
    os.chmod(str(tmp_path / "secret-registry.yaml"), 0o644)
    failed, result = render(capsys, tmp_path, _ansible_diff=True)
    assert not failed and result["changed"] and result["changed_files"] == [str(tmp_path / "secret-registry.yaml")]
    assert result["diff"][0]["before"]["mode"] == "0644" and result["diff"][0]["after"]["mode"] == "0600"
    assert mode(tmp_path / "secret-registry.yaml") == 0o600


def test_secret_mode_is_taken(capsys, tmp_path):
    render(capsys, tmp_path, secret_mode="0640")
    assert mode(tmp_path / "secret-registry.yaml") == 0o640 and mode(tmp_path / "namespace-gpu-operator.yaml") == 0o644


def test_check_mode_writes_nothing(capsys, tmp_path):
    dest = tmp_path / "gitops"
    failed, result = render(capsys, dest, component="gfd", _ansible_check_mode=True, _ansible_diff=True)
    assert not failed and result["changed"], result
    assert not dest.exists()
    assert str(dest / "gfd" / "kustomization.yaml") in result["changed_files"]
    # Then with files there: a changed object reported, nothing written.
    render(capsys, dest, component="gfd")
    before = snapshot(dest)
    changed = dict(CONFIGMAP, data={"config.yaml": "version: v1\n"})
    failed, result = render(capsys, dest, objects=[NAMESPACE, changed], component="gfd", _ansible_check_mode=True)
    assert not failed and result["changed"]
    assert result["changed_files"] == [str(dest / "gfd" / n) for n in ("configmap-plugin-config.yaml", "kustomization.yaml")]
    assert result["removed_files"] == [str(dest / "gfd" / "secret-registry.yaml")]
    assert snapshot(dest) == before


def test_diff_masks_secret_data(capsys, tmp_path):
    failed, result = render(capsys, tmp_path, _ansible_diff=True)
    assert not failed
    secret = [d for d in result["diff"] if d["after_header"].startswith(str(tmp_path / "secret-registry.yaml"))]
    assert len(secret) == 1 and "masked" in secret[0]["after_header"]
    assert "'.dockerconfigjson': <masked>" in secret[0]["after"] or ".dockerconfigjson: <masked>" in secret[0]["after"]
    # A changed Secret: its old data is not shown either.
    new = dict(SECRET, data={".dockerconfigjson": "bmV3LXRva2Vu"}, stringData={"token": "n3w-plain"})
    failed, result = render(capsys, tmp_path, objects=[NAMESPACE, CONFIGMAP, new], _ansible_diff=True)
    assert not failed and result["changed_files"] == [str(tmp_path / "secret-registry.yaml")]
    (diff,) = result["diff"]
    assert "masked" in diff["before_header"] and "masked" in diff["after_header"]
    for value in SECRET_VALUES + ("bmV3LXRva2Vu", "n3w-plain"):
        assert value not in repr(result)
    # ...and when pruned.
    failed, result = render(capsys, tmp_path, objects=[NAMESPACE], _ansible_diff=True)
    assert not failed and str(tmp_path / "secret-registry.yaml") in result["removed_files"]
    assert "bmV3LXRva2Vu" not in repr(result) and "n3w-plain" not in repr(result)


def test_prune_removes_its_stale_files_only(capsys, tmp_path):
    render(capsys, tmp_path)
    (tmp_path / "README.md").write_text("how to apply\n")
    (tmp_path / "users-own.yaml").write_text("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\n")
    failed, result = render(capsys, tmp_path, objects=[NAMESPACE, SECRET])
    assert not failed and result["changed"]
    assert result["removed_files"] == [str(tmp_path / "configmap-plugin-config.yaml")]
    assert sorted(os.listdir(str(tmp_path))) == ["README.md", "kustomization.yaml", "namespace-gpu-operator.yaml", "secret-registry.yaml",
                                                 "users-own.yaml"]
    assert load(tmp_path / "kustomization.yaml")[0]["resources"] == ["namespace-gpu-operator.yaml", "secret-registry.yaml"]


def test_no_prune_keeps_the_stale_file(capsys, tmp_path):
    render(capsys, tmp_path)
    failed, result = render(capsys, tmp_path, objects=[NAMESPACE], prune=False)
    assert not failed and result["removed_files"] == []
    assert (tmp_path / "configmap-plugin-config.yaml").exists()


def test_components_share_one_dest(capsys, tmp_path):
    (tmp_path / "kustomization.yaml").write_text("---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                                 "namespace: gpu-operator\nresources:\n  - ./extra\n")
    assert not render(capsys, tmp_path, objects=[CONFIGMAP], component="device-plugin")[0]
    assert not render(capsys, tmp_path, objects=[NAMESPACE], component="dcgm-exporter")[0]
    top = load(tmp_path / "kustomization.yaml")[0]
    assert top["namespace"] == "gpu-operator" and top["resources"] == ["./extra", "device-plugin", "dcgm-exporter"]
    assert load(tmp_path / "device-plugin" / "kustomization.yaml")[0]["resources"] == ["configmap-plugin-config.yaml"]
    assert mode(tmp_path / "device-plugin") == 0o750
    # A component already listed leaves the top file as it is; its own directory is rewritten.
    failed, result = render(capsys, tmp_path, objects=[NAMESPACE, CONFIGMAP], component="device-plugin")
    assert not failed and result["changed_files"] == [str(tmp_path / "device-plugin" / n) for n in ("namespace-gpu-operator.yaml", "kustomization.yaml")]
    assert load(tmp_path / "kustomization.yaml")[0]["resources"] == ["./extra", "device-plugin", "dcgm-exporter"]
    assert (tmp_path / "dcgm-exporter" / "namespace-gpu-operator.yaml").exists()


def test_colliding_names_get_their_namespace(capsys, tmp_path):
    other = dict(CONFIGMAP, metadata={"name": "plugin-config", "namespace": "kube-system"})
    rbac = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:gpu-reader"}, "rules": []}
    failed, result = render(capsys, tmp_path, objects=[CONFIGMAP, other, rbac])
    assert not failed, result
    assert [os.path.basename(p) for p in result["files"]] == [
        "gpu-operator-configmap-plugin-config.yaml", "kube-system-configmap-plugin-config.yaml", "clusterrole-system_gpu-reader.yaml", "kustomization.yaml"]


@pytest.mark.parametrize(("objects", "message"), [
    ([NAMESPACE, "not a dict"], "Elements value for option 'objects' is of type"),  # the argument spec refuses it
    ([NAMESPACE, {"kind": "ConfigMap", "metadata": {"name": "x"}}], "objects[1] has no apiVersion"),
    ([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}], "objects[0] (kind ConfigMap) has no metadata.name"),
    ([{"apiVersion": "v1", "kind": "ConfigMap"}], "objects[0] (kind ConfigMap) has no metadata.name"),
    ([CONFIGMAP, CONFIGMAP], "objects[0] (ConfigMap gpu-operator/plugin-config) and objects[1]"),
])
def test_bad_objects_are_refused(capsys, tmp_path, objects, message):
    failed, result = render(capsys, tmp_path / "gitops", objects=objects)
    assert failed and message in result["msg"], result
    assert not (tmp_path / "gitops").exists()


@pytest.mark.parametrize(("args", "message"), [
    ({"dest": "relative/dir"}, "dest must be an absolute path"),
    ({"component": "../up"}, "component must be one directory name"),
    ({"secret_mode": "rw-------"}, "secret_mode must be an octal mode"),
])
def test_bad_arguments_are_refused(capsys, tmp_path, args, message):
    args = dict({"dest": str(tmp_path / "gitops")}, **args)
    failed, result = run_module(k8s_render.main, dict(objects=OBJECTS, **args), capsys)
    assert failed and message in result["msg"], result
    for value in SECRET_VALUES:
        assert value not in repr(result)


def test_a_kustomization_that_is_no_mapping_is_refused(capsys, tmp_path):
    (tmp_path / "kustomization.yaml").write_text("- a\n- b\n")
    failed, result = render(capsys, tmp_path, component="device-plugin")
    assert failed and "is not a kustomization" in result["msg"]
    assert not (tmp_path / "device-plugin").exists()


def test_diff_says_which_secret_values_changed(capsys, tmp_path):
    render(capsys, tmp_path)
    new = dict(SECRET, data=dict(SECRET["data"], extra="ZXh0cmE="))
    new["data"][".dockerconfigjson"] = "bmV3LXRva2Vu"
    failed, result = render(capsys, tmp_path, objects=[NAMESPACE, CONFIGMAP, new], _ansible_diff=True)
    assert not failed
    (diff,) = result["diff"]
    assert "<masked, changed: old>" in diff["before"] and "<masked, changed: new>" in diff["after"]
    assert "extra: <masked, added>" in diff["after"]
    assert "bmV3LXRva2Vu" not in repr(result) and "ZXh0cmE=" not in repr(result)
    for key in SECRET.get("stringData") or {}:
        assert "%s: <masked, unchanged>" % key in diff["after"], diff["after"]
