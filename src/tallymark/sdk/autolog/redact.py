"""Remove secrets from what an experiment records about how it was started.

Command lines, environment variables and git remotes are copied into the store and shown on the
Environment and Git tabs, to anyone who can read the experiment, for as long as it is kept. Training
scripts are routinely started with credentials on the command line (``--api-key=…``, a presigned S3
URL, ``https://user:token@host``), so every capture passes through this one module before anything
leaves the process. The Comet adapter uses it for what the ``comet_ml`` SDK sends, and the UI applies
it once more when it renders, for experiments recorded before it existed.

Example::

    from tallymark.sdk.autolog.redact import redact_argv
    redact_argv(["train.py", "--api-key=s3cr3t", "--lr", "0.1"])
    # ['train.py', '--api-key=***', '--lr', '0.1']

The rule (docs/sdk.md, "What is redacted", says the same for users):

* A *name* (a flag, a ``name=value`` argument, a URL query parameter, an environment variable) is
  split into words at ``-``, ``_``, ``.`` and camelCase boundaries. It is secret when a word contains
  ``secret``, ``password``, ``passwd``, ``passphrase`` or ``credential``; or when its **last** word is
  ``key``, ``token`` or ``auth`` (or ``apikey``, ``accesstoken`` …). "Last word" keeps
  ``--key-column``, ``--max-tokens``, ``--token-limit``, ``--keep-going`` and ``--tokenizer``
  readable while ``--api-key``, ``--hf-token``, ``--http-auth`` and ``--key`` are redacted.
  Environment variables are stricter: *any* word ``KEY``, ``TOKEN`` or ``AUTH`` counts
  (``AWS_ACCESS_KEY_ID``, ``HF_TOKEN_PATH``), because a variable name says what it holds. URL query
  parameters also count ``sig`` and ``signature`` (``X-Amz-Signature``).
* A secret flag's value is replaced: ``--api-key=…`` and ``--api-key …`` (the next argument, unless it
  is itself a flag), ``name=…`` (Hydra-style overrides such as ``db.password=…``).
* Anywhere in any captured string: tallymark API keys (``tm_`` + 40 letters and digits), AWS access
  key ids (``AKIA``/``ASIA`` + 16 upper-case letters and digits), ``Bearer …`` tokens, the user
  information of URLs (``https://user:pass@host`` → ``https://***@host``; for ``ssh://`` only the
  password part) and the values of secret query parameters (``?access_token=…``, ``&sig=…``).

Values become :data:`MARK`; names are kept so the command stays readable and it is visible that
something was there. The rule errs towards redacting: a false positive costs a few readable
characters, a false negative leaks a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MARK",
    "is_secret_env_name",
    "is_secret_name",
    "redact_argv",
    "redact_env",
    "redact_environment",
    "redact_git",
    "redact_text",
    "redact_url",
    "strip_url_credentials",
]

#: What a redacted value is replaced with.
MARK = "***"

_STRONG = ("secret", "password", "passwd", "passphrase", "credential")
_WEAK = frozenset({"key", "token", "auth"})
# Compound last words ("apikey", "authToken" written as one word) that still name a key or token.
_WEAK_PREFIXES = (
    "api",
    "access",
    "auth",
    "private",
    "secret",
    "session",
    "refresh",
    "bearer",
    "id",
    "master",
)
_URL_ONLY = frozenset({"sig", "signature"})

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_FLAG = re.compile(r"^(-{1,2}[A-Za-z][A-Za-z0-9_.\-]*)(=.*)?$", re.DOTALL)
_ASSIGN = re.compile(r"^([+~]{0,2}[A-Za-z_][A-Za-z0-9_.\-]*)=(.*)$", re.DOTALL)

_TM_KEY = re.compile(r"(?<![A-Za-z0-9])tm_[A-Za-z0-9]{40}(?![A-Za-z0-9])")
_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_QUERY_PARAM = re.compile(r"([?&;])([^=&#;?\s]+)=([^&#;\s]*)")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(name) if w]


def _weak_word(word: str) -> bool:
    if word in _WEAK:
        return True
    return any(word == p + w for w in _WEAK for p in _WEAK_PREFIXES)


def is_secret_name(name: str, *, url_param: bool = False) -> bool:
    """Whether a flag, ``name=`` argument or URL query parameter names a secret (module rule)."""
    words = _words(name)
    if not words:
        return False
    if any(s in w for w in words for s in _STRONG):
        return True
    last = words[-1]
    return _weak_word(last) or (url_param and last in _URL_ONLY)


def is_secret_env_name(name: str) -> bool:
    """Whether an environment variable's value is a secret: any word KEY/TOKEN, or SECRET/PASSWORD…"""
    words = _words(name)
    return any(s in w for w in words for s in _STRONG) or any(_weak_word(w) for w in words)


