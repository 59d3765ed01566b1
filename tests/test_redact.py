"""The redaction corpus, called directly: every secret shape hidden with its key name and host
kept, every look-alike left as it is, and random secrets in each structural form never shown.

The outputs themselves (log lines, reports, pages, the health file) are in
``test_redact_outputs.py``; they all call the ``redact_text``/``redact_obj`` tested here.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import string
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from safehandler import _redact
from safehandler._redact import MASK, is_secret_name, redact_obj, redact_text, secret_name

from .redact_corpus import LOOK_ALIKES, PW, SECRETS


def test_the_corpus_is_as_large_as_promised() -> None:
    assert len({text for text, _, _ in SECRETS}) >= 40
    assert len(set(LOOK_ALIKES)) >= 20


@pytest.mark.parametrize(("text", "secret", "kept"), SECRETS, ids=[s[0][:40] for s in SECRETS])
def test_a_secret_is_hidden_and_its_key_name_and_host_kept(
    text: str, secret: str, kept: list[str]
) -> None:
    out = redact_text(text)
    assert secret not in out
    assert MASK in out
    for piece in kept:
        assert piece in out, (piece, out)
    assert redact_text(out) == out  # redacting twice changes nothing


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_a_look_alike_stays_readable(text: str) -> None:
    assert redact_text(text) == text


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "password", "DB_PASSWORD", "PGPASSWORD", "MYSQL_PWD", "dbPassword", "db-password",
        "secret_key", "aws_secret_access_key", "client_secret", "clientSecret", "api_key",
        "apikey", "X-Api-Key", "access_token", "Authorization", "auth", "credential",
        "app.secret_key", "secret_string", "private_key", "STRIPE_SECRET",
    ],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert secret_name(name)
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "primary_key", "PrimaryKey", "sort_key", "key", "keys", "keyboard", "keyspace",
        "token_count", "max_tokens", "next_token", "NextToken", "token_type", "secret_name",
        "password_file", "passwd_file_path", "password_length", "author", "authority",
        "monkey", "passenger", "bypass", "compass", "passport", "tokenizer", "session_count",
        "pass_through", "cache_key_prefix", "password.txt",
    ],
)  # fmt: skip
def test_names_that_only_look_secret(name: str) -> None:
    assert not secret_name(name)
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["_token_cache", "API_KEY_BY_TENANT", "DB_PASSWORD_CACHE", "jwt_cache", "secretNotes"]
)
def test_a_global_whose_name_holds_a_secret_word_is_masked_whole(name: str) -> None:
    # a value shown by name, not by shape: the word anywhere in the name marks it
    assert is_secret_name(name)


def test_a_tree_keeps_its_shape_and_masks_secret_named_scalars() -> None:
    tree = {"db": {"password": 12345, "host": "db", "port": 3306}, "url": f"mysql://a:{PW}@h/d"}
    assert redact_obj(tree) == {
        "db": {"password": MASK, "host": "db", "port": 3306},
        "url": "mysql://a:***@h/d",
    }


# -- the fuzz side: random secrets in each structural form --------------------------------

_WORDY = string.ascii_letters + string.digits


# what a password may hold where nothing quotes it: all but space, quotes, backslash and the
# separators of its form (, ; &)
def _unlike_the_text_around(secret: str) -> bool:
    """Four letters or digits, one of them a digit: no key name or host the forms keep
    ("password", "db.example.com") is such a secret."""
    return sum(c.isalnum() for c in secret) >= 4 and any(c.isdigit() for c in secret)


_UNQUOTED = st.text(alphabet=_WORDY + "!#$%()*+-./:<=>?@[]^_`{|}~", min_size=8, max_size=40).filter(
    _unlike_the_text_around
)
_ANY = st.text(min_size=8, max_size=40).filter(_unlike_the_text_around)
_IN_URL = st.text(alphabet=_WORDY + "!$%*+-._~@:/#?=&", min_size=8, max_size=40).filter(
    _unlike_the_text_around
)
_TOKEN = st.text(alphabet=_WORDY + "-._~+/", min_size=12, max_size=60).filter(
    _unlike_the_text_around  # (not "Authorizatio": a token holds a digit, as real ones do)
)
_KEY_NAMES = st.sampled_from(
    ["db_password", "DB_PASSWORD", "PGPASSWORD", "MYSQL_PWD", "secret_key", "client_secret",
     "api_key", "apikey", "access_token", "dbPassword", "x-api-key", "aws_secret_access_key"]
)  # fmt: skip


def _hidden(out: str, secret: str, *kept: str) -> None:
    assert secret not in out, out
    for piece in kept:
        assert piece in out, (piece, out)


def _masked_unquoted(secret: str) -> str:
    """What an unquoted secret becomes: *** (in its brackets, when it is one bracketed
    value), closing brackets after it kept."""
    if re.fullmatch(r"\{[^{}]*\}|\[[^\[\]]*\]", secret):
        return secret[0] + MASK + secret[-1]
    return MASK + secret[len(secret.rstrip(")]}>`")) :]


def _masked_word(secret: str) -> str:
    """What a secret word of a command line becomes: closing brackets after it are kept."""
    return MASK + secret[len(secret.rstrip(")]}>`,")) :]


@given(name=_KEY_NAMES, secret=_UNQUOTED, sep=st.sampled_from(["=", ": ", " = ", "=>"]))
@example(name="db_password", secret="ab)cd)ef", sep="=")
@example(name="db_password", secret="{abcd}efgh", sep="=")
def test_unquoted_key_value(name: str, secret: str, sep: str) -> None:
    out = redact_text(f"app {name}{sep}{secret}, host=db.example.com")
    _hidden(out, secret, name, "host=db")
    if secret.startswith(">") and sep == "=":
        return  # db_password=>x reads as the separator =>; x alone is the value
    # exactly the value is hidden: no character of it is left beside the mask
    assert out == f"app {name}{sep}{_masked_unquoted(secret)}, host=db.example.com"


@given(name=_KEY_NAMES, secret=_ANY, quote=st.sampled_from(["'", '"']))
def test_quoted_key_value(name: str, secret: str, quote: str) -> None:
    secret = secret.replace(quote, "").replace("\\", "") + "Zz9"
    out = redact_text(f"{name}={quote}{secret}{quote} port=3306")
    _hidden(out, secret, name, "port=3306")
    assert out == f"{name}={quote}***{quote} port=3306"


@given(name=_KEY_NAMES, secret=_ANY)
def test_json(name: str, secret: str) -> None:
    text = json.dumps({name: secret, "host": "db.example.com"})
    out = redact_text(text)
    _hidden(out, json.dumps(secret)[1:-1], name, '"host": "db.example.com"')
    assert json.loads(out) in (
        {name: MASK, "host": "db.example.com"},
        {name: "{***}", "host": "db.example.com"},
        {name: "[***]", "host": "db.example.com"},
    )


@given(name=_KEY_NAMES, secret=_ANY)
def test_dict_repr(name: str, secret: str) -> None:
    text = repr({name: secret, "port": 3306})
    out = redact_text(text)
    _hidden(out, repr(secret)[1:-1], name, "'port': 3306")
    assert ast.literal_eval(out) in ({name: m, "port": 3306} for m in (MASK, "{***}", "[***]"))


@given(secret=_IN_URL, scheme=st.sampled_from(["mysql", "postgresql", "mysql+pymysql", "redis"]))
@example(secret="ab@cd/ef", scheme="mysql")
def test_url_userinfo(secret: str, scheme: str) -> None:
    out = redact_text(f"{scheme}://app:{secret}@db.example.com:3306/orders")
    _hidden(out, secret, f"{scheme}://app:", "@db.example.com:3306/orders")
    assert out == f"{scheme}://app:***@db.example.com:3306/orders"


# what reads as a user name (lower case, up to three digits at the end) is kept by design:
# ssh://git@host, https://deploy01@host
_USER_NAME = re.compile(r"[a-z][a-z._\-]{0,30}[0-9]{0,3}")


@given(token=_TOKEN.filter(lambda t: "/" not in t and not _USER_NAME.fullmatch(t)))
def test_url_token(token: str) -> None:
    _hidden(redact_text(f"https://{token}@github.com/org/repo"), token, "@github.com/org/repo")


@given(token=_TOKEN, scheme=st.sampled_from(["Bearer", "Token", "bearer"]))
def test_authorization_header(token: str, scheme: str) -> None:
    _hidden(redact_text(f"Authorization: {scheme} {token}"), token, f"Authorization: {scheme} ")


@given(user=st.text(_WORDY, min_size=1, max_size=12), password=_ANY)
def test_basic_credentials(user: str, password: str) -> None:
    value = base64.b64encode(f"{user}:{password}".encode()).decode()
    _hidden(redact_text(f"Authorization: Basic {value}"), value, "Authorization: Basic ")


@given(secret=_UNQUOTED.filter(lambda s: not s.startswith("-")))
def test_password_option(secret: str) -> None:
    masked = _masked_word(secret)
    assert redact_text(f"mysql --password {secret} -h db") == f"mysql --password {masked} -h db"
    if not secret.startswith(">"):  # (=> is a separator)
        assert redact_text(f"mysql --password={secret} -h db") == f"mysql --password={masked} -h db"
    argv = repr(["mysql", "--password", secret, "-h", "db"])
    _hidden(redact_text(argv), repr(secret)[1:-1], "'--password', ", "'-h', 'db'")


@given(secret=st.text(_WORDY + "!#$%*+-./:=?@^_|~", min_size=8, max_size=40))
def test_mysql_p(secret: str) -> None:
    out = redact_text(f"mysql -u app -p{secret} -h db.example.com orders")
    assert out == "mysql -u app -p*** -h db.example.com orders"


@given(secret=st.text(_WORDY + "!#$%*+-./:=?@^_|~()", min_size=8, max_size=40))
def test_odbc(secret: str) -> None:
    text = f"Server=db.example.com;UID=app;PWD={secret};Database=orders"
    masked = _masked_unquoted(secret)
    assert redact_text(text) == f"Server=db.example.com;UID=app;PWD={masked};Database=orders"
    braced = f"Server=db;PWD={{{secret.replace('}', '')}Zz9}};Database=orders"
    _hidden(redact_text(braced), secret.replace("}", "") + "Zz9", "Database=orders")


@given(secret=st.text(_WORDY + "-._~%+/", min_size=8, max_size=40))
def test_query_string(secret: str) -> None:
    text = f"https://api.example.com/v1?user=app&access_token={secret}&page=2"
    assert redact_text(text) == "https://api.example.com/v1?user=app&access_token=***&page=2"


@given(
    key_id=st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16),
    secret=st.text(_WORDY + "/+", min_size=40, max_size=40),
    prefix=st.sampled_from(["AKIA", "ASIA"]),
)
def test_aws_keys(key_id: str, secret: str, prefix: str) -> None:
    out = redact_text(f"credentials {prefix}{key_id} {secret} for orders")
    _hidden(out, key_id, f"credentials {prefix}", " for orders")
    assert secret not in out


@given(parts=st.lists(st.text(_WORDY + "-_", min_size=8, max_size=40), min_size=3, max_size=3))
def test_jwt(parts: list[str]) -> None:
    token = "eyJ" + parts[0] + ".eyJ" + parts[1] + "." + parts[2]
    _hidden(redact_text(f"token={token}"), token, "token=")
    _hidden(redact_text(f"sent {token} to the api"), token, "sent ", " to the api")


@given(body=st.text(_WORDY + "+/=\n", min_size=20, max_size=200))
def test_private_key_block(body: str) -> None:
    block = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"
    _hidden(redact_text(f"key={block!r}"), repr(body)[1:-1], "-----BEGIN PRIVATE KEY-----")
    _hidden(redact_text(f"loaded {block} ok"), body, "-----BEGIN PRIVATE KEY-----", " ok")


@given(
    prefix=st.sampled_from(["ghp_", "gho_", "ghs_", "xoxb-", "xoxp-", "glpat-"]),
    rest=st.text(_WORDY, min_size=36, max_size=40),
)
def test_vendor_tokens(prefix: str, rest: str) -> None:
    _hidden(redact_text(f"using {prefix}{rest} now"), rest, f"using {prefix}", " now")


# -- the user's own patterns --------------------------------------------------------------


def test_a_user_pattern_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEHANDLER_REDACT", r"acct-\d{6},tenant=(\w+)")
    assert redact_text("acct-123456 of tenant=acme") == "*** of tenant=***"
    monkeypatch.delenv("SAFEHANDLER_REDACT")
    assert redact_text("acct-123456 of tenant=acme") == "acct-123456 of tenant=acme"


def test_a_bad_user_pattern_in_the_environment_leaves_the_good_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the policy refuses the variable (ConfigError); the boundary itself never fails on it
    monkeypatch.setenv("SAFEHANDLER_REDACT", "acct-[0-9]+,(")
    assert redact_text(f"acct-42 password={PW}") == "*** password=***"


def test_patterns_registered_by_a_policy_apply_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_redact, "_registered", frozenset())
    _redact.use_patterns({r"internal-\w+"})
    assert redact_text("host internal-db7 up") == "host *** up"
    with pytest.raises(re.error):
        _redact.use_patterns({"("})


# -- the README shows real output -----------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_rows() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Secrets never appear")
    section = text[start : text.index("\n## ", start + 1)]
    return re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", section, re.M)


def test_the_readmes_examples_are_what_redaction_gives() -> None:
    rows = _readme_rows()
    assert len(rows) >= 10
    for before, after in rows:
        assert redact_text(before) == after


# -- cold start ---------------------------------------------------------------------------


def test_nothing_is_compiled_until_something_is_told(tmp_path: Path) -> None:
    # import safehandler is paid on every cold start; the regexes only when a line goes out
    code = textwrap.dedent(
        """
        import logging
        import safehandler
        from safehandler import _redact

        def compiled():
            return _redact._BUILTIN.cache_info().currsize + _redact._WORDS.cache_info().currsize

        clean = safehandler.guard(lambda event, context: 1, mode="report")
        clean({}, None)
        print(compiled())
        _redact.redact_text("password=x")
        print(compiled())
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("SAFEHANDLER_REDACT", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == ["0", "2"]
