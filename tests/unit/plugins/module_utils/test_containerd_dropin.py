"""module_utils/containerd_dropin.py over real containerd configs and user layouts.

No containerd binary here: the merge of files is computed by the module's own
model of containerd (containerd_config.py, measured on the real 1.6, 1.7 and
2.1). molecule/containerd's verify runs the same cases through the real binaries.
"""

import os

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_config as cc
from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_dropin as cd
from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw

from ... import containerd_cases as cases

V2 = "io.containerd.grpc.v1.cri"
V3 = "io.containerd.cri.v1.runtime"


def files_of(params):
    return cc.read_text(params["config_path"]), cc.read_text(params["dropin_path"])


def plan(params, series, **kwargs):
    main, dropin = files_of(params)
    kwargs.setdefault("defaults", lambda: cases.defaults(series))
    return cd.plan_present(params, main, dropin, kwargs.pop("semantics", cases.semantics(series)), **kwargs)


def apply(params, result):
    cases.write_file(params["dropin_path"], result.dropin_after)
    cases.write_file(params["config_path"], result.main_after)


def merged(params, series):
    """The configuration containerd builds from the files on disk, by the module's model."""
    semantics = cases.semantics(series)
    main = cc.read_text(params["config_path"])
    data = toml_rw.loads(main) if main is not None else {}
    order = cc.load_order(params["config_path"], data, semantics, None)
    return cc.merge([item.data for item in order], semantics)


def case_dir(tmp_path, name):
    return str(tmp_path / name)


# ---- every case, on every containerd it suits ----


@pytest.mark.parametrize("name,series", cases.combinations())
def test_case_registers_runtime_and_keeps_every_setting(tmp_path, name, series):
    case = cases.CASES[name]
    params = cases.write_case(case, case_dir(tmp_path, name))
    original, original_dropin = files_of(params)
    before = merged(params, series)

    result = plan(params, series)
    assert result.changed and result.main_after is not None and result.dropin_after is not None
    expected_version = case.version or cases.semantics(series).fresh_config_version()
    assert result.version == expected_version
    assert result.plugin_id == cc.CRI_PLUGIN_IDS[expected_version]
    dropin = toml_rw.loads(result.dropin_after)
    assert dropin.get("version") == (None if expected_version == 1 else expected_version)
    assert list(dropin["plugins"]) == [result.plugin_id]
    assert cd.dropin_record(result.dropin_after)["runtime"] == "nvidia"

    apply(params, result)
    after = merged(params, series)
    assert cases.runtime_problems(after, result.plugin_id, params, default_runtime=case.base) == []
    assert cases.lost_settings(before, after, result.plugin_id, params, default_runtime=case.base) == []
    assert params["dropin_path"] in cc.resolve_imports(
        params["config_path"], toml_rw.loads(result.main_after).get("imports", []), cases.semantics(series)
    )

    again = plan(params, series)
    assert not again.changed, "second run must change nothing"

    undo = cd.plan_absent(params, *files_of(params))
    assert undo.main_after == original, "state=absent must give config.toml back byte for byte"
    # None, or the drop-in another tool had written there (taken over, given back).
    assert undo.dropin_after == original_dropin


@pytest.mark.parametrize("name", sorted(n for n, c in cases.CASES.items() if c.version == 2 or c.version is None))
def test_config_edit_is_one_imports_entry(tmp_path, name):
    params = cases.write_case(cases.CASES[name], case_dir(tmp_path, name))
    original = cc.read_text(params["config_path"])
    result = plan(params, "1.7")
    if original is None:
        assert result.main_after == 'version = 2\nimports = ["%s"]\n' % params["dropin_path"]
        return
    # Everything but the new entry (and, for a file without keys, the version line) is kept.
    entry = '"%s"' % params["dropin_path"]
    stripped = result.main_after.replace(", " + entry, "").replace(",\n  " + entry, "").replace("[%s]" % entry, "[]")
    if "imports" not in original:
        stripped = stripped.replace("imports = []\n", "")
    if not toml_rw.loads(original):
        stripped = stripped.replace("version = 2\n", "", 1)
    assert stripped == original