def strip_url_credentials(url: str) -> str:
    """Remove secrets from a git remote URL (the user information goes, not just the password).

    ``https://user:token@host/x.git`` -> ``https://host/x.git`` (a token may sit in the user part, so
    the whole user info goes for non-ssh URLs); ``ssh://git:pw@host/x`` -> ``ssh://git@host/x``;
    scp-like ``git@host:x.git`` is left alone (it cannot carry a password). Secret query parameters
    are redacted as in :func:`redact_url`.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        user, at, host_path = url.partition("@")
        if at and ":" in user:  # "user:pass@host:path" is not valid scp syntax, but keep it secret-free
            return f"{user.split(':', 1)[0]}@{host_path}"
        return url
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    path = _redact_query(path)
    if "@" not in authority:
        return f"{scheme}://{authority}{path}"
    userinfo, _, host = authority.rpartition("@")
    if _is_ssh(scheme):
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}@{host}{path}" if user else f"{scheme}://{host}{path}"
    return f"{scheme}://{host}{path}"


def _is_ssh(scheme: str) -> bool:
    return scheme.lower() in ("ssh", "git+ssh", "ssh+git", "sftp")


def _redact_query(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        sep, name, value = m.group(1), m.group(2), m.group(3)
        if value and is_secret_name(name, url_param=True):
            return f"{sep}{name}={MARK}"
        return m.group(0)

    return _QUERY_PARAM.sub(sub, text) if "=" in text else text


def redact_url(url: str) -> str:
    """One URL with its user information (``***@``) and secret query parameter values redacted."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _redact_query(url)
    slash = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    authority, tail = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        if _is_ssh(scheme):
            user, colon, _pw = userinfo.partition(":")
            authority = f"{user}:{MARK}@{host}" if colon else authority
        else:
            authority = f"{MARK}@{host}"
    return f"{scheme}://{authority}{_redact_query(tail)}"


def redact_text(text: str) -> str:
    """Redact the secrets that are recognisable by their shape anywhere in a string."""
    if not isinstance(text, str) or not text:
        return text
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    elif "?" in text or "&" in text:
        text = _redact_query(text)
    text = _TM_KEY.sub(MARK, text)
    text = _AWS_KEY_ID.sub(MARK, text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MARK}", text)


def redact_argv(argv: Iterable[Any]) -> list[str]:
    """A command line with secret flag values, ``name=secret`` values and secret shapes redacted."""
    args = [str(a) for a in argv]
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            hide_next = False
            if not arg.startswith("-") or arg in ("-", "--") or _looks_negative_number(arg):
                out.append(MARK)
                continue
        flag = _FLAG.match(arg)
        if flag:
            name, value = flag.group(1), flag.group(2)
            if is_secret_name(name.lstrip("-")):
                if value is None:
                    hide_next = True
                    out.append(arg)
                else:
                    out.append(f"{name}={MARK}")
                continue
            out.append(redact_text(arg))
            continue
        assign = _ASSIGN.match(arg)
        if assign and is_secret_name(assign.group(1).lstrip("+~")):
            out.append(f"{assign.group(1)}={MARK}")
            continue
        out.append(redact_text(arg))
    return out


def _looks_negative_number(arg: str) -> bool:
    try:
        float(arg)
    except ValueError:
        return False
    return True


def redact_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """Environment variables with secret-named values replaced and secret shapes redacted."""
    out: dict[str, Any] = {}
    for name, value in env.items():
        if is_secret_env_name(str(name)) and value not in (None, ""):
            out[name] = MARK
        else:
            out[name] = redact_text(value) if isinstance(value, str) else value
    return out


def redact_environment(data: Mapping[str, Any]) -> dict[str, Any]:
    """An ``environment`` item (or a ``command`` item) with its argv, env vars and strings redacted.

    Used at capture and by the UI at display time, so it is cheap and leaves unknown fields' shape
    alone: lists named ``argv``/``orig_argv``/``command`` go through :func:`redact_argv`, mappings
    named ``env_vars``/``env`` through :func:`redact_env`, every other string through
    :func:`redact_text`.
    """
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in ("argv", "orig_argv", "command", "args") and isinstance(v, (list, tuple)):
            out[k] = redact_argv(v)
        elif k in ("command", "cmd") and isinstance(v, str):
            out[k] = redact_text(v)
        elif k in ("env_vars", "env", "environ") and isinstance(v, Mapping):
            out[k] = redact_env(v)
        elif isinstance(v, Mapping):
            out[k] = redact_environment(v)
        elif isinstance(v, str):
            out[k] = redact_text(v)
        else:
            out[k] = v
    return out


def redact_git(data: Mapping[str, Any]) -> dict[str, Any]:
    """A ``git`` item with its remote URL's credentials and secret query parameters removed."""
    out = dict(data)
    remote = out.get("remote_url")
    if isinstance(remote, str):
        out["remote_url"] = strip_url_credentials(remote)
    return out
