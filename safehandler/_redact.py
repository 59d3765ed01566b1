"""The one redaction boundary: every string safehandler writes out passes through here.

What is recognised (the README's "Secrets never appear" section lists it for users; a test
keeps its examples true):

- **Key names**, case-insensitive, camelCase and ``-``/``.`` split into words, in ``k=v``,
  ``k: v``, JSON, dict repr, query strings, ODBC ``Key=Value;``, ``--name=v`` and env-var forms.
  A name is a secret when its last word is a secret word (``password``, ``passwd``, ``pwd``,
  ``pass``, ``secret``, ``token``, ``auth``, ``authorization``, ``credential(s)``, ``apikey``,
  ``signature``, ``sig``, ``cookie``, ``session``, ``jwt``, or a word ending in ``password``,
  ``secret`` or ``token``: ``PGPASSWORD``), or is ``*_key`` (not after ``primary``, ``sort``,
  ``partition``, ``cache``, ``public``... see ``NOT_SECRET_KEYS``; ``key`` alone is no
  secret), or begins with ``password``/``secret``/``token``/... and does not end in a word
  that describes the secret rather than holds it (``secret_name``, ``password_file``,
  ``token_type`` stay; ``secret_string`` goes). ``next_token`` and its pagination kin stay.
- **Structure**: URL userinfo (``mysql://u:***@host``, the password up to the last ``@`` a host
  follows, so it may hold ``@``, ``:`` and ``/``; ``https://***@host`` for a bare token),
  ``Authorization`` schemes (``Bearer ***``), ``--password <pw>`` in command lines and argv
  lists, ``-p<pw>`` beside a MySQL client, ``sshpass -p <pw>``, ``Cookie:`` headers, PEM
  private-key blocks.
- **Shape**: AWS access key ids and secret keys (after an id, or alone: 40 base64 characters
  of all three kinds), JWTs, GitHub, GitLab, Slack, Stripe, Google, OpenAI, npm, SendGrid and
  Vault tokens, Slack webhook URLs.
- **The user's own** regular expressions (``redact_patterns``, ``SAFEHANDLER_REDACT``).

Only the secret becomes ``***``; key names, users, hosts, ports and database names stay.

Where it is applied, and why there. At every sink, where a string leaves the library:
``report.log_event`` (the message and every structured field), the EMF lines of the fleet
view, the health state file, ``SoakReport`` text and JSON, the HTML report, the pytest
plugin's failure text and summary, the CLI's output and safehandler's own warnings
(``tests/test_redact_outputs.py`` drives a real secret to each). A sink redacts whole
strings, so a detail a new probe adds cannot bypass it. Once more where findings leave the
engine (``Engine._after``):
``LeakError`` builds its message from findings but ``errors`` imports nothing, and the guard
that raises it sits above this part; so the engine hands out findings already redacted, and
everything downstream (the error, soak observers, ``Engine.findings``) holds only those, their
creation sites included (a path is text too). Probes redact where they cut a value to length
(``probes._describe``, a child's command line), since a cut made first could part a secret from
the key that marks it, or leave a token's head that no longer reads as one. Redacting twice
changes nothing.

The regexes are compiled at the first redaction, not at import: ``import safehandler`` is paid
on every cold start, and compiling them all costs about 4 ms.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping

from ._constants import REDACT

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    import re
    from typing import Any

    from ._records import Finding, Site

__all__ = [
    "MASK",
    "compile_patterns",
    "is_secret_name",
    "redact",
    "redact_finding",
    "redact_obj",
    "redact_text",
    "secret_name",
    "split_patterns",
    "use_patterns",
]

MASK = "***"


def _lazy(source: str, flags: int = 0) -> Callable[[], re.Pattern[str]]:
    """A regex compiled at its first use: ``import safehandler`` is paid on every cold start,
    the first redaction only when something is told (compiling all of them costs ~4 ms)."""

    def compiled() -> re.Pattern[str]:
        import re  # 3 ms of cold start: loaded with the first regex

        return re.compile(source, flags)

    return functools.cache(compiled)


# -- names ------------------------------------------------------------------------------

# a name whose last word is one of these holds a secret
SECRET_WORDS = frozenset(
    {
        "password", "passwd", "passphrase", "passcode", "pwd", "pass", "secret", "token",
        "auth", "authorization", "credential", "credentials", "apikey", "secretkey",
        "accesskey", "privatekey", "accountkey", "signature", "sig", "cookie", "session",
        "jwt", "sessionid",
    }
)  # fmt: skip
SECRET_ENDINGS = ("password", "passwd", "secret", "token", "apikey")  # PGPASSWORD, clientsecret
# a *_key that is a structural key, not a secret (primary_key, sort_key, public_key)
NOT_SECRET_KEYS = frozenset(
    {
        "primary", "foreign", "sort", "partition", "hash", "range", "cache", "idempotency",
        "dedup", "deduplication", "object", "s3", "bucket", "routing", "public", "composite",
        "unique", "natural", "surrogate", "lookup", "index", "dict", "map", "row", "column",
        "sequence", "shard", "lock", "group", "ordering", "message", "event", "record", "item",
        "table", "cursor", "evaluated", "start", "sharding", "kms", "idempotent",
    }
)  # fmt: skip
# a *_token that is a pagination marker, not a credential (NextToken)
NOT_SECRET_TOKENS = frozenset({"next", "page", "pagination", "continuation", "sync", "cancel"})
# a name that begins with one of these holds a secret (secret_string, password_value)...
SECRET_PREFIXES = frozenset({"password", "passwd", "pwd", "secret", "token", "credential"})
# ...unless its last word describes the secret instead (secret_name, password_file)
DESCRIBING = frozenset(
    {
        "name", "names", "arn", "id", "ids", "type", "file", "path", "dir", "url", "uri",
        "endpoint", "length", "len", "count", "size", "policy", "version", "ttl", "expiry",
        "expires", "expiration", "rotation", "enabled", "required", "min", "max", "format",
        "source", "provider", "header", "field", "param", "env", "var", "region", "kind",
        "mode", "store", "manager", "ref", "user", "username", "timeout", "at", "prefix",
        "label", "key", "hint", "reset", "changed", "updated", "created", "age", "strength",
    }
)  # fmt: skip
_CAMEL = _lazy(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORDS = _lazy(r"[a-z]+[0-9]*|[0-9]+")


def _name_words(name: str) -> list[str]:
    """``dbPassword``, ``DB_PASSWORD``, ``db-password`` -> ``["db", "password"]``."""
    text = _CAMEL().sub("_", name).lower()
    return [w.rstrip("0123456789") or w for w in _WORDS().findall(text)]


@functools.lru_cache(maxsize=1024)
def secret_name(name: str) -> bool:
    """Whether a key, variable, option or header of this name holds a secret."""
    proper = name.strip("-\"' ").rsplit(".", 1)[-1]  # app.secret_key; password.txt is a file
    words = _name_words(proper)
    if not words:
        return False
    last = words[-1]
    before = words[-2] if len(words) > 1 else ""
    if last == "key":
        return bool(before) and before not in NOT_SECRET_KEYS
    if last == "token" and before in NOT_SECRET_TOKENS:
        return False
    if last in SECRET_WORDS or last.endswith(SECRET_ENDINGS):
        return last not in ("nexttoken", "pagetoken")
    return last not in DESCRIBING and any(word in SECRET_PREFIXES for word in words[:-1])


# a word that marks a secret anywhere in a global's name (_token_cache), not only at its end;
# "pass", "sig" and "session" are too often something else there (pass_through, session_factory)
_HOLDING_WORDS = SECRET_WORDS - {"pass", "sig", "session"}


@functools.lru_cache(maxsize=1024)
def is_secret_name(name: str) -> bool:
    """Whether a variable or attribute of this name is masked whole in a global's detail: the
    corpus's secret names, and a name with a secret word among its words (``_token_cache``,
    ``API_KEY_BY_TENANT``) unless its last word describes rather than holds (``token_count``,
    ``passwd_file_path``). Words, not substrings: ``primary_key``, ``keyboard``, ``author``
    and ``monkey`` stay readable."""
    if secret_name(name):
        return True
    words = _name_words(name.rsplit(".", 1)[-1])
    if not words or words[-1] in DESCRIBING:
        return False
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        if word == "key":
            if before and before not in NOT_SECRET_KEYS:
                return True
        elif word == "token":
            if before not in NOT_SECRET_TOKENS:
                return True
        elif word in _HOLDING_WORDS or word.endswith(SECRET_ENDINGS):
            return True
    return False


# -- the built-in pass ------------------------------------------------------------------

# an unquoted value ends at whitespace, ",", ";", "&" or a quote; brackets inside it belong to
# it (a password "p(a]ss"), closing ones at its end do not ("Config(password=x)", "`pw=x`")
_END = r"(?=[)\]}>`]*(?:[\s&;,'\"]|\Z))"
_UNQUOTED = r"[^\s&;,'\"]+?" + _END
# a command line's word ends at whitespace or a quote; closers at its end are not part of it
_WORD_END = r"(?=[)\]}>`,]*(?:[\s'\"]|\Z))"
_VALUE = (
    r"\\\"(?:(?!\\\").)*\\\""  # \"escaped JSON\"
    r"|b?\"(?:[^\"\\]|\\.)*\""
    r"|b?'(?:[^'\\]|\\.)*'"
    # ODBC {braced}, a flat dict, a flat list; where more follows ({a}b), an unquoted value
    r"|\{[^{}]*\}" + _END + r"|\[[^\[\]]*\]" + _END + ""
    r"|(?i:digest|aws4-hmac-sha256)\s+[^\r\n]+"  # k="v", k="v": the rest of the line
    r"|(?i:bearer|basic|token|bot|negotiate|apikey)\s+" + _UNQUOTED + ""
    r"|" + _UNQUOTED
)
_SCHEME = _lazy(
    r"(?i)(?P<scheme>(?:bearer|basic|token|digest|bot|negotiate|apikey|aws4-hmac-sha256)\s+)"
)
# a bare AWS secret access key: 40 of base64's characters, all three kinds among them (a hex
# digest has no capitals; base64 of a SHA-256 is 44 long). A pass of its own, with no trigger
# to wait for: inside the alternation below it would cost four times as much.
_BARE_AWS_KEY = _lazy(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9][A-Za-z0-9/+]{39}(?![A-Za-z0-9/+=])")


def _bare_aws_key(match: re.Match[str]) -> str:
    key = match[0]
    kinds = (str.islower, str.isupper, str.isdigit)
    return MASK if all(any(map(kind, key)) for kind in kinds) else key


_ALTERNATIVES = (
    # PEM private keys, a truncated one to the end
    r"(?P<pem>-----BEGIN (?P<pemkind>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----(?s:.*?)"
    r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z))",
    # scheme://user:password@host, the password up to the last @ a host follows (it may hold
    # "@", ":" and "/": u:ab@cd/ef@host); past a quote only if no @ comes before it
    r"(?P<url>(?P<urlhead>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<urluser>[^\s:/?#@'\"<>]*)"
    r"(?::(?P<urlpw>[^\s'\"<>]*|\S*?))?@(?=[A-Za-z0-9\[][\w.\-\[\]%:]*(?:[/?#\s'\",;)\]}>]|\Z)))",
    r"(?P<hook>https://hooks\.slack\.com/(?:services|workflows)/)[A-Za-z0-9/_\-]+",
    r"(?P<cookie>(?<![\w\-])(?i:set-cookie|cookie)\s*:\s*)[^\r\n'\"]+",
    # curl -u user:password, --user user:password (docker's -u 1000:1000 is no password)
    r"(?P<curlu>(?<![\w\-])(?:-u|--user)(?:\s*['\"]?|['\"]?,\s*['\"]?|=['\"]?)[^\s:'\",]+:)"
    r"(?P<curlpw>[^\s'\"]+)",
    # --password secret, and ['--password', 'secret']
    r"(?P<argv>(?<![\w\-])--(?P<opt>[A-Za-z][\w\-]*)(?:\s+['\"]?|['\"]?,\s*['\"]?|['\"]\s+['\"]?))"
    # (a value may begin with one "-": a password "-x9"; "--next-option" is no value)
    r"(?P<optval>-?[^\s'\"\-][^\s'\"]*?" + _WORD_END + ")",
    r"(?P<mysqlp>(?<![\w\-])-p)(?P<pval>[^\s'\"]+?" + _WORD_END + ")",
    r"(?P<sshpass>\bsshpass(?:['\"]?,?\s+['\"]?-[a-oq-zA-Z]\S*)*['\"]?,?\s+['\"]?-p['\"]?,?\s+['\"]?)"
    r"(?P<sshpw>[^\s'\"]+)",
    r"(?P<aws>\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|ABIA|ACCA)[A-Z0-9]{16}\b)"
    r"(?:(?P<awssep>[\s:,;|'\"=/]{1,4})[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=]))?",
    r"(?P<jwt>\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*)",
    r"(?P<tok>\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|glpat-[\w\-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}|xapp-[A-Za-z0-9\-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|whsec_[A-Za-z0-9]{20,}|sk-(?:proj-|ant-[a-z0-9]+-)?[\w\-]{20,}|npm_[A-Za-z0-9]{36}\b"
    r"|hvs\.[\w\-]{20,}|AIza[\w\-]{35}|SG\.[\w\-]{16,}\.[\w\-]{16,}))",
    r"(?P<bearer>\b(?i:bearer)\s+)(?P<btok>[A-Za-z0-9._~+/=\-]{8,})",
    r"(?P<basic>\b(?i:basic)\s+)(?P<bval>[A-Za-z0-9+/]{6,}={0,2})",
    # name=value, name: value, "name": "value", ['name'] = value; only names with a stem
    r"(?P<kv>(?<![\w.\-])(?P<kq>\\?[\"']?)"
    r"(?P<name>-{0,2}(?=[\w.\-]*(?i:pass|pwd|secret|token|key|auth|cred|sig|cookie|session|jwt))"
    r"[A-Za-z_][\w.\-]*)(?P=kq)\]?\s*(?::|=>?)\s*)(?P<val>" + _VALUE + ")",
)
_BUILTIN = _lazy("|".join(_ALTERNATIVES))
# every match of _BUILTIN holds one of these, in lower case: a string without any costs a few
# substring tests (a regex alternation of them would cost 50 us per line)
_TRIGGERS = (
    "pass", "pwd", "secret", "token", "key", "auth", "cred", "sig", "cookie", "session", "jwt",
    "bearer", "basic", "://", "-p", "-u", "akia", "asia", "agpa", "aida", "aroa", "aipa", "anpa",
    "anva", "apka", "abia", "acca", "eyj", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "glpat-", "xox", "xapp-", "sk_", "rk_",
    "whsec_", "sk-", "npm_", "hvs.", "aiza", "sg.",
)  # fmt: skip
_CURL = _lazy(r"(?i)\b(?:curl|wget|http)\b")
_MYSQL_CLIENT = _lazy(r"(?i)\b(?:mysql\w*|mariadb\w*|sshpass)\b")
_TOKEN_PREFIX = _lazy(r"github_pat_|[sr]k_(?:live|test)_|[a-z]+[_\-.]|AIza|SG\.")
_PLAIN_USER = _lazy(r"[a-z][a-z._\-]{0,30}[0-9]{0,3}")
_PORT_AND_PATH = _lazy(r"(\d{1,5})/")


def _mask_value(value: str, *, keep_scheme: bool) -> str:
    for quote in ('\\"', "b'", 'b"', '"', "'"):
        closing = quote.lstrip("b")
        if value.startswith(quote) and value.endswith(closing) and len(value) > len(quote):
            inner = value[len(quote) : len(value) - len(closing)]
            if not inner:
                return value
            return value[: len(quote)] + _mask_value(inner, keep_scheme=keep_scheme) + closing
    if len(value) > 1 and value[0] + value[-1] in ("{}", "[]"):  # {braced}, not {ab}cd
        return value[0] + MASK + value[-1] if value[1:-1] else value
    scheme = _SCHEME().match(value)
    if scheme and keep_scheme:
        return scheme["scheme"] + MASK
    return MASK


def _key_value(match: re.Match[str]) -> str | None:
    value, name = match["val"], match["name"]
    # the shell's working directory (PWD=/var/task), not ODBC's password (UID=app;PWD=/x;)
    shell_cwd = (
        name.strip("\"'\\") in ("PWD", "OLDPWD")
        and value.lstrip("'\"").startswith("/")
        and not match.string.startswith(";", match.end())
        and "uid=" not in match.string.lower()
    )
    if not secret_name(name) or shell_cwd:
        return None  # not a secret's name: its value is scanned like any other text
    head = match["kv"]
    keep_scheme = "auth" in name.lower()
    return head + _mask_value(value, keep_scheme=keep_scheme)


def _url(match: re.Match[str]) -> str:
    head, user, password = match["urlhead"], match["urluser"], match["urlpw"]
    if password is None:
        # https://TOKEN@host hides the token; ssh://git@host keeps a plain user name
        return match[0] if _PLAIN_USER().fullmatch(user) else f"{head}{MASK}@"
    port = _PORT_AND_PATH().match(password)
    if port and ("." in user or user == "localhost") and int(port[1]) <= 65535:
        # https://api.example.com:8443/users/@me: a host and its port, not a user's password
        return head + user + ":" + redact_text(password) + "@"
    return f"{head}{user}:{MASK}@"


def _argv(match: re.Match[str]) -> str | None:
    return match["argv"] + MASK if secret_name(match["opt"]) else None


def _curl_user(match: re.Match[str]) -> str | None:
    return match["curlu"] + MASK if _CURL().search(match.string) else None


def _mysql_p(match: re.Match[str]) -> str | None:
    # -p<password> means that only to a MySQL client: -pthread and -print stay
    return "-p" + MASK if _MYSQL_CLIENT().search(match.string) else None


def _basic(match: re.Match[str]) -> str:
    import binascii  # an extension module: loaded when a Basic credential is seen

    value = match["bval"]
    try:
        decoded = binascii.a2b_base64(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return match[0]
    return match["basic"] + MASK if b":" in decoded else match[0]


def _bearer(match: re.Match[str]) -> str:
    token = match["btok"]
    if token.isalpha():  # "bearer tokens": a word, not a token
        return match[0]
    return match["bearer"] + MASK


_REPLACE: dict[str, Callable[[re.Match[str]], str | None]] = {
    "pem": lambda m: f"-----BEGIN {m['pemkind']}-----{MASK}-----END {m['pemkind']}-----",
    "url": _url,
    "hook": lambda m: m["hook"] + MASK,
    "cookie": lambda m: m["cookie"] + MASK,
    "argv": _argv,
    "optval": _argv,
    "curlu": _curl_user,
    "curlpw": _curl_user,
    "mysqlp": _mysql_p,
    "pval": _mysql_p,
    "aws": lambda m: m["aws"][:4] + MASK + (m["awssep"] + MASK if m["awssep"] else ""),
    "awssep": lambda m: m["aws"][:4] + MASK + m["awssep"] + MASK,
    "sshpass": lambda m: m["sshpass"] + MASK,
    "sshpw": lambda m: m["sshpass"] + MASK,
    "jwt": lambda m: MASK,
    "tok": lambda m: _TOKEN_PREFIX().match(m[0])[0] + MASK,  # type: ignore[index]
    "bearer": _bearer,
    "btok": _bearer,
    "basic": _basic,
    "bval": _basic,
    "kv": _key_value,
    "val": _key_value,
}


def _builtin_pass(text: str) -> str:
    """``_BUILTIN.sub``, except that a match that holds no secret after all (a ``name=value``
    whose name is not a secret's, ``--option value``, ``-p`` far from a MySQL client) gives its
    text back to the scan: ``key=--password x`` and ``key: -----BEGIN PRIVATE KEY-----`` are
    found by the rules for what follows, not cut off at the value's end."""
    pattern = _BUILTIN()
    out: list[str] = []
    done = scan = 0
    while (match := pattern.search(text, scan)) is not None:
        replaced = _REPLACE[match.lastgroup or ""](match)
        if replaced is None:  # no secret here after all: scan on inside the match
            scan = match.start() + 1
            continue
        out += (text[done : match.start()], replaced)
        done = scan = match.end()
    return "".join(out) + text[done:] if out else text


# -- the user's patterns ----------------------------------------------------------------


@functools.lru_cache(maxsize=16)  # SAFEHANDLER_REDACT is read back at every redaction
def split_patterns(text: str) -> frozenset[str]:
    """``SAFEHANDLER_REDACT``: regular expressions separated by commas or newlines. A comma
    inside ``()``, ``[]`` or ``{}`` (``\\d{2,4}``) or escaped (``\\,``) belongs to its pattern."""
    parts: list[str] = []
    begin, class_start, depth, in_class, escaped = 0, 0, 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]" or index == class_start  # a first "]" is a literal
        elif char == "[":
            in_class, class_start = True, index + 1 + text.startswith("^", index + 1)
        elif char in "({":
            depth += 1
        elif char in ")}":
            depth = max(0, depth - 1)
        elif char in ",\n\r" and depth == 0:
            parts.append(text[begin:index])
            begin = index + 1
    parts.append(text[begin:])
    return frozenset(part.strip() for part in parts if part.strip())