# ---- what the drop-in carries ----


def test_before_2_1_the_dropin_carries_the_whole_cri_table_and_builtin_runc(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "p"))
    result = plan(params, "1.7")
    cri = toml_rw.loads(result.dropin_after)["plugins"][V2]
    # config.toml's own CRI settings, copied: the drop-in replaces the table whole.
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d"}
    runtimes = cri["containerd"]["runtimes"]
    # runc written out from `containerd config default` of 1.7, or it would vanish.
    assert runtimes["runc"]["sandbox_mode"] == "podsandbox"
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert runtimes["nvidia"]["sandbox_mode"] == "podsandbox"  # inherited table
    assert runtimes["nvidia"]["options"]["BinaryName"] == cases.BINARY
    assert "replaces" not in result.dropin_after and "takes each plugin table whole" in result.dropin_after


def test_without_containerd_defaults_runc_is_written_minimal(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "p"))
    result = plan(params, "1.7", semantics=cc.Semantics(None), defaults=lambda: None)
    runtimes = toml_rw.loads(result.dropin_after)["plugins"][V2]["containerd"]["runtimes"]
    assert runtimes["runc"] == {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}


def test_from_2_1_the_dropin_carries_only_what_changes(tmp_path):
    params = cases.write_case(cases.CASES["custom-cni-v3"], case_dir(tmp_path, "c"))
    result = plan(params, "2.1")
    dropin = toml_rw.loads(result.dropin_after)
    assert list(dropin) == ["version", "plugins"] and dropin["version"] == 3
    cri = dropin["plugins"][V3]
    assert list(cri) == ["containerd"]  # no copy of the CNI settings
    runtimes = cri["containerd"]["runtimes"]
    assert runtimes["runc"] == {"options": {"SystemdCgroup": True}}
    # runc is built in here: nvidia inherits 2.1's own runc table, from `config default`.
    assert runtimes["nvidia"]["sandboxer"] == "podsandbox"
    assert runtimes["nvidia"]["options"]["SystemdCgroup"] is True
    assert runtimes["nvidia"]["options"]["BinaryName"] == cases.BINARY
    assert "takes each plugin table whole" not in result.dropin_after


def test_options_are_inherited_from_the_default_runtime(tmp_path):
    params = cases.write_case(cases.CASES["custom-runc-v2"], case_dir(tmp_path, "r"))
    params["default_runtime_options"] = {}
    result = plan(params, "1.7")
    assert result.runtime["options"] == {"SystemdCgroup": True, "NoNewKeyring": True, "BinaryName": cases.BINARY}
    assert result.runtime["privileged_without_host_devices"] is False
    cases.write_file(params["config_path"], cases.CUSTOM_RUNC_V2.replace('default_runtime_name = "runc"', 'default_runtime_name = "crun"').replace(
        "runtimes.runc", "runtimes.crun"))
    result = plan(params, "1.7")
    assert result.runtime["options"]["NoNewKeyring"] is True  # from crun, now the default


def test_binary_name_empty_keeps_the_inherited_one(tmp_path):
    params = cases.write_case(cases.CASES["custom-runc-v2"], case_dir(tmp_path, "r"))
    params["binary_name"] = ""
    assert plan(params, "1.7").runtime["options"]["BinaryName"] == "/usr/sbin/runc"


def test_another_shim_inherits_nothing(tmp_path):
    params = cases.write_case(cases.CASES["custom-runc-v2"], case_dir(tmp_path, "r"))
    params.update(name="kata", runtime_type="io.containerd.kata.v2", binary_name="")
    assert plan(params, "1.7").runtime == {"runtime_type": "io.containerd.kata.v2"}


