"""Where rigctl may fetch from, and where a Hugging Face token may go.

The controller fetches models, the llama.cpp source and Ollama archives, then pushes them to
hosts as root; a source therefore decides what every host runs. The policy, applied before any
connection (the host-data schema calls :func:`check_url`) and again by
:func:`rigctl.fetch.http.download`:

- ``https://`` URLs;
- ``http://`` only to a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``: labs and
  tests), or with ``allow_http: true`` in the host data **and** a known sha256 (plain http can
  be changed on the way; only a checksum makes it safe);
- ``file:`` URLs and absolute paths on the controller (a bare path becomes a ``file:`` URL);
- nothing else: other schemes, relative paths, ``~``, URLs that do not parse (``[::1``).

A file found this way is still only a candidate: its bytes must match a known sha256, or be
what the plan expects (see :mod:`rigctl.fetch.model`).

A Hugging Face token (``HF_TOKEN``) is sent only over https to the Hub: ``huggingface.co``,
``hf.co`` and their subdomains, and the host of ``HF_ENDPOINT`` when that is an https URL.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import PurePosixPath
from urllib.parse import SplitResult, unquote, urlsplit

from rigctl.errors import BadInput
from rigctl.redact import redact

#: The Hub's own domains; their subdomains (``cdn-lfs.huggingface.co``,
#: ``cas-bridge.xethub.hf.co``) are the Hub's too.
HUB_DOMAINS = ("huggingface.co", "hf.co")

#: A host part a token may be sent to: a DNS name or an IPv4 address, an optional port; no
#: userinfo, brackets or backslashes that parsers disagree on.
_PLAIN_NETLOC = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(url: str) -> str:
    """A URL as an error may show it: credentials masked, cut short."""
    return repr(redact(url))[:160]


def _split(url: str, field: str) -> tuple[SplitResult, str | None, int | None]:
    """``urlsplit`` and its host and port, with every ``ValueError`` (``Invalid IPv6 URL``, a
    port that is not a number) turned into BadInput."""
    try:
        parts = urlsplit(url)
        return parts, parts.hostname, parts.port
    except ValueError as e:
        raise BadInput(f"not a valid URL ({e}): {_shown(url)}", field=field) from None


def _file_url(path: str, url: str, field: str) -> str:
    """The ``file:`` URL of an absolute path on the controller (BadInput otherwise)."""
    if not path.startswith("/") or path.startswith("//"):
        raise BadInput(
            f"a file source must be an absolute path on the controller, got {_shown(url)}",
            field=field,
        )
    return PurePosixPath(path).as_uri()


def check_url(url: str, *, field: str, allow_http: bool = False, sha256_known: bool) -> str:
    """Return the URL to fetch ``url`` from (a path becomes its ``file:`` URL), or raise
    BadInput naming ``field`` when the policy above refuses it. Pure: no I/O."""
    if not isinstance(url, str) or not url:
        raise BadInput(f"must be a URL or an absolute path, got {url!r}"[:160], field=field)
    if not url.isprintable():
        raise BadInput(f"must not contain control characters: {_shown(url)}", field=field)
    if url.startswith("/"):
        return _file_url(url, url, field)
    if any(ch.isspace() or ch == "\\" for ch in url):
        # parsers disagree on these (``https://evil\\@huggingface.co/``): never a URL here
        raise BadInput(f"a URL must not contain spaces or backslashes: {_shown(url)}", field=field)
    if "://" not in url and not url.lower().startswith("file:"):
        raise BadInput(
            "must be an https:// URL or an absolute path on the controller (not a relative "
            f"path, not ~), got {_shown(url)}",
            field=field,
        )
    parts, host, _port = _split(url, field)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise BadInput(
                f"a file: URL names a path on this machine (file:///abs/path), got {_shown(url)}",
                field=field,
            )
        return _file_url(unquote(parts.path), url, field)
    if scheme not in ("https", "http"):
        raise BadInput(
            f"scheme {scheme or '(none)'!r} is not allowed (https://, http:// to loopback, "
            f"file: or an absolute path): {_shown(url)}",
            field=field,
        )
    if not host:
        raise BadInput(f"URL has no host: {_shown(url)}", field=field)
    if scheme == "http" and not is_loopback(host):
        if not allow_http:
            raise BadInput(
                "plain http:// is only accepted for loopback addresses (set allow_http: true "
                f"in the host data, with a sha256, for a LAN mirror): {_shown(url)}",
                field=field,
            )
        if not sha256_known:
            raise BadInput(
                f"plain http:// needs a known sha256 (bytes over http can be changed on the "
                f"way): {_shown(url)}",
                field=field,
            )
    return url


def check_urls(
    urls: list[str], *, field: str, allow_http: bool = False, sha256_known: bool
) -> list[str]:
    """:func:`check_url` for each entry (``field`` names the list in errors)."""
    return [
        check_url(u, field=field, allow_http=allow_http, sha256_known=sha256_known) for u in urls
    ]


def is_local(url: str) -> bool:
    """True for a ``file:`` URL (a source on the controller itself)."""
    return url.lower().startswith("file:")


def hub_endpoint_host() -> tuple[str, int] | None:
    """``(host, port)`` of ``HF_ENDPOINT`` when it is an https URL, else None."""
    endpoint = os.environ.get("HF_ENDPOINT")
    if not endpoint:
        return None
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not host or "@" in parts.netloc:
        return None
    return host, port or 443


def token_allowed(url: str) -> bool:
    """True when a Hub token may be sent with a request to ``url``: https, to the Hub's
    domains (not look-alikes such as ``huggingface.co.evil.com`` or ``evilhuggingface.co``)
    or to ``HF_ENDPOINT``'s host and port."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return False
    if parts.scheme.lower() != "https" or not host or not _PLAIN_NETLOC.match(parts.netloc):
        return False
    port = port or 443
    if port == 443 and any(host == d or host.endswith("." + d) for d in HUB_DOMAINS):
        return True
    return hub_endpoint_host() == (host, port)


def hub_token() -> str | None:
    """The controller's Hugging Face token (``HF_TOKEN``, or the older
    ``HUGGING_FACE_HUB_TOKEN``), or None."""
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def auth_headers(url: str, token: str | None = None) -> dict[str, str]:
    """``Authorization`` for ``url`` when :func:`token_allowed` says so, else nothing;
    ``token`` defaults to :func:`hub_token`."""
    token = token or hub_token()
    if token and token_allowed(url):
        return {"Authorization": f"Bearer {token}"}
    return {}
