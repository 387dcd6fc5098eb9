"""module_utils/secret_mask.py: the key rule, every value form, and what a mask says (issue 16)."""

import difflib

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import secret_mask as sm
from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw

REGISTRY_AUTH = '[plugins."io.containerd.grpc.v1.cri".registry.configs."reg.example.com".auth]\n'


def masked(text):
    """A text masked on its own (as the after side of a diff from no file)."""
    return sm.mask_diff(None, text)[1]


def changed_lines(before, after):
    return [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]


# ---- which keys ----


@pytest.mark.parametrize("name", [
    "auth", "Auth", "AUTHORIZATION", "password", "Password", "db_password", "passwd", "token", "identitytoken",
    "registrytoken", "IdentityToken", "secret", "client_secret", "credential", "credentials", "apikey", "api_key",
    "api-key", "API_KEY", "private_key", "privatekey",
])
def test_secret_keys(name):
    assert sm.is_secret_key(name)


@pytest.mark.parametrize("name", ["username", "user", "auths", "author", "oauth_url", "config_path", "key_file", "cert_file",
                                  "insecure_skip_verify", "endpoint", "BinaryName", "", None, 1])
def test_other_keys(name):
    assert not sm.is_secret_key(name)


# ---- each value form ----


@pytest.mark.parametrize("line,secret", [
    ('password = "s3cret"', "s3cret"),
    ('password = "s3 \\"cr\\\\et\\" # not a comment"', "cr"),
    ("password = 'lit\\eral s3cret'", "lit\\eral"),
    ('password = ""', None),
    ("password = 12345", "12345"),
    ("password = true", "true"),
    ("password = 1.5e3", "1.5e3"),
    ('auth = "Ym9iOnMzY3JldA=="', "Ym9iOnMzY3JldA"),
    ('Authorization = ["Basic eHl6", "Bearer abc"]', "eHl6"),
    ('"password" = "quoted-key"', "quoted-key"),
    ("'identitytoken' = 'literal-key'", "literal-key"),
    ('configs."reg".auth.password = "dotted"', "dotted"),
    ('x = { username = "kept", password = "inline" }', "inline"),
    ('x = { auth = { username = "kept", password = "nested" } }', "nested"),
    ('x = [{ token = "in-array" }, { token = "second" }]', "in-array"),
])
def test_value_forms_are_masked(line, secret):
    out = masked(line + "\n")
    assert out.count("\n") == 1
    if secret:
        assert secret not in out
    assert sm.ADDED in out
    assert toml_rw.loads(out) is not None  # still TOML


def test_inline_table_keeps_username_and_masks_password():
    out = masked('auth = { username = "bob", password = "p" }\n')
    assert out == 'auth = { username = "bob", password = "<masked, added>" }\n'


def test_multi_line_strings_and_arrays_become_one_string():
    text = (
        'identitytoken = """\nfirst line\nsecond "" line"""\n'
        "password = '''\nliteral\n'''\n"
        'Authorization = [\n  "Basic eHl6",  # old one: "Basic b2xk"\n  "Bearer abc",\n]\n'
        'after = "kept"\n'
    )
    out = masked(text)
    assert out == ('identitytoken = "<masked, added>"\npassword = "<masked, added>"\nAuthorization = "<masked, added>"\n'
                   'after = "kept"\n')
    assert toml_rw.loads(out)["after"] == "kept"


def test_comments_are_masked_to_the_end_of_their_line():
    text = (
        '# password = "old"\n'
        '#identitytoken="older"\n'
        'username = "bob"  # token: tok-in-comment, see the wiki\n'
        "# plain words stay, and so does username = bob\n"
    )
    out = masked(text)
    assert out == (
        '# password = "<masked, added>"\n'
        '#identitytoken="<masked, added>"\n'
        'username = "bob"  # token: "<masked, added>"\n'
        "# plain words stay, and so does username = bob\n"
    )


def test_table_headers_are_not_values():
    text = REGISTRY_AUTH + '  username = "bob"\n[[x.auth]]\n[ token ]\nn = 1\n'
    assert masked(text) == text