def test_default_cdi_and_runtime_name(tmp_path):
    params = cases.write_case(cases.CASES["default-1.7"], case_dir(tmp_path, "d"))
    params.update(set_as_default=True, enable_cdi=True, cdi_spec_dirs=["/etc/cdi"])
    apply(params, plan(params, "1.7"))
    cri = merged(params, "1.7")["plugins"][V2]
    assert cri["containerd"]["default_runtime_name"] == "nvidia"
    assert (cri["enable_cdi"], cri["cdi_spec_dirs"]) == (True, ["/etc/cdi"])
    assert cri["containerd"]["runtimes"]["nvidia"]["options"]["SystemdCgroup"] is True


def test_cdi_needs_containerd_1_7(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "p"))
    params["enable_cdi"] = True
    with pytest.raises(cc.ConfigError, match="no CDI support"):
        plan(params, "1.6")


def test_runtime_named_like_the_default_changes_it_in_place(tmp_path):
    params = cases.write_case(cases.CASES["custom-runc-v2"], case_dir(tmp_path, "r"))
    params.update(name="runc", binary_name="/usr/local/bin/runc-wrapper")
    apply(params, plan(params, "1.7"))
    runc = merged(params, "1.7")["plugins"][V2]["containerd"]["runtimes"]["runc"]
    assert runc["options"] == {"SystemdCgroup": True, "NoNewKeyring": True, "BinaryName": "/usr/local/bin/runc-wrapper"}


# ---- imports ----


def test_glob_that_covers_the_dropin_is_left_alone(tmp_path):
    params = cases.write_case(cases.CASES["imports-glob-v2"], case_dir(tmp_path, "g"))
    result = plan(params, "1.7")
    assert result.main_after == result.main_before
    assert cd.dropin_record(result.dropin_after)["edits"] == []
    # The user's drop-in (loaded before ours) sets the registry; ours keeps it.
    cri = toml_rw.loads(result.dropin_after)["plugins"][V2]
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_multi_line_imports_get_a_line_of_their_own(tmp_path):
    params = cases.write_case(cases.CASES["imports-list-v2"], case_dir(tmp_path, "l"))
    result = plan(params, "1.7")
    assert '  "%s/user.d/20-gc.toml",\n  "%s",\n]' % (tmp_path / "l", params["dropin_path"]) in result.main_after
    assert "# the site's registry settings" in result.main_after


def test_windows_line_ends_are_kept(tmp_path):
    params = cases.write_case(cases.CASES["custom-cni-v2"], case_dir(tmp_path, "crlf"))
    original = cases.CUSTOM_CNI_V2.replace("\n", "\r\n")
    with open(params["config_path"], "w", newline="") as handle:
        handle.write(original)
    result = plan(params, "1.7")
    assert result.main_after == original.replace("version = 2\r\n", 'version = 2\r\nimports = ["%s"]\r\n' % params["dropin_path"])
    assert cd.plan_absent(params, result.main_after, result.dropin_after).main_after == original


def test_missing_import_stops_1x_but_not_2x(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "m"))
    cases.write_file(params["config_path"], 'version = 2\nimports = ["/nonexistent/10-gone.toml"]\n')
    with pytest.raises(cc.ConfigError, match="imports /nonexistent/10-gone.toml, which does not exist: containerd 1.7.24 refuses"):
        plan(params, "1.7")
    assert plan(params, "2.1").changed


# ---- layouts the module refuses, changing nothing ----


def refused(params, series, match):
    before = files_of(params)
    with pytest.raises(cc.ConfigError, match=match) as exc:
        plan(params, series)
    assert files_of(params) == before
    return str(exc.value)


def test_malformed_toml_is_refused_with_its_line(tmp_path):
    params = cases.write_case(cases.CASES["custom-runc-v2"], case_dir(tmp_path, "bad"))
    cases.write_file(params["config_path"], cases.CUSTOM_RUNC_V2 + "[plugins.broken\n")
    message = refused(params, "1.7", "is not valid TOML")
    assert "line 15, column 16" in message and "Nothing was changed" in message


def test_unknown_version_is_refused(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "v"))
    cases.write_file(params["config_path"], "version = 4\n")
    refused(params, "2.1", "declares config version 4")


def test_version_1_on_containerd_2_is_refused(tmp_path):
    params = cases.write_case(cases.CASES["version-1"], case_dir(tmp_path, "v1"))
    refused(params, "2.1", "containerd config migrate")


