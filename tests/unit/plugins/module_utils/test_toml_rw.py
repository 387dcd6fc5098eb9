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
