"""toolkit_config: main() for real on files in a temporary directory.

The file each test starts from is the toolkit's default config.toml
(fixtures/toolkit/config-default.toml), the one the package writes.
"""

import json
import os
import stat
import uuid

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import secret_mask as sm
from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw
from ansible_collections.gpunode.nvidia.plugins.module_utils import toolkit_config as tc
from ansible_collections.gpunode.nvidia.plugins.modules import toolkit_config

from ...conftest import FIXTURES
from ...utils import run_module

DEFAULT = os.path.join(FIXTURES, "toolkit", "config-default.toml")
SETTINGS = {
    "nvidia-container-runtime.mode": "cdi",
    "nvidia-container-runtime.log-level": "info",
    "nvidia-container-cli.no-cgroups": False,
    "features.disable-cuda-compat-lib-hook": True,
}


def read(path):
    with open(str(path)) as handle:
        return handle.read()


@pytest.fixture
def node(tmp_path):
    """/etc/nvidia-container-runtime/config.toml as the package writes it, under tmp_path."""
    directory = tmp_path / "etc" / "nvidia-container-runtime"
    directory.mkdir(parents=True)
    path = directory / "config.toml"
    path.write_text(read(DEFAULT))
    return str(path), {"path": str(path), "settings": dict(SETTINGS)}


def listing(path):
    return sorted(os.listdir(os.path.dirname(path)))


def test_settings_are_set_keeping_every_other_line(node, capsys):
    path, args = node
    original = read(path)
    failed, result = run_module(toolkit_config.main, args, capsys)
    assert not failed and result["changed"], result
    assert result["changed_keys"] == [
        "features.disable-cuda-compat-lib-hook", "nvidia-container-cli.no-cgroups", "nvidia-container-runtime.mode"]
    assert result["settings"] == SETTINGS and result["mode"] == "cdi" and result["config_path"] == path
    after = read(path)
    expected = toml_rw.loads(original)
    expected["nvidia-container-runtime"]["mode"] = "cdi"
    expected["nvidia-container-cli"]["no-cgroups"] = False
    expected["features"] = {"disable-cuda-compat-lib-hook": True}
    assert toml_rw.loads(after) == expected
    # Every line of the original is still there, in order, the commented-out defaults included.
    kept = [line for line in after.splitlines() if line != 'mode = "cdi"']
    assert [line for line in original.splitlines() if line != 'mode = "auto"'] == [
        line for line in kept if line not in ("no-cgroups = false", "[features]", "disable-cuda-compat-lib-hook = true")][:-1]
    assert "#no-cgroups = false" in after and '#debug = "/var/log/nvidia-container-runtime.log"' in after


def test_second_run_changes_nothing(node, capsys):
    path, args = node
    run_module(toolkit_config.main, args, capsys)
    after = read(path)
    files = listing(path)
    failed, again = run_module(toolkit_config.main, args, capsys)
    assert not failed and not again["changed"] and again["changed_keys"] == [] and "backup_file" not in again
    assert again["settings"] == SETTINGS and again["mode"] == "cdi"
    assert read(path) == after and listing(path) == files


