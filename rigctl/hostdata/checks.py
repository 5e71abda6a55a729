"""Value checks of the host-data schema: each ``check(value, field)`` returns the value
(normalised) or raises ``ValueError(why)``; the schema's caller names the host and the field."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from rigctl.errors import BadInput
from rigctl.redact import redact, register_secret

#: A validator: ``check(value, field) -> value`` (normalised) or raises ``ValueError(why)``.
Check = Callable[[Any, str], Any]

SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.:~=_-]{0,199}$")
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],]*(\s*[=<>!~]{1,3}\s*[A-Za-z0-9.*+_{}\-]+)*$")
_CMAKE_OPTION = re.compile(r"^-D[A-Za-z_][A-Za-z0-9_]*(:[A-Z]+)?=[^\s\x00-\x1f\x7f]*$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")
_HOST_PATH = re.compile(r"^[A-Za-z0-9._/+@-]+$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")

#: prefixes of keys that pyinfra itself reads: connector settings and global operation arguments
PYINFRA_PREFIXES = (
    "ssh_",
    "_",
    "winrm_",
    "docker_",
    "dockerssh_",
    "podman_",
    "chroot_",
    "vagrant_",
    "terraform_",
    "local_",
)




def _no_control(text: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
        raise ValueError("must not contain control characters")
    return text


def _shown(value: Any) -> str:
    return redact(repr(value))[:80]


def _ascii_int(value: Any) -> Any:
    """A string of ASCII digits as the integer it spells (``"²".isdigit()`` is True: not that);
    anything else as it is."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,10}", value.strip()):
        return int(value.strip())
    return value