def test_unchanged_changed_added_removed():
    before = REGISTRY_AUTH + '  username = "bob"\n  password = "same"\n  auth = "old"\n  identitytoken = "gone"\n'
    after = REGISTRY_AUTH + '  username = "bob"\n  password = "same"\n  auth = "new"\n  registrytoken = "fresh"\n'
    mb, ma, count = sm.mask_diff(before, after)
    assert mb == REGISTRY_AUTH + (
        '  username = "bob"\n  password = "<masked, unchanged>"\n  auth = "<masked, changed: old>"\n'
        '  identitytoken = "<masked, removed>"\n')
    assert ma == REGISTRY_AUTH + (
        '  username = "bob"\n  password = "<masked, unchanged>"\n  auth = "<masked, changed: new>"\n'
        '  registrytoken = "<masked, added>"\n')
    assert count == 6
    # difflib shows exactly the lines whose value changed, appeared or went.
    assert sorted(changed_lines(mb, ma)) == [
        '+   auth = "<masked, changed: new>"', '+   registrytoken = "<masked, added>"',
        '-   auth = "<masked, changed: old>"', '-   identitytoken = "<masked, removed>"',
    ]


def test_the_same_key_is_the_same_table_path_and_place():
    before = '[a]\npassword = "one"\n[b]\npassword = "two"\n[[c]]\ntoken = "x"\n[[c]]\ntoken = "y"\n'
    # The same values under other headers, or in another order of the array of tables, are changes.
    after = '[ a ]\npassword = "one"\n[b]\npassword = "one"\n[[c]]\ntoken = "y"\n[[c]]\ntoken = "y"\n'
    mb, ma, _count = sm.mask_diff(before, after)
    assert [line for line in mb.splitlines() if "=" in line] == [
        'password = "<masked, unchanged>"', 'password = "<masked, changed: old>"',
        'token = "<masked, changed: old>"', 'token = "<masked, unchanged>"']
    assert [line for line in ma.splitlines() if "=" in line] == [
        'password = "<masked, unchanged>"', 'password = "<masked, changed: new>"',
        'token = "<masked, changed: new>"', 'token = "<masked, unchanged>"']


def test_a_key_written_as_a_table_or_as_dotted_keys_is_the_same_key():
    before = REGISTRY_AUTH + '  password = "p"\n'
    after = '[plugins."io.containerd.grpc.v1.cri".registry]\n  configs."reg.example.com".auth.password = "p"\n'
    mb, ma, _count = sm.mask_diff(before, after)
    assert sm.UNCHANGED in mb and sm.UNCHANGED in ma


def test_the_drop_in_record_of_a_taken_over_file_is_masked():
    """The record line of containerd_runtime's drop-in holds the earlier drop-in's text as JSON."""
    earlier = REGISTRY_AUTH + '  username = "bob"\n  auth = "YWJj ZGVm=="\n  password = "p w d"\n'
    record = '# gpunode.nvidia.containerd_runtime {"taken_over": {"text": %s}}\n' % toml_rw.format_string(earlier)
    out = masked(record + "version = 2\n")
    assert "YWJj" not in out and "ZGVm" not in out and "p w d" not in out and "w d" not in out
    assert 'username = \\"bob\\"' in out


def test_windows_line_ends_and_missing_texts():
    mb, ma, count = sm.mask_diff('password = "a"\r\nx = 1\r\n', None)
    assert (mb, ma, count) == ('password = "<masked, removed>"\r\nx = 1\r\n', None, 1)
    assert sm.mask_diff("", "") == ("", "", 0)
    assert sm.mask_diff("x = 1\n", "x = 2\n") == ("x = 1\n", "x = 2\n", 0)


@pytest.mark.parametrize("text", [
    'password = "unterminated\nnext = 1\n',
    'password = """never closed\nsecret-rest\n',
    "password = [\"a\",\n\"secret-rest\"\n",
    "x = { password = \"secret-rest\", broken\n",
    "this is not toml, password = secret-rest\n",
    "[broken header\ntoken = \"secret-rest\"\n",
])
def test_text_that_is_not_toml_is_masked_too(text):
    out = masked(text)
    assert "secret-rest" not in out and "never closed" not in out and "unterminated" not in out