@functools.lru_cache(maxsize=64)
def compile_patterns(patterns: frozenset[str]) -> tuple[re.Pattern[str], ...]:
    """The patterns compiled, in a stable order; ``re.error`` for one that is not a regex."""
    if not patterns:
        return ()  # (and no re loaded)
    import re

    return tuple(re.compile(pattern) for pattern in sorted(patterns))


_registered: frozenset[str] = frozenset()


def use_patterns(patterns: Iterable[str]) -> None:
    """Add the user's patterns (a policy's ``redact_patterns``) to every later redaction in
    this process: a secret one guarded handler knows is hidden from every output."""
    global _registered  # noqa: PLW0603 - one process-wide set, only ever grown
    added = frozenset(patterns) - _registered
    if added:
        compile_patterns(frozenset(added))  # raises here, not at the next log line
        _registered |= added


def _user_patterns() -> tuple[re.Pattern[str], ...]:
    from_env = os.environ.get(REDACT)
    patterns = _registered
    if from_env:
        patterns |= split_patterns(from_env)
    if not patterns:
        return ()
    import re

    try:
        return compile_patterns(patterns)
    except re.error:  # a bad variable is the policy's ConfigError; here, use the good ones
        return tuple(p for p in map(_compiled_or_none, sorted(patterns)) if p is not None)