def integer(low: int, high: int) -> Check:
    def check(value: Any, _field: str) -> int:
        value = _ascii_int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer from {low} to {high:,}, got {_shown(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high:,}, got {value}")
        return value

    return check


def strict_integer(low: int, high: int) -> Check:
    """An integer that must be one in the data (pyinfra reads the raw value itself)."""

    def check(value: Any, _field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer (not a string), got {_shown(value)}")
        return integer(low, high)(value, _field)

    return check


def planner_input(check: Callable[[Any], int]) -> Check:
    """One of the planner's own checks (:mod:`rigctl.plan.limits`: the same bounds, the same
    message when a plan is made), reading a string of ASCII digits as :func:`integer` does."""

    def run(value: Any, _field: str) -> int:
        return check(_ascii_int(value))

    return run


def boolean(value: Any, _field: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {_shown(value)}")
    return value


def choice(*values: str) -> Check:
    def check(value: Any, _field: str) -> str:
        if not isinstance(value, str) or value not in values:
            hint = " (quote it: YAML and Python read yes/no as booleans)" if isinstance(value, bool) else ""
            raise ValueError(f"must be one of {', '.join(values)}, got {_shown(value)}{hint}")
        return value

    return check


def text(max_length: int = 1024) -> Check:
    def check(value: Any, _field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be a non-empty string, got {_shown(value)}")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return _no_control(value).strip()

    return check


def pattern(regex: re.Pattern[str], what: str) -> Check:
    def check(value: Any, _field: str) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise ValueError(f"must be {what}, got {_shown(value)}")
        return value

    return check


def sha256(value: Any, _field: str) -> str:
    if isinstance(value, str) and SHA256.match(value.lower()):
        return value.lower()
    raise ValueError(f"must be 64 hex digits (a sha256), got {_shown(value)}")


def host_path(value: Any, _field: str) -> str:
    """An absolute path on a host: rendered into units (``ReadWritePaths=`` splits on spaces,
    ``%`` is a specifier, ``$`` an expansion) and commands, so only letters, digits and
    ``/ . _ + @ -``: no whitespace, no control characters, no shell or unit syntax, no ``..``."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"must be an absolute path, got {_shown(value)}")
    _no_control(value)
    if any(ch.isspace() for ch in value):
        raise ValueError(f"must not contain whitespace, got {_shown(value)}")
    if not _HOST_PATH.match(value):
        raise ValueError(f"must use only letters, digits and / . _ + @ -, got {_shown(value)}")
    if any(part == ".." for part in value.split("/")):
        raise ValueError(f"must not contain '..', got {_shown(value)}")
    if len(value) > 1024:
        raise ValueError("must be at most 1024 characters")
    return value.rstrip("/") or "/"


def controller_path(value: Any, _field: str) -> str:
    """A path on the controller (``~`` allowed): never rendered on a host."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a path, got {_shown(value)}")
    return _no_control(value)


def url(*, schemes: tuple[str, ...] = ("https", "http")) -> Check:
    """A URL with one of ``schemes``, as the download policy (:mod:`rigctl.fetch.policy`) reads
    it; plain http beyond loopback is judged in :func:`_check_sources`, which knows
    ``allow_http``."""

    def check(value: Any, field: str) -> str:
        checked = mirror(value, field)
        if urlsplit(checked).scheme not in schemes:
            raise ValueError(f"must be a URL with scheme {' or '.join(schemes)}, got {_shown(value)}")
        return str(value)

    return check


def mirror(value: Any, field: str) -> str:
    """A source: an ``https``/``http`` URL, or an absolute path or ``file:`` URL on the
    controller (``~`` and relative paths refused), by the download policy's one reading."""
    from rigctl.fetch.policy import check_url

    try:
        return check_url(value, field=field, allow_http=True, sha256_known=True)
    except BadInput as e:
        raise ValueError(e.detail) from None


def list_of(item: Check, *, max_items: int = 256, min_items: int = 0) -> Check:
    def check(value: Any, field: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be a list, got {_shown(value)}")
        if len(value) < min_items:
            least = "one entry" if min_items == 1 else f"{min_items} entries"
            raise ValueError(f"must list at least {least}")
        if len(value) > max_items:
            raise ValueError(f"must have at most {max_items} entries")
        out = []
        for index, entry in enumerate(value):
            try:
                out.append(item(entry, field))
            except ValueError as e:
                raise ValueError(f"entry {index}: {e}") from None
        return out

    return check


def mapping(key: Check, item: Check) -> Check:
    def check(value: Any, field: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping, got {_shown(value)}")
        out = {}
        for name, entry in value.items():
            try:
                out[key(name, field)] = item(entry, field)
            except ValueError as e:
                raise ValueError(f"{_shown(name)}: {e}") from None
        return out

    return check


def optional(inner: Check) -> Check:
    def check(value: Any, field: str) -> Any:
        return None if value is None else inner(value, field)

    return check


def ip_address(value: Any, _field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be an IP address, got {_shown(value)}")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"must be an IP address, got {_shown(value)}") from None


def ssh_hostname(value: Any, _field: str) -> str:
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            if _HOSTNAME.match(value):
                return value
    raise ValueError(f"must be a host name or IP address, got {_shown(value)}")


def secret(value: Any, _field: str) -> str:
    """A secret (password, token): single-line, registered for redaction everywhere."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    if not value.isprintable() or any(ch.isspace() for ch in value):
        raise ValueError("must be a single-line value without spaces")
    register_secret(value)
    return value


def llamacpp_source(value: Any, _field: str) -> Any:
    """``["pypi-sdist", ...]`` (default mirror kinds to keep) or
    ``{"version": V, "mirrors": [{"kind", "location", "sha256"}]}``: parsed by
    :meth:`rigctl.fetch.llamacpp_source.LlamaCppSource.from_host_data`, the one reader of it."""
    from rigctl.fetch.llamacpp_source import LlamaCppSource

    if not isinstance(value, list | dict):
        raise ValueError("expected a list of mirror kinds or {version: ..., mirrors: [...]}")
    try:
        # http beyond loopback is allowed here; _check_sources applies allow_http to each URL
        LlamaCppSource.from_host_data(value, allow_http=True)  # type: ignore[arg-type]
    except BadInput as e:
        raise ValueError(e.detail) from None
    return value


def record(fields: dict[str, Check], *, required: tuple[str, ...] = ()) -> Check:
    """A mapping with known fields only, each checked by its own check (``alias: must be ...``);
    ``required`` fields must be there. Returns the checked fields."""

    def check(value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping of {', '.join(fields)}, got {_shown(value)}")
        out: dict[str, Any] = {}
        for name, entry in value.items():
            if name not in fields:
                raise ValueError(
                    f"unknown field {_shown(name)} (known: {', '.join(fields)})"
                )
            if entry is None:
                continue
            try:
                out[name] = fields[name](entry, f"{field}.{name}")
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        missing = [name for name in required if name not in out]
        if missing:
            raise ValueError(f"{missing[0]}: required")
        return out

    return check


#: a model's name on its endpoint (the OpenAI ``model`` field, the router's presets section, a
#: file name on the host): URL-safe, RFC 3986's unreserved characters
ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$")
