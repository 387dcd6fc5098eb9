"""module_utils/toml_rw.py: our TOML reader and writer, checked against Python's tomllib."""

import glob
import math
import os

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw

from ...conftest import FIXTURES

tomllib = pytest.importorskip("tomllib")  # the reference reader (Python 3.11+, where the tests run)

REAL_CONFIGS = sorted(glob.glob(os.path.join(FIXTURES, "containerd", "real", "*", "*.toml")))

VALID = {
    "dotted and quoted keys": 'a.b.c = 1\n"x.y".z = 2\n\'lit\'.k = 3\n"" = 4\nsite."io.containerd.grpc.v1.cri" = "v"\n',
    "containerd style tables": (
        'version = 2\n[plugins]\n  [plugins."io.containerd.grpc.v1.cri"]\n'
        '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n      SystemdCgroup = true\n'
        "[plugins.'io.containerd.cri.v1.runtime'.cni]\n  bin_dirs = ['/usr/lib/cni', \"/opt/cni/bin\"]\n"
    ),
    "implicit table defined later": "[a.b.c]\nx = 1\n[a]\ny = 2\n[a.b]\nz = 3\n",
    "sub-table under dotted keys": "[fruit]\napple.color = 'red'\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n",
    "basic string escapes": 'a = "tab\\tquote\\" back\\\\ \\u00e9 \\U0001F600 \\b\\f\\r\\n"\n',
    "literal strings": "a = 'C:\\\\path\\\\no escapes'\nb = '\"quoted\"'\n",
    "multi-line basic": 'a = """\nline one\nline two \\\n    continued"""\nb = """two quotes at the end"""""\n',
    "multi-line literal": "a = '''\nraw \\n text\n'''\nb = '''x''\\''''\n",
    "integers": "a = +99\nb = -17\nc = 0\nd = 1_000_000\ne = 0xDEAD_beef\nf = 0o755\ng = 0b1101\nh = -0\n",
    "floats": "a = 0.02\nb = -3.5e+3\nc = 6.626e-34\nd = 1_000.000_1\ne = inf\nf = -inf\ng = 1E6\n",
    "booleans": "a = true\nb = false\n",
    "arrays": 'a = [ 1, 2, ]\nb = [\n  "x",  # comment\n  "y",\n]\nc = [[1, 2], ["a"], []]\nd = [{ k = 1 }, { k = 2 }]\ne = []\n',
    "inline tables": 'a = { x = 1, y.z = "w", n = { deep = true } }\nb = {}\n',
    "array of tables": (
        "[[t]]\nn = 1\n[t.sub]\nv = 'a'\n[[t]]\nn = 2\n[[t.list]]\nq = 1\n"
        "[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\nplatform = 'linux/amd64'\nsnapshotter = 'overlayfs'\n"
    ),
    "comments and blank lines": "# top\n\n  # indented\nkey = 'v' # trailing\n[t] # header comment\n",
    "windows line ends": "a = 1\r\nb = [\r\n 2,\r\n]\r\n[t]\r\nc = '''x\r\ny'''\r\n",
    "empty": "",
    "whitespace only": "  \n\t\n",
    "unicode bare values": 'name = "ñandú"\n"ключ" = 1\n',
}

INVALID = {
    "duplicate key": "a = 1\na = 2\n",
    "duplicate table": "[a]\n[a]\n",
    "table after dotted definition": "a.b.c = 1\n[a.b]\n",
    "dotted key into header table": "[a.b]\nx = 1\n[a]\nb.y = 2\n",
    "extend inline table": "a = { x = 1 }\na.y = 2\n",
    "header into inline table": "a = { x = 1 }\n[a.b]\n",
    "array of tables over static array": "a = []\n[[a]]\n",
    "table over value": "a = 1\n[a]\n",
    "unterminated string": 'a = "open\n',
    "unterminated multi-line": 'a = """open\n',
    "bad escape": 'a = "\\q"\n',
    "short unicode escape": 'a = "\\u12"\n',
    "surrogate escape": 'a = "\\ud800"\n',
    "missing value": "a =\n",
    "missing equals": "a 1\n",
    "two values on a line": "a = 1 b = 2\n",
    "leading zero": "a = 012\n",
    "bad float": "a = 1.\n",
    "bad float exponent": "a = 1e\n",
    "unknown word": "a = yes\n",
    "newline in inline table": "a = { x = 1,\n y = 2 }\n",
    "trailing comma in inline table": "a = { x = 1, }\n",
    "unclosed array": "a = [1, 2\n",
    "array without comma": "a = [1 2]\n",
    "unclosed header": "[a\nb = 1\n",
    "bad bare key": "a b = 1\n",
    "control character": 'a = "x\x01"\n',
    "multi-line key": '"""k""" = 1\n',
    "empty bare key": "= 1\n",
}