# ---- the invariant: nothing of a secret is in the output ----

SECRETS = ["s3cr3t-%d" % i for i in range(12)]
CORPUS_BEFORE = """\
version = 2
# password = "{0}"
[plugins."io.containerd.grpc.v1.cri".registry.configs."a.example".auth]
  username = "bob"
  password = "{1}"
  auth = '{2}'
  identitytoken = \"\"\"
{3}\"\"\"
[plugins."io.containerd.grpc.v1.cri".registry.headers]
  Authorization = [
    "Basic {4}",  # {5}
  ]
[x]
inline = {{ user = "u", api_key = "{6}", nested = {{ private_key = '''{7}''' }} }}
client_secret = "{8}"  # note: token = {9}
"""
CORPUS_AFTER = CORPUS_BEFORE.replace("{1}", "{10}").replace("{8}", "{11}")


def test_no_secret_of_the_input_is_in_the_output():
    before = CORPUS_BEFORE.format(*SECRETS)
    after = CORPUS_AFTER.format(*SECRETS)
    assert toml_rw.loads(before) and toml_rw.loads(after)
    mb, ma, count = sm.mask_diff(before, after)
    for secret in SECRETS:
        assert secret not in mb and secret not in ma
    assert "s3cr3t" not in mb + ma
    assert count == 2 * 9  # the comment inside Authorization's array goes with the array
    assert 'username = "bob"' in mb and 'user = "u"' in ma
    assert toml_rw.loads(ma)["x"]["inline"]["user"] == "u"


def test_nothing_is_derived_from_the_secret():
    """Masks are the same whatever the secret: no hash, length or prefix."""
    short = sm.mask_diff('password = "a"\n', 'password = "b"\n')
    long = sm.mask_diff('password = "%s"\n' % ("x" * 64), 'password = "%s"\n' % ("Basic " + "y" * 99))
    assert short == long


# ---- data and free text ----


def test_mask_data():
    data = {"auth": {"username": "bob", "password": "p", "auth": "a"}, "headers": {"Authorization": ["Basic x"]},
            "runtimes": [{"token": 1}], "BinaryName": "/usr/bin/x"}
    assert sm.mask_data(data) == {
        "auth": {"username": "bob", "password": sm.MASKED, "auth": sm.MASKED},
        "headers": {"Authorization": sm.MASKED}, "runtimes": [{"token": sm.MASKED}], "BinaryName": "/usr/bin/x"}
    assert data["auth"]["password"] == "p"  # a copy
    assert sm.mask_data(None) is None


def test_mask_text():
    text = 'failed: password = "p w"; more\nline two: token: abc def\nclean = "x"\n'
    assert sm.mask_text(text) == 'failed: password = <masked>\nline two: token: <masked>\nclean = "x"\n'
    assert sm.mask_text("") == "" and sm.mask_text(None) is None


# ---- toml_rw's errors quote no secret ----


@pytest.mark.parametrize("text", [
    "password = hunter2canary\n",
    "[r]\ntoken = 0123456\n",
    'x = { auth = "canary\\q" }\n',
    'password = "canary\\ud800"\n',
    'secret = ["canary\x01"]\n',
])
def test_toml_errors_do_not_quote_a_secret(text):
    with pytest.raises(toml_rw.TomlError) as exc:
        toml_rw.loads(text)
    message = str(exc.value)
    assert "holds a secret" in message and "line" in message
    for piece in ("hunter2", "canary", "0123456", "ud800", "\\x01", "\\q"):
        assert piece not in message


def test_toml_errors_still_quote_other_values():
    with pytest.raises(toml_rw.TomlError, match="invalid value 'registry/pause'"):
        toml_rw.loads("sandbox_image = registry/pause\n")
    with pytest.raises(toml_rw.TomlError, match=r"unknown escape \\q"):
        toml_rw.loads('a = "\\q"\n')