def test_version_3_on_containerd_1_is_refused(tmp_path):
    params = cases.write_case(cases.CASES["custom-runc-v3"], case_dir(tmp_path, "v3"))
    refused(params, "1.7", "cannot read .* needs containerd 2.x")


def test_later_import_that_replaces_the_cri_table_is_refused(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "late"))
    late = str(tmp_path / "late" / "zz-late.toml")
    cases.write_file(late, 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/x"\n')
    cases.write_file(params["config_path"], cases.real("1.7", "package-config.toml").replace("version = 2\n", 'version = 2\nimports = ["%s", "%s"]\n' % (
        params["dropin_path"], late)))
    message = refused(params, "1.7", "conflicting layout")
    assert late in message and "replace merge" in message
    # containerd 2.1 merges key by key: the same file is harmless there.
    assert plan(params, "2.1").changed


def test_later_import_that_overrides_the_runtime_is_refused_on_2_1(tmp_path):
    params = cases.write_case(cases.CASES["custom-cni-v3"], case_dir(tmp_path, "late"))
    late = str(tmp_path / "late" / "zz-late.toml")
    cases.write_file(late, "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.nvidia.options]\n  BinaryName = '/bin/false'\n")
    cases.write_file(params["config_path"], 'version = 3\nimports = ["%s", "%s"]\n' % (params["dropin_path"], late))
    refused(params, "2.1", "BinaryName would not take effect")


def test_mixed_versions_are_refused(tmp_path):
    params = cases.write_case(cases.CASES["imports-glob-v2"], case_dir(tmp_path, "mix"))
    cases.write_file(str(tmp_path / "mix" / "conf.d" / "10-registry.toml"), "version = 3\n")
    refused(params, "2.1", "merges files before it migrates them")


def test_foreign_or_other_runtime_dropin_is_refused(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "f"))
    cases.write_file(params["dropin_path"], "version = 2\n")
    refused(params, "1.7", "was not written by gpunode.nvidia.containerd_runtime")
    cases.write_file(params["dropin_path"], cd.render_dropin({"version": 2}, {"runtime": "nvidia", "config": "c", "edits": []}, "deep"))
    params["name"] = "nvidia-cdi"
    refused(params, "1.7", "holds runtime 'nvidia', not 'nvidia-cdi'")


def test_wrong_types_are_refused(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "t"))
    cases.write_file(params["config_path"], 'version = 2\nimports = "/etc/containerd/conf.d/x.toml"\n')
    refused(params, "1.7", "imports must be an array")
    cases.write_file(params["config_path"], 'version = 2\n[plugins]\n"io.containerd.grpc.v1.cri" = "on"\n')
    refused(params, "1.7", "must be a table")
    cases.write_file(params["config_path"], 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes]\nrunc = 1\n')
    refused(params, "1.7", "runtimes.runc must be a table")


def test_runtimes_under_another_versions_plugin_are_warned_about(tmp_path):
    params = cases.write_case(cases.CASES["custom-cni-v3"], case_dir(tmp_path, "w"))
    cases.write_file(params["config_path"], cases.CUSTOM_CNI_V3 + '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n')
    assert any("which a version 3 config ignores" in w for w in plan(params, "2.1").warnings)


# ---- state=absent ----


def test_absent_removes_only_what_was_added(tmp_path):
    params = cases.write_case(cases.CASES["custom-cni-v2"], case_dir(tmp_path, "a"))
    original = cc.read_text(params["config_path"])
    apply(params, plan(params, "1.7"))
    # The user adds an import of their own after ours: theirs stays.
    with_user = cc.read_text(params["config_path"]).replace('.toml"]', '.toml", "/etc/containerd/user.toml"]')
    cases.write_file(params["config_path"], with_user)
    undo = cd.plan_absent(params, *files_of(params))
    assert undo.main_after == original.replace("version = 2\n", 'version = 2\nimports = ["/etc/containerd/user.toml"]\n')
    assert undo.imports == ["/etc/containerd/user.toml"]