def parsed_equal(a, b):
    """Equality that counts nan as equal to nan."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(parsed_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(parsed_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_real_containerd_configs_read_as_tomllib_reads_them():
    assert len(REAL_CONFIGS) == 6  # default and package config of 1.6, 1.7, 2.1
    for path in REAL_CONFIGS:
        with open(path) as handle:
            text = handle.read()
        assert parsed_equal(toml_rw.loads(text), tomllib.loads(text)), path


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_toml_reads_as_tomllib_reads_it(name):
    assert parsed_equal(toml_rw.loads(VALID[name]), tomllib.loads(VALID[name]))


def test_nan_reads_as_nan():
    assert math.isnan(toml_rw.loads("a = nan\n")["a"]) and math.isnan(toml_rw.loads("a = -nan\n")["a"])


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_toml_is_refused_as_tomllib_refuses_it(name):
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(INVALID[name])
    with pytest.raises(toml_rw.TomlError) as exc:
        toml_rw.loads(INVALID[name])
    assert exc.value.line is not None and "line %d" % exc.value.line in str(exc.value)


def test_error_names_line_and_column():
    with pytest.raises(toml_rw.TomlError) as exc:
        toml_rw.loads('version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = registry/pause\n')
    assert (exc.value.line, exc.value.column) == (4, 19)
    assert "invalid value 'registry/pause' (line 4, column 19)" in str(exc.value)


def test_dates_fail_clearly():
    with pytest.raises(toml_rw.TomlError, match="dates and times are not supported"):
        toml_rw.loads("when = 1979-05-27T07:32:00Z\n")


@pytest.mark.parametrize("path", REAL_CONFIGS)
def test_real_configs_round_trip(path):
    with open(path) as handle:
        data = toml_rw.loads(handle.read())
    text = toml_rw.dumps(data)
    assert toml_rw.loads(text) == data
    assert tomllib.loads(text) == data


def test_awkward_values_round_trip():
    data = {
        "plain": "x",
        "needs escapes": 'quote " back \\ tab \t nl \n cr \r bell \x07 del \x7f é 😀',
        "dotted.key": {"with space": 1, "": "empty key"},
        "nums": [0, -1, 2**63 - 1, 0.5, -2.5e-10, 1e100, float("inf"), -float("inf")],
        "float_integral": 3.0,
        "bools": [True, False],
        "nested": [[1, 2], ["a", "b"], []],
        "inline": [{"a": 1}, "mixed"],
        "empty_table": {},
        "deep": {"a": {"b": {"c": {}}}, "x": 1},
        "aot": [{"n": 1, "sub": {"v": True}}, {"n": 2, "list": [{"q": 1}]}],
        "top_level_after_tables": "stays top level",
    }
    text = toml_rw.dumps(data)
    assert tomllib.loads(text) == toml_rw.loads(text) == data
    # Key order inside a table is kept; plain keys come before tables.
    assert text.index("plain =") < text.index("[deep.a.b.c]") < text.index("[[aot]]")


def test_dumps_writes_containerd_layout():
    text = toml_rw.dumps({"version": 2, "plugins": {"io.containerd.grpc.v1.cri": {"containerd": {"runtimes": {"nvidia": {
        "runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": "/usr/bin/nvidia-container-runtime"}}}}}}})
    assert text == (
        "version = 2\n"
        "\n"
        '        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
        '          runtime_type = "io.containerd.runc.v2"\n'
        "\n"
        '          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\n'
        '            BinaryName = "/usr/bin/nvidia-container-runtime"\n'
    )
    assert toml_rw.dumps({}) == ""


def test_dumps_refuses_types_toml_lacks():
    with pytest.raises(TypeError):
        toml_rw.dumps({"a": object()})


def test_spans_locate_top_level_keys():
    text = '# head\nversion = 2  # v\nimports = [\n  "/a.toml",  # first\n  \'/b.toml\'\n]\n\n[t]\nimports = 1\n'
    doc = toml_rw.parse(text)
    version, imports = doc.spans["version"], doc.spans["imports"]
    assert text[version.start:version.end] == "version = 2  # v\n"
    assert text[version.value_start:version.value_end] == "2"
    assert text[imports.value_start:imports.value_end] == '[\n  "/a.toml",  # first\n  \'/b.toml\'\n]'
    assert [text[s:e] for s, e in imports.items] == ['"/a.toml"', "'/b.toml'"]
    assert text[doc.first_table:].startswith("[t]")
    assert set(doc.spans) == {"version", "imports"}  # [t].imports is not top level
    assert toml_rw.parse("a = 1").first_table == len("a = 1")


# ---- set_value: one key changed, every other byte kept ----

TOOLKIT_DEFAULT = os.path.join(FIXTURES, "toolkit", "config-default.toml")

# (path, value, the line that must appear, the original line it replaces or None when added)
TOOLKIT_CHANGES = [
    (("nvidia-container-runtime", "mode"), "cdi", 'mode = "cdi"', 'mode = "auto"'),
    (("nvidia-container-runtime", "log-level"), "debug", 'log-level = "debug"', 'log-level = "info"'),
    (("nvidia-container-runtime", "runtimes"), ["crun"], 'runtimes = ["crun"]', 'runtimes = ["runc", "crun"]'),
    (("nvidia-container-runtime", "debug"), "/var/log/ncr.log", 'debug = "/var/log/ncr.log"', None),
    (("nvidia-container-cli", "no-cgroups"), True, "no-cgroups = true", None),
    (("nvidia-container-cli", "load-kmods"), False, "load-kmods = false", "load-kmods = true"),
    (("nvidia-container-runtime", "modes", "cdi", "spec-dirs"), ["/etc/cdi"], 'spec-dirs = ["/etc/cdi"]',
     'spec-dirs = ["/etc/cdi", "/var/run/cdi"]'),
    (("nvidia-container-runtime", "modes", "jit-cdi", "load-kernel-modules"), ["nvidia"],
     'load-kernel-modules = ["nvidia"]', None),
    (("features", "disable-cuda-compat-lib-hook"), True, "disable-cuda-compat-lib-hook = true", None),
    (("accept-nvidia-visible-devices-as-volume-mounts",), True, "accept-nvidia-visible-devices-as-volume-mounts = true", None),
    (("accept-nvidia-visible-devices-envvar-when-unprivileged",), False,
     "accept-nvidia-visible-devices-envvar-when-unprivileged = false", None),
]


def read_fixture(path):
    with open(path) as handle:
        return handle.read()


def expected_after(data, path, value):
    import copy

    expected = copy.deepcopy(data)
    node = expected
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return expected


def test_toolkit_default_reads_as_tomllib_reads_it():
    text = read_fixture(TOOLKIT_DEFAULT)
    assert parsed_equal(toml_rw.loads(text), tomllib.loads(text))
    assert toml_rw.loads(text)["nvidia-container-runtime"]["modes"]["cdi"]["default-kind"] == "nvidia.com/gpu"


@pytest.mark.parametrize("path,value,line,replaces", TOOLKIT_CHANGES, ids=[".".join(c[0]) for c in TOOLKIT_CHANGES])
def test_set_value_on_the_toolkit_default_changes_exactly_one_key(path, value, line, replaces):
    text = read_fixture(TOOLKIT_DEFAULT)
    new = toml_rw.set_value(text, path, value)
    # Reads back as the original plus exactly the change, with our reader and with tomllib.
    assert tomllib.loads(new) == toml_rw.loads(new) == expected_after(tomllib.loads(text), path, value)
    old_lines, new_lines = text.splitlines(), new.splitlines()
    assert line in new_lines
    if replaces is None:
        # Every line kept, comments (the commented-out default among them) included; one line or one section added.
        remaining = list(new_lines)
        for old in old_lines:
            remaining = remaining[remaining.index(old) + 1:]
        assert len(new_lines) - len(old_lines) in (1, 3)
    else:
        assert [n for o, n in zip(old_lines, new_lines) if o != n] == [line]
        assert len(new_lines) == len(old_lines) and old_lines[new_lines.index(line)] == replaces
    assert toml_rw.set_value(new, path, value) == new  # idempotent


def test_set_value_adds_a_commented_out_key_after_the_tables_last_key_line():
    text = read_fixture(TOOLKIT_DEFAULT)
    new = toml_rw.set_value(text, ("nvidia-container-cli", "no-cgroups"), False)
    assert 'load-kmods = true\nno-cgroups = false\n#no-cgroups = false\n#path = "/usr/bin/nvidia-container-cli"\n' in new
    new = toml_rw.set_value(text, ("nvidia-container-runtime", "debug"), "/tmp/r.log")
    assert '#debug = "/var/log/nvidia-container-runtime.log"\n' in new
    assert 'runtimes = ["runc", "crun"]\ndebug = "/tmp/r.log"\n\n[nvidia-container-runtime.modes]\n' in new


def test_set_value_appends_a_missing_table_and_keeps_the_end_of_the_file():
    text = read_fixture(TOOLKIT_DEFAULT)
    new = toml_rw.set_value(text, ("features", "disable-cuda-compat-lib-hook"), True)
    assert new == text + "\n[features]\ndisable-cuda-compat-lib-hook = true\n"
    assert toml_rw.set_value("a = 1", ("t", "k"), "v") == 'a = 1\n\n[t]\nk = "v"\n'
    assert toml_rw.set_value("", ("t", "k"), "v") == '[t]\nk = "v"\n'
    # A table that exists only through its sub-tables gets its header at the end.
    implicit = "[a.b]\nx = 1\n"
    assert toml_rw.set_value(implicit, ("a", "y"), 2) == "[a.b]\nx = 1\n\n[a]\ny = 2\n"


def test_set_value_keeps_comments_layout_and_line_ends():
    text = (
        '# mine\r\n[nvidia-container-runtime]  # header note\r\n  mode = "legacy"   # why legacy\r\n'
        '  runtimes = [\r\n    "runc",  # first\r\n  ]\r\n# trailing'
    )
    new = toml_rw.set_value(text, ("nvidia-container-runtime", "mode"), "cdi")
    assert new == text.replace('"legacy"', '"cdi"')
    new = toml_rw.set_value(text, ("nvidia-container-runtime", "runtimes"), ["crun"])
    assert new == text.replace('[\r\n    "runc",  # first\r\n  ]', '["crun"]')
    new = toml_rw.set_value(text, ("nvidia-container-runtime", "log-level"), "info")
    assert new == text.replace('  ]\r\n', '  ]\r\n  log-level = "info"\r\n')
    new = toml_rw.set_value(text, ("features", "x"), True)
    assert new == text + "\r\n\r\n[features]\r\nx = true\r\n"
    assert tomllib.loads(new)["nvidia-container-runtime"]["mode"] == "legacy"


def test_set_value_adds_top_level_keys_before_the_first_table():
    text = "#accept-nvidia-visible-devices-as-volume-mounts = false\ndisable-require = false\n\n[t]\nk = 1\n"
    new = toml_rw.set_value(text, ("accept-nvidia-visible-devices-as-volume-mounts",), True)
    assert new == text.replace("disable-require = false\n", "disable-require = false\naccept-nvidia-visible-devices-as-volume-mounts = true\n")
    # No top-level key yet: before the first table and the comments right above it.
    text = "# file header\n\n# the CLI\n[nvidia-container-cli]\nload-kmods = true\n"
    new = toml_rw.set_value(text, ("disable-require",), False)
    assert new == "# file header\n\ndisable-require = false\n\n# the CLI\n[nvidia-container-cli]\nload-kmods = true\n"
    assert toml_rw.set_value("# only a comment", ("a",), 1) == "# only a comment\na = 1\n"


def test_set_value_indents_like_the_tables_keys():
    text = '[plugins]\n  [plugins."io.containerd.grpc.v1.cri"]\n    sandbox_image = "pause"\n'
    new = toml_rw.set_value(text, ("plugins", "io.containerd.grpc.v1.cri", "enable_cdi"), True)
    assert new == text + "    enable_cdi = true\n"


def test_set_value_leaves_an_equal_value_alone_but_tells_true_from_one():
    text = "[t]\nk = true  # kept\nn = 1\n"
    assert toml_rw.set_value(text, ("t", "k"), True) is text
    assert toml_rw.set_value(text, ("t", "n"), True) == "[t]\nk = true  # kept\nn = true\n"
    assert toml_rw.set_value(text, ("t", "n"), 1.0) == "[t]\nk = true  # kept\nn = 1.0\n"


@pytest.mark.parametrize("text,path,message", [
    ('[nvidia-container-runtime]\nmodes.cdi.spec-dirs = ["/etc/cdi"]\n', ("nvidia-container-runtime", "modes", "cdi", "spec-dirs"),
     "nvidia-container-runtime.modes is written as dotted keys (line 2)"),
    ('[nvidia-container-runtime]\nmodes.cdi.spec-dirs = ["/etc/cdi"]\n', ("nvidia-container-runtime", "modes", "cdi", "default-kind"),
     "nvidia-container-runtime.modes is written as dotted keys (line 2)"),
    ('nvidia-container-runtime.mode = "legacy"\n', ("nvidia-container-runtime", "mode"),
     "nvidia-container-runtime is written as dotted keys (line 1)"),
    ("# x\nfeatures = { disable-cuda-compat-lib-hook = false }\n", ("features", "disable-cuda-compat-lib-hook"),
     "features is written as an inline table (line 2)"),
    ("features = { a = true }\n", ("features", "b"), "features is written as an inline table (line 1)"),
    ("[[features]]\na = 1\n", ("features", "a"), "features is an array of tables (line 1), not a table"),
    ("features = 1\n", ("features", "a"), "features is an integer (line 1), not a table"),
    ("[t]\nk = [{ a = 1 }]\n", ("t", "k", "a"), "t.k is an array (line 2), not a table"),
    ("[t.k]\na = 1\n", ("t", "k"), "t.k is a table"),
])
def test_set_value_refuses_what_it_cannot_edit_in_place(text, path, message):
    with pytest.raises(toml_rw.EditError) as exc:
        toml_rw.set_value(text, path, "x")
    assert message in str(exc.value)


def test_set_value_refuses_invalid_text_and_values():
    with pytest.raises(toml_rw.TomlError, match="line 2"):
        toml_rw.set_value("[t]\nk = \n", ("t", "k"), 1)
    with pytest.raises(toml_rw.EditError, match="cannot write object"):
        toml_rw.set_value("", ("k",), object())
    with pytest.raises(toml_rw.EditError, match="non-empty"):
        toml_rw.set_value("", (), 1)


def test_spans_locate_keys_and_tables_at_every_level():
    text = 'top = 1\n[a]\n  x = "v"  # c\n  d.e = 2\n[a.b]\n[[arr]]\nn = 1\n[arr.sub]\nm = 2\n'
    doc = toml_rw.parse(text)
    assert set(doc.key_spans) == {("top",), ("a", "x")}
    span = doc.key_spans[("a", "x")]
    assert text[span.start:span.end] == '  x = "v"  # c\n' and text[span.value_start:span.value_end] == '"v"'
    assert set(doc.tables) == {(), ("a",), ("a", "b")}
    a = doc.tables[("a",)]
    assert text[a.start:a.header_end] == "[a]\n" and text[a.last_key:a.body_end] == "  d.e = 2\n"
    assert doc.tables[("a", "b")].body_end == doc.tables[("a", "b")].header_end
    assert doc.forms[("a", "d")][0] == "dotted keys" and doc.forms[("arr",)][0] == "an array of tables"
    assert doc.key_line(("a", "x")) == 3 and doc.key_line(("a", "d", "e")) == 4 and doc.key_line(("nope",)) is None


def test_lookup_reads_documents_and_plain_data():
    doc = toml_rw.parse("[a]\nx = 1\n[a.t]\n")
    assert toml_rw.lookup(doc, ("a", "x")) == (True, 1) and toml_rw.lookup(doc, ("a", "y")) == (False, None)
    assert toml_rw.lookup(doc.data, ("a", "t")) == (True, {}) and doc.key_line(("a", "t")) == 3
    with pytest.raises(toml_rw.EditError, match=r"^a\.x is an integer, not a table, so it has no key y$"):
        toml_rw.lookup(doc.data, ("a", "x", "y"))