@functools.lru_cache(maxsize=64)
def _compiled_or_none(pattern: str) -> re.Pattern[str] | None:
    import re

    try:
        return re.compile(pattern)
    except re.error:
        return None


def _apply(pattern: re.Pattern[str], text: str) -> str:
    if not pattern.groups:
        return pattern.sub(MASK, text)

    def hide_first_group(match: re.Match[str]) -> str:
        start, end = match.span(1)
        if start < 0:
            return match[0]
        offset = match.start()
        return match[0][: start - offset] + MASK + match[0][end - offset :]

    return pattern.sub(hide_first_group, text)


# -- the boundary -----------------------------------------------------------------------


def redact_text(text: str) -> str:
    """``text`` with every secret it holds replaced by ``***``."""
    lowered = text.lower()
    if any(trigger in lowered for trigger in _TRIGGERS):
        text = _builtin_pass(text)
    if len(text) >= 40:  # the length of an AWS secret access key
        text = _BARE_AWS_KEY().sub(_bare_aws_key, text)
    for pattern in _user_patterns():
        text = _apply(pattern, text)
    return text


redact = redact_text  # the name the probes know


def redact_obj(obj: Any) -> Any:
    """A JSON-like tree (dicts, lists, strings, numbers) with every string redacted and the
    value of every secret-named key masked. Anything else becomes its redacted ``str``."""
    if isinstance(obj, str):
        return redact_text(obj)
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            name = redact_text(key) if isinstance(key, str) else key
            if isinstance(key, str) and secret_name(key) and _is_filled_scalar(value):
                out[name] = MASK
            else:
                out[name] = redact_obj(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [redact_obj(item) for item in obj]
    return redact_text(str(obj))


def _is_filled_scalar(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (str, bytes, int, float)):
        return False
    return value not in ("", b"")


def redact_finding(finding: Finding) -> Finding:
    """The finding as it may leave the engine: its detail, extra fields and site redacted
    (a site's path is text too: a LeakError prints it)."""
    detail = redact_text(finding.detail)
    extra = redact_obj(finding.extra) if finding.extra else finding.extra
    site = _redact_site(finding.site)
    if detail == finding.detail and extra == finding.extra and site is finding.site:
        return finding
    return finding.replace(detail=detail, extra=extra, site=site)


def _redact_site(site: Site | None) -> Site | None:
    if site is None:
        return None
    changed = site._replace(
        filename=redact_text(site.filename),
        function=redact_text(site.function),
        via=site.via and redact_text(site.via),
        caller=_redact_frame(site.caller),
        first_use=_redact_frame(site.first_use),
    )
    return site if changed == site else changed


def _redact_frame(frame: tuple[str, int, str] | None) -> tuple[str, int, str] | None:
    if frame is None:
        return None
    filename, lineno, function = frame
    return (redact_text(filename), lineno, redact_text(function))