def test_check_mode_reports_and_diffs_without_writing(node, capsys):
    path, args = node
    original = read(path)
    failed, result = run_module(toolkit_config.main, dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert not failed and result["changed"] and result["mode"] == "cdi"
    assert result["diff"]["before"] == original and result["diff"]["before_header"] == path
    assert "backup_file" not in result
    assert read(path) == original and listing(path) == ["config.toml"]
    failed, real = run_module(toolkit_config.main, args, capsys)
    assert read(path) == result["diff"]["after"] and real["changed_keys"] == result["changed_keys"]


def test_diff_shows_the_whole_file(node, capsys):
    path, args = node
    original = read(path)
    failed, result = run_module(toolkit_config.main, dict(args, _ansible_diff=True), capsys)
    assert not failed and result["diff"]["before"] == original and result["diff"]["after"] == read(path)
    failed, again = run_module(toolkit_config.main, dict(args, _ansible_diff=True), capsys)
    assert not failed and "diff" not in again


def test_backup_and_file_keep_the_mode_and_owner(node, capsys):
    path, args = node
    original = read(path)
    os.chmod(path, 0o600)
    owner = (4242, 4343) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(path, *owner)
    failed, result = run_module(toolkit_config.main, args, capsys)
    assert not failed and result["changed"]
    backup = result["backup_file"]
    assert os.path.dirname(backup) == os.path.dirname(path) and os.path.basename(backup).startswith("config.toml.")
    assert read(backup) == original
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == owner == (os.stat(backup).st_uid, os.stat(backup).st_gid)
    assert listing(path) == sorted(["config.toml", os.path.basename(backup)])  # no temporary file left


def test_no_backup_when_asked(node, capsys):
    path, args = node
    failed, result = run_module(toolkit_config.main, dict(args, backup=False), capsys)
    assert not failed and result["changed"] and "backup_file" not in result and listing(path) == ["config.toml"]


def test_a_linked_file_is_edited_where_it_lives(node, capsys):
    path, args = node
    link = os.path.join(os.path.dirname(path), "link.toml")
    os.symlink(path, link)
    failed, result = run_module(toolkit_config.main, dict(args, path=link, backup=False), capsys)
    assert not failed and result["changed"] and os.path.islink(link) and 'mode = "cdi"' in read(path)


def test_comments_and_user_settings_are_kept(tmp_path, capsys):
    path = tmp_path / "config.toml"
    text = (
        "# Managed by hand: ask the GPU team before changing.\n"
        "[nvidia-container-runtime]\n"
        'mode = "legacy"  # needed by the old images\n'
        'debug = "/var/log/ncr.log"\n'
        "#log-level = \"debug\"\n"
        "\n"
        "[nvidia-container-cli]\n"
        'user = "root:video"\n'
    )
    path.write_text(text)
    args = {"path": str(path), "settings": {"nvidia-container-runtime.mode": "jit-cdi",
                                            "nvidia-container-runtime.log-level": "debug"}, "backup": False}
    failed, result = run_module(toolkit_config.main, args, capsys)
    assert not failed and result["mode"] == "jit-cdi"
    assert read(path) == text.replace('"legacy"  # needed', '"jit-cdi"  # needed').replace(
        'debug = "/var/log/ncr.log"\n', 'debug = "/var/log/ncr.log"\nlog-level = "debug"\n')


def test_malformed_file_is_refused_and_left_byte_identical(node, capsys):
    path, args = node
    broken = read(DEFAULT).replace('log-level = "info"', "log-level = info")
    with open(path, "w") as handle:
        handle.write(broken)
    failed, result = run_module(toolkit_config.main, args, capsys)
    assert failed and "is not valid TOML" in result["msg"] and "(line 20, column 13)" in result["msg"], result
    assert "Nothing was changed" in result["msg"]
    assert read(path) == broken and listing(path) == ["config.toml"]


@pytest.mark.parametrize("text,message", [
    ('[nvidia-container-cli]\nno-cgroups = "false"\n',
     'holds nvidia-container-cli.no-cgroups = "false", a string (line 2), where a boolean is wanted'),
    ("[nvidia-container-runtime]\nmode = 1\n", "holds nvidia-container-runtime.mode = 1, an integer (line 2), where a string"),
    ("features = true\n", "features is a boolean (line 1), not a table"),
    ('[nvidia-container-runtime]\nmodes.cdi.spec-dirs = ["/etc/cdi"]\n[nvidia-container-runtime.mode]\nx = 1\n',
     "holds nvidia-container-runtime.mode as a table (line 3), where a string is wanted"),
])
def test_wrong_types_in_the_file_are_refused(tmp_path, capsys, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    failed, result = run_module(toolkit_config.main, {"path": str(path), "settings": dict(SETTINGS)}, capsys)
    assert failed and message in result["msg"], result["msg"]
    assert "Fix the file by hand; nothing was changed" in result["msg"]
    assert read(path) == text


def test_forms_that_cannot_be_edited_in_place_are_refused(tmp_path, capsys):
    path = tmp_path / "config.toml"
    text = "features = { disable-cuda-compat-lib-hook = false }\n"
    path.write_text(text)
    failed, result = run_module(toolkit_config.main, {"path": str(path), "settings": dict(SETTINGS)}, capsys)
    assert failed and "features is written as an inline table (line 1)" in result["msg"]
    assert "under a [features] header" in result["msg"] and read(path) == text


def test_missing_file_fails_unless_create(tmp_path, capsys):
    path = str(tmp_path / "etc" / "nvidia-container-runtime" / "config.toml")
    failed, result = run_module(toolkit_config.main, {"path": path, "settings": dict(SETTINGS)}, capsys)
    assert failed and "does not exist" in result["msg"] and "install the toolkit first" in result["msg"]
    assert "create=true" in result["msg"] and not os.path.exists(os.path.dirname(path))

    args = {"path": path, "settings": dict(SETTINGS), "create": True}
    failed, result = run_module(toolkit_config.main, dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert not failed and result["changed"] and result["diff"]["before_header"].endswith("(absent)")
    assert not os.path.exists(path)

    failed, result = run_module(toolkit_config.main, args, capsys)
    assert not failed and result["changed"] and "backup_file" not in result
    assert toml_rw.loads(read(path)) == {
        "nvidia-container-runtime": {"mode": "cdi", "log-level": "info"},
        "nvidia-container-cli": {"no-cgroups": False},
        "features": {"disable-cuda-compat-lib-hook": True},
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    failed, again = run_module(toolkit_config.main, args, capsys)
    assert not failed and not again["changed"]


def test_without_settings_the_mode_is_reported(node, capsys):
    path, args = node
    failed, result = run_module(toolkit_config.main, {"path": path}, capsys)
    assert not failed and not result["changed"] and result["mode"] == "auto" and result["settings"] == {}
    with open(path, "w") as handle:
        handle.write("[nvidia-container-cli]\nload-kmods = true\n")
    failed, result = run_module(toolkit_config.main, {"path": path}, capsys)
    assert not failed and result["mode"] == "auto"  # absent: the runtime's default


@pytest.mark.parametrize("settings,message", [
    ({"nvidia-container-runtime.mode": "nvml"}, "nvidia-container-runtime.mode must be one of auto, legacy, cdi, csv, jit-cdi"),
    ({"nvidia-container-runtime.mode": "CDI"}, "must be one of"),
    ({"nvidia-container-runtime.log-level": "verbose"}, "log-level must be one of panic, fatal, error, warn, warning"),
    ({"nvidia-container-cli.no-cgroups": "maybe"}, "nvidia-container-cli.no-cgroups must be a boolean, got 'maybe'"),
    ({"features.disable-cuda-compat-lib-hook": 2}, "features.disable-cuda-compat-lib-hook must be a boolean"),
    ({"nvidia-container-runtime.runtimes": "runc"}, "runtimes must be a list of strings"),
    ({"some.future-key": {"a": 1}}, "some.future-key: a table cannot be written as a TOML value"),
    ({"some.future-key": None}, "no value"),
    ({"nvidia-container-runtime..mode": "cdi"}, "is not a dotted key"),
    ({"a.b": 1, "a.b.c": 2}, "a.b and a.b.c cannot both be set"),
])
def test_bad_settings_are_refused_before_the_file_is_read(node, capsys, settings, message):
    path, args = node
    original = read(path)
    failed, result = run_module(toolkit_config.main, dict(args, settings=settings), capsys)
    assert failed and message in result["msg"], result["msg"]
    assert read(path) == original


def test_every_problem_is_named_at_once():
    with pytest.raises(tc.ConfigError) as exc:
        tc.check_settings({"nvidia-container-runtime.mode": "x", "nvidia-container-cli.load-kmods": "x"})
    assert "load-kmods must be a boolean" in str(exc.value) and "mode must be one of" in str(exc.value)


def test_known_booleans_take_ansible_spellings_and_unknown_keys_pass(node, capsys):
    path, args = node
    settings = {"nvidia-container-cli.no-cgroups": "yes", "nvidia-container-runtime.log-level": "DEBUG",
                "features.some-future-flag": "true", "nvidia-container-runtime.some-future-list": [1, 2]}
    failed, result = run_module(toolkit_config.main, dict(args, settings=settings), capsys)
    assert not failed, result
    assert result["settings"] == {"nvidia-container-cli.no-cgroups": True, "nvidia-container-runtime.log-level": "DEBUG",
                                  "features.some-future-flag": True, "nvidia-container-runtime.some-future-list": [1, 2]}
    assert "no-cgroups = true\n#no-cgroups = false" in read(path)


def test_ldconfig_from_the_container_needs_the_feature(node, capsys):
    path, args = node
    original = read(path)
    failed, result = run_module(toolkit_config.main, dict(args, settings={"nvidia-container-cli.ldconfig": "/sbin/ldconfig"}), capsys)
    assert failed and "features.allow-ldconfig-from-container = true" in result["msg"] and read(path) == original
    settings = {"nvidia-container-cli.ldconfig": "/sbin/ldconfig", "features.allow-ldconfig-from-container": True}
    failed, result = run_module(toolkit_config.main, dict(args, settings=settings), capsys)
    assert not failed and result["changed"]


def test_an_unknown_mode_in_the_file_is_reported_with_a_warning(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text('[nvidia-container-runtime]\nmode = "nvml"\n')
    failed, result = run_module(toolkit_config.main, {"path": str(path)}, capsys)
    assert not failed and result["mode"] == "nvml"
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
    assert any("which the runtime does not know" in w for w in warnings)


def test_relative_path_is_refused(capsys):
    failed, result = run_module(toolkit_config.main, {"path": "etc/config.toml"}, capsys)
    assert failed and "must be an absolute path" in result["msg"]


# ---- issue 16: secrets stay secret ----


def test_secret_values_are_masked_in_the_diff_and_the_settings(node, capsys):
    path, args = node
    canary = uuid.uuid4().hex
    extra = (
        "\n[site]\n"
        '# token = "old-%s"\n'
        'registry-password = "pw-%s"\n'
        'user = "site-user"\n' % (canary, canary)
    )
    with open(path, "a") as handle:
        handle.write(extra)
    settings = dict(SETTINGS, **{"site.api-token": "new-%s" % canary})
    failed, result = run_module(toolkit_config.main, dict(args, settings=settings, _ansible_diff=True), capsys)
    assert not failed and result["changed"], result
    # Ansible echoes the module's own arguments (settings among them) in "invocation"; nothing else has it.
    assert canary not in json.dumps(dict((k, v) for k, v in result.items() if k != "invocation"))
    diff = result["diff"]
    assert diff["before_header"] == path + sm.NOTE and diff["after_header"] == path + sm.NOTE
    assert 'registry-password = "<masked, unchanged>"' in diff["before"] and 'registry-password = "<masked, unchanged>"' in diff["after"]
    assert 'api-token = "<masked, added>"' in diff["after"] and 'user = "site-user"' in diff["after"]
    assert result["settings"]["site.api-token"] == sm.MASKED and result["settings"]["nvidia-container-runtime.mode"] == "cdi"
    text = read(path)
    assert extra.rstrip("\n") in text and 'api-token = "new-%s"' % canary in text  # the file keeps them as they are


def test_a_diff_without_secrets_says_nothing_of_masking(node, capsys):
    path, args = node
    failed, result = run_module(toolkit_config.main, dict(args, _ansible_diff=True), capsys)
    assert not failed and result["diff"]["before_header"] == path and sm.NOTE not in result["diff"]["after_header"]


def test_a_secret_of_the_wrong_type_is_not_quoted(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text("[site]\napi-token = 987654321987\n")
    failed, result = run_module(toolkit_config.main, {"path": str(path), "settings": {"site.api-token": "x"}}, capsys)
    assert failed and "holds site.api-token as an integer (its value not shown: a secret) (line 2)" in result["msg"], result
    assert "987654321987" not in json.dumps(result)