def test_absent_without_dropin_still_drops_a_dangling_import(tmp_path):
    params = cases.write_case(cases.CASES["imports-list-v2"], case_dir(tmp_path, "d"))
    original = cc.read_text(params["config_path"])
    apply(params, plan(params, "1.7"))
    os.unlink(params["dropin_path"])
    undo = cd.plan_absent(params, *files_of(params))
    assert undo.main_after == original and undo.changed


def test_absent_keeps_a_created_file_the_user_has_since_edited(tmp_path):
    params = cases.write_case(cases.CASES["no-file"], case_dir(tmp_path, "n"))
    apply(params, plan(params, "1.7"))
    cases.write_file(params["config_path"], cc.read_text(params["config_path"]) + "oom_score = -999\n")
    undo = cd.plan_absent(params, *files_of(params))
    assert undo.main_after == "version = 2\noom_score = -999\n"


def test_absent_on_a_node_without_anything_changes_nothing(tmp_path):
    params = cases.write_case(cases.CASES["no-file"], case_dir(tmp_path, "z"))
    assert not cd.plan_absent(params, None, None).changed
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "y"))
    assert not cd.plan_absent(params, *files_of(params)).changed


# ---- inheritance as nvidia-ctk 1.20.0 and containerd resolve it (issue 17) ----


@pytest.mark.parametrize("series", cases.SERIES)
def test_empty_runtime_type_still_passes_runcs_options_on(tmp_path, series):
    params = cases.write_case(cases.CASES["ctk-empty-runtime-type-v2"], case_dir(tmp_path, series))
    result = plan(params, series)
    assert result.runtime["runtime_type"] == "io.containerd.runc.v2"
    assert result.runtime["options"]["SystemdCgroup"] is True
    assert (result.runtime["runtime_engine"], result.runtime["runtime_root"]) == ("", "")  # copied as they are
    assert result.warnings == []


def test_the_default_runtime_wins_over_runc(tmp_path):
    params = cases.write_case(cases.CASES["ctk-default-over-runc-v2"], case_dir(tmp_path, "d"))
    runtime = plan(params, "1.7").runtime
    assert runtime["options"] == {"BinaryName": cases.BINARY, "NoNewKeyring": True, "SystemdCgroup": False}
    assert runtime["privileged_without_host_devices"] is False


def test_nvidia_as_default_is_not_inherited_from(tmp_path):
    # Made the default by hand (or by nvidia-ctk --set-as-default): runc is the base, as upstream does.
    params = cases.write_case(cases.CASES["ctk-existing-runtime-default-v2"], case_dir(tmp_path, "n"))
    params["default_runtime_options"] = {"NoNewKeyring": True}
    result = plan(params, "1.7")
    runtimes = toml_rw.loads(result.dropin_after)["plugins"][V2]["containerd"]["runtimes"]
    assert runtimes["runc"]["options"] == {"SystemdCgroup": True, "NoNewKeyring": True}
    assert result.runtime["options"] == {"SystemdCgroup": True, "NoNewKeyring": True, "BinaryName": cases.BINARY}


def test_a_runtime_already_there_keeps_its_settings_but_takes_the_asked_options(tmp_path):
    params = cases.write_case(cases.CASES["ctk-existing-runtime-default-v2"], case_dir(tmp_path, "e"))
    cases.write_file(params["config_path"], cases.EXISTING_RUNTIME_V2.replace(
        'privileged_without_host_devices = false\n    runtime_type = "io.containerd.runc.v2"\n    [plugins."io.containerd.grpc.v1.cri"'
        '.containerd.runtimes.nvidia.options]\n', 'privileged_without_host_devices = true\n    runtime_type = "io.containerd.runc.v2"\n'
        '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\n      SystemdCgroup = false\n'))
    runtime = plan(params, "1.7").runtime
    assert runtime["privileged_without_host_devices"] is True  # the node's own setting
    assert runtime["options"]["SystemdCgroup"] is True  # default_runtime_options, over the stale copy


