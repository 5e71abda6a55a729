"""Secrets taken out of anything rigctl prints or writes: errors, JSON, progress, lockfiles.

What is redacted:

- URL userinfo (``https://user:pass@host/`` -> ``https://***@host/``);
- query parameters that carry credentials: tokens, keys, signatures, credentials, passwords
  (``token=``, ``sig=``, ``signature=``, ``X-Amz-Credential=``, ``X-Amz-Signature=``,
  ``X-Goog-Signature=``, ``access_token=``, ``api_key=``, ...), case-insensitively;
- ``Authorization: Bearer ...`` / ``Basic ...`` values;
- Hugging Face tokens (``hf_`` followed by 20 or more letters and digits);
- every secret registered with :func:`register_secret` (the ``HF_TOKEN`` of the environment,
  host data ``hf_token``, API keys read back from hosts), wherever it appears.

:func:`redact` works on text, :func:`redact_data` on JSON-like documents (strings inside
dicts and lists, dict keys left as they are).

:func:`shown_url` is the form of a URL fit to show and record (plans, lockfiles, progress); it
remembers the real URL, which only the fetching code asks for again (:func:`real_url`), so a
signed or password-carrying URL still downloads while no record of it holds the credential.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MASK = "***"

#: query-parameter names whose value is a credential (lower case; matched as a suffix of the
#: name too, so ``X-Amz-Signature`` and ``hf_token`` match)
_SECRET_PARAMS = (
    "token",
    "sig",
    "signature",
    "credential",
    "key",
    "password",
    "passwd",
    "secret",
    "auth",
    "authorization",
    "session",
)
_PARAM_NAME = r"[A-Za-z0-9_.\-]*(?:" + "|".join(_SECRET_PARAMS) + r")"
_PARAM = re.compile(r"(?i)(?P<name>" + _PARAM_NAME + r")=(?P<value>[^&\s#\"'<>]+)")
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s?#]+)@")
_AUTH_HEADER = re.compile(r"(?i)\b(?P<kind>bearer|basic|token)\s+(?P<value>[A-Za-z0-9._~+/=\-]{8,})")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")

_registered: set[str] = set()
#: shown form -> real URL, for the URLs :func:`shown_url` masked (this process only)
_real_urls: dict[str, str] = {}


def register_secret(secret: str | None) -> None:
    """Redact this exact value from now on (ignored when empty or shorter than 6 characters:
    too short to be a secret, too likely to be ordinary text)."""
    if secret and len(secret) >= 6:
        _registered.add(secret)


def _secrets() -> list[str]:
    found = set(_registered)
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token and len(token) >= 6:
        found.add(token)
    return sorted(found, key=len, reverse=True)  # longest first: no partial leftovers


def redact(text: str) -> str:
    """``text`` with every secret rigctl knows of, and every credential-shaped part, masked."""
    if not text:
        return text
    for secret in _secrets():
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _PARAM.sub(lambda m: f"{m['name']}={MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['kind']} {MASK}", text)
    return _HF_TOKEN.sub(MASK, text)


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like document with :func:`redact` applied to every string value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value


def register_url_secrets(url: str) -> None:
    """Register a URL's password and credential-carrying query values, so they are masked
    even where a message quotes them out of the URL (``..., password=pw`` in a traceback)."""
    try:
        parts = urlsplit(url)
        register_secret(parts.password)
        decoded = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return
    raw = [tuple(item.split("=", 1)) for item in parts.query.split("&") if "=" in item]
    for name, value in [*decoded, *raw]:
        if re.fullmatch(_PARAM_NAME, name, flags=re.IGNORECASE):
            register_secret(value)


def shown_url(url: str) -> str:
    """``url`` with its userinfo and credential parameters masked (unchanged when it has
    none, and for anything that is not a URL: a local path is shown as it is). The real URL
    is kept for :func:`real_url`."""
    if "://" not in url:
        return url
    shown = redact(url)
    if shown != url:
        register_url_secrets(url)
        _real_urls[shown] = url
    return shown


def real_url(shown: str) -> str:
    """The URL :func:`shown_url` masked into ``shown`` (``shown`` itself when it masked
    nothing, or in another process)."""
    return _real_urls.get(shown, shown)