def test_no_runtime_to_inherit_from_is_warned_about(tmp_path):
    params = cases.write_case(cases.CASES["package-config"], case_dir(tmp_path, "w"))
    cases.write_file(params["config_path"], 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]\n'
                                            '  runtime_type = "io.containerd.kata.v2"\n')
    result = plan(params, "1.7")
    assert result.warnings == [
        "the runtime 'runc' is not defined, so default_runtime_options were not applied",
        "no 'runc' or 'crun' runtime to inherit options from; nvidia gets only its own",
    ]
    assert result.runtime == {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": cases.BINARY}}


# ---- taking over a node that nvidia-ctk or the GPU Operator configured (issue 9) ----


def test_takeover_keeps_the_earlier_settings_and_gives_them_back_on_absent(tmp_path):
    params = cases.write_case(cases.CASES["takeover-gpu-operator-v3"], case_dir(tmp_path, "t"))
    main, earlier = files_of(params)
    result = plan(params, "2.1")
    assert not result.main_changed  # its conf.d glob already imports the drop-in
    assert any("taken over with every setting it made" in w for w in result.warnings)
    cri = toml_rw.loads(result.dropin_after)["plugins"][V3]
    assert cri["enable_cdi"] is True and cri["containerd"]["default_runtime_name"] == "nvidia"
    assert cri["containerd"]["runtimes"]["nvidia-cdi"]["options"]["BinaryName"].endswith(".cdi")
    # Measured on the real 2.1: a runtime a file defines shows the fields it leaves out as zero
    # values (sandboxer = ''), so the built-in runc's must not fill them in.
    assert "sandboxer" not in cri["containerd"]["runtimes"]["nvidia"]
    assert cd.dropin_record(result.dropin_after)["taken_over"] == {"text": earlier, "loaded": True}
    apply(params, result)
    assert not plan(params, "2.1").changed
    undo = cd.plan_absent(params, *files_of(params))
    assert (undo.main_after, undo.dropin_after) == (main, earlier)
    assert any("put back as nvidia-ctk or the GPU Operator's toolkit wrote it" in w for w in undo.warnings)


def test_takeover_of_a_dropin_nothing_imported_does_not_revive_its_settings(tmp_path):
    params = cases.write_case(cases.CASES["takeover-nvidia-ctk-v2"], case_dir(tmp_path, "n"))
    # A config manager rewrote config.toml since and dropped the import (gpu-operator#1651).
    cases.write_file(params["config_path"], cases.CUSTOM_CNI_V2)
    result = plan(params, "1.7")
    assert any("none of its settings were in effect" in w for w in result.warnings)
    cri = toml_rw.loads(result.dropin_after)["plugins"][V2]
    assert "sandbox_image" not in cri  # the stale copy stays out
    assert cd.dropin_record(result.dropin_after)["taken_over"]["loaded"] is False
    apply(params, result)
    assert not plan(params, "1.7").changed
    undo = cd.plan_absent(params, *files_of(params))
    assert undo.main_after == cases.CUSTOM_CNI_V2 and undo.dropin_after == cases.CTK_DROPIN_V2


def test_takeover_of_a_dropin_of_another_version_is_refused(tmp_path):
    params = cases.write_case(cases.CASES["takeover-nvidia-ctk-v2"], case_dir(tmp_path, "v"))
    # What the toolkit container's `config dump` source wrote over version 2 configs (NVIDIA/aicr#1688).
    cases.write_file(params["dropin_path"], cases.CTK_DROPIN_V2.replace("version = 2", "version = 3").replace(
        "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"))
    refused(params, "2.1", "written by another tool, is config version 3 but .* is version 2")


def test_absent_leaves_a_dropin_it_never_took_over(tmp_path):
    params = cases.write_case(cases.CASES["takeover-nvidia-ctk-v2"], case_dir(tmp_path, "a"))
    undo = cd.plan_absent(params, *files_of(params))
    assert not undo.changed
    assert any("is left as nvidia-ctk or the GPU Operator's toolkit wrote it" in w for w in undo.warnings)
