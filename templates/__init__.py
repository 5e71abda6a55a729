"""Jinja2 templates, named after what they render (``llama-server.service.j2`` -> a systemd unit).

``render("llama-server.service.j2", ...)`` renders with ``StrictUndefined`` (a missing variable
is an error, never an empty string in a unit) and the filters units and plists need.

Rendering cannot be escaped. Whatever reaches a template (a model's own metadata, host data,
a plan) is written as one value of the kind its place takes, or refused with
:class:`~rigctl.errors.BadInput`: a newline in a model name must never become a directive of
a unit that runs as root. Every ``{{ }}`` goes through one of the filters below, each refusing
control characters and quoting by its format's rules; they return :class:`Rendered`, and the
environment's ``finalize`` refuses any output that is not, so a template that prints a value
without a filter fails on its first render instead of writing it raw.

The other files rigctl writes to hosts are built here too: :func:`env_file` (systemd
``EnvironmentFile=``, also sourced by ``sh``) and :func:`ollama_modelfile`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment, FunctionLoader, StrictUndefined, TemplateNotFound

from rigctl.errors import BadInput

#: Unicode categories no rendered value may hold: controls (C0, DEL, C1 with U+0085), format
#: characters (bidi overrides, zero-width, BOM), surrogates, line and paragraph separators.
#: Python's ``str.splitlines`` breaks on several of these; systemd on ``\n``, ``\r``, ``\0``.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Not characters in XML 1.0 (nor in a plist); everything else outside the refused categories is.
_XML_NONCHARACTERS = frozenset({"\ufffe", "\uffff"})

_SAFE_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_UNIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,254}$")
_LAUNCHD_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_DEVICE_CLASS = re.compile(r"^(char|block)-[A-Za-z0-9_.:+*-]+$")
#: Characters refused in paths: quoting and escapes (a path is written unquoted), ``$``.
_PATH_REFUSED = frozenset("\"'\\$")
PATH_MAX = 4096
#: Unit comments and ``Description=``: a line, not a document.
UNIT_TEXT_MAX = 256


class Rendered(str):
    """Text a filter made safe for its place in a rendered file: the only output templates have."""


def _shown(value: str) -> str:
    """The value in an error message: ``repr`` (controls escaped), cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def refuse_controls(value: object, field: str) -> str:
    """``value`` as text, refused when it holds a control, format or line-separator character.

    Refused, not stripped: a value that needs changing to be written safely is not the value
    that was meant, and the caller should say so.
    """
    text = str(value)
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char in _XML_NONCHARACTERS:
            raise BadInput(
                f"{_shown(text)} holds the control character U+{ord(char):04X}", field=field
            )
    return text


def _checked_path(value: object, field: str, *, spaces: bool = False) -> str:
    """An absolute, normalised path with nothing a unit line would read as syntax: no
    whitespace (path lists are split on it), quotes, backslashes (line continuation) or ``$``.

    ``spaces`` allows inner ASCII spaces, for formats that read a path to the end of its line.
    """
    text = refuse_controls(value, field)
    if not text.startswith("/"):
        raise BadInput(f"{_shown(text)} is not an absolute path", field=field)
    if len(text) > PATH_MAX:
        raise BadInput(f"path longer than {PATH_MAX} characters: {_shown(text)}", field=field)
    if spaces and text.endswith(" "):
        raise BadInput(f"{_shown(text)} ends with a space", field=field)
    bad = next(
        (c for c in text if (c.isspace() and not (spaces and c == " ")) or c in _PATH_REFUSED),
        None,
    )
    if bad is not None:
        raise BadInput(f"{_shown(text)}: paths cannot contain {bad!r}", field=field)
    if any(part in (".", "..") for part in text.split("/")):
        raise BadInput(f"{_shown(text)}: '.' and '..' are not allowed in paths", field=field)
    return text


def _matching(pattern: re.Pattern[str], what: str, value: object, field: str) -> str:
    text = refuse_controls(value, field)
    if not pattern.match(text):
        raise BadInput(f"{_shown(text)} is not a valid {what}", field=field)
    return text


# --------------------------------------------------------------------------- systemd


def systemd_quote(word: object, field: str = "argv") -> Rendered:
    """Quote one argument for a systemd ``ExecStart=`` line (systemd.service(5), "Command lines").

    ``%`` starts a specifier and ``$`` an environment expansion, so both are doubled; words with
    spaces, quotes or backslashes are double-quoted with C-style escapes. Control characters
    (a newline would end the directive) are refused.
    """
    text = refuse_controls(word, field).replace("%", "%%").replace("$", "$$")
    if text and _SAFE_WORD.match(text):
        return Rendered(text)
    return Rendered('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')


def systemd_command(argv: Iterable[object], field: str = "argv") -> Rendered:
    """A whole ``ExecStart=`` command line: an absolute program, then its quoted arguments.

    The program must be a plain absolute path: systemd reads a leading ``+``, ``!``, ``-``, ``@``
    or ``:`` as a prefix (``+`` runs with full privileges) even inside quotes.
    """
    words = list(argv)
    if not words:
        raise BadInput("empty command line", field=field)
    program = _checked_path(words[0], field)
    return Rendered(" ".join(systemd_quote(word, field) for word in [program, *words[1:]]))


def env_name(name: object, field: str = "environment") -> Rendered:
    """An environment variable name: a C identifier (nothing systemd or a shell would parse)."""
    return Rendered(_matching(_ENV_NAME, "environment variable name", name, field))


def systemd_env_value(value: object, field: str = "environment") -> Rendered:
    """A value for ``Environment="NAME=value"``: ``%`` doubled, C escapes for ``\\`` and ``"``."""
    text = refuse_controls(value, field)
    return Rendered(text.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"'))


def systemd_path(value: object, field: str = "path") -> Rendered:
    """One path in a directive (``WorkingDirectory=``, ``ReadOnlyPaths=``...): ``%`` doubled."""
    return Rendered(_checked_path(value, field).replace("%", "%%"))


def systemd_paths(values: Iterable[object], field: str = "paths") -> Rendered:
    """A space-separated path list: each path checked alone, so none can add another."""
    paths = [systemd_path(value, field) for value in values]
    if not paths:
        raise BadInput("empty path list (it would reset the setting)", field=field)
    return Rendered(" ".join(paths))


def systemd_env_file(value: object, field: str = "environment_files") -> Rendered:
    """``EnvironmentFile=``: a path, optionally ``-``-prefixed (a missing file is no error)."""
    text = str(value)
    if text.startswith("-"):
        return Rendered("-" + systemd_path(text[1:], field))
    return systemd_path(text, field)


def systemd_device(value: object, field: str = "gpu_devices") -> Rendered:
    """A ``DeviceAllow=`` device: a ``/dev`` path, or a ``char-``/``block-`` class (globs allowed)."""
    text = refuse_controls(value, field)
    if text.startswith("/"):
        return systemd_path(text, field)
    return Rendered(_matching(_DEVICE_CLASS, "device node or class", text, field).replace("%", "%%"))


def systemd_name(value: object, field: str = "unit") -> Rendered:
    """A unit or directory name (``StateDirectory=``, the unit's own name): one plain word."""
    return Rendered(_matching(_UNIT_NAME, "unit or directory name", value, field))


def user_name(value: object, field: str = "user") -> Rendered:
    """A user or group name as ``useradd`` takes it (``User=``, ``Group=``, the plist's)."""
    return Rendered(_matching(_USER_NAME, "user or group name", value, field))


def unit_text(value: object, field: str = "text", limit: int = UNIT_TEXT_MAX) -> Rendered:
    """Free text in a unit's comments or ``Description=``: one bounded line, ``%`` doubled.

    A trailing backslash is dropped: at the end of a line it would continue it, joining the
    next directive into this comment (a comment loses nothing by it, and a model whose name
    ends in one still deploys).
    """
    text = refuse_controls(value, field)
    if len(text) > limit:
        raise BadInput(f"longer than {limit} characters: {_shown(text)}", field=field)
    return Rendered(text.rstrip("\\").replace("%", "%%"))


# --------------------------------------------------------------------------- launchd plists


def xml_text(value: object, field: str = "text") -> Rendered:
    """Element content in a plist: XML-escaped; control characters refused (XML 1.0 has no
    way to write most of them, and a parser turns ``\\r`` into ``\\n``)."""
    return Rendered(escape(refuse_controls(value, field)))


def xml_comment(value: object, field: str = "text", limit: int = UNIT_TEXT_MAX) -> Rendered:
    """Text inside an XML comment, which has no escapes: ``--`` (and a ``-`` at either end,
    which could meet the template's own) would end or break it, so dashes are spaced apart
    there (a comment loses nothing by it, and a model named ``a--b`` still deploys)."""
    text = refuse_controls(value, field)
    if len(text) > limit:
        raise BadInput(f"longer than {limit} characters: {_shown(text)}", field=field)
    while "--" in text:
        text = text.replace("--", "- -")
    return Rendered(text.strip("-") or "_")


def plist_path(value: object, field: str = "path") -> Rendered:
    """An absolute path as plist element content."""
    return Rendered(escape(_checked_path(value, field)))


def launchd_label(value: object, field: str = "label") -> Rendered:
    """A launchd label (reverse-DNS: ``org.rigctl.llama-server``)."""
    return Rendered(_matching(_LAUNCHD_LABEL, "launchd label", value, field))


# --------------------------------------------------------------------------- INI (llama-server presets)

#: A preset's section name: rigctl writes a model's alias there (``[a-z0-9._~-]``, URL-safe);
#: llama-server rewrites a ``:tag`` at the end and ends the name at ``]``, so neither is allowed.
_INI_SECTION = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
#: llama-server's key grammar (common/preset.cpp: ``[a-zA-Z_] [a-zA-Z0-9_.-]*``).
_INI_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


def ini_section(value: object, field: str = "section") -> Rendered:
    """A section name of a llama-server presets file (a model's alias)."""
    return Rendered(_matching(_INI_SECTION, "preset name (letters, digits, . _ ~ -)", value, field))


def ini_key(value: object, field: str = "key") -> Rendered:
    """An option's name in a presets file: llama-server's argument name without its dashes."""
    return Rendered(_matching(_INI_KEY, "preset option name", value, field))


def ini_value(value: object, field: str = "value") -> Rendered:
    """A value in a llama-server presets file, which has no quoting or escapes: a value runs
    to the end of its line, less a ``;`` or ``#`` comment and the spaces around it, so a value
    holding either, or starting or ending with a space, or empty, could not be read back as
    written, and is refused."""
    text = refuse_controls(value, field)
    if not text or text != text.strip():
        raise BadInput(f"{_shown(text)} is empty or starts or ends with a space", field=field)
    bad = next((c for c in text if c in ";#" or c.isspace() and c != " "), None)
    if bad is not None:
        raise BadInput(f"{_shown(text)}: preset values cannot contain {bad!r}", field=field)
    return Rendered(text)


# --------------------------------------------------------------------------- other files


def env_file(entries: Mapping[str, object], field: str = "environment") -> str:
    """An environment file: ``NAME='value'`` lines, read by systemd's ``EnvironmentFile=`` and
    sourced by ``sh`` (the Hub download), so it is quoted for both: single quotes are literal
    in each; a value holding one, or any control character, is refused."""
    lines = []
    for name, value in entries.items():
        text = refuse_controls(value, field)
        if "'" in text:
            raise BadInput("environment file values cannot contain single quotes", field=field)
        lines.append(f"{env_name(name, field)}='{text}'\n")
    return "".join(lines)


def ollama_modelfile(
    model_path: str, parameters: Mapping[str, object], field: str = "model"
) -> str:
    """An Ollama Modelfile: ``FROM <path>`` and one ``PARAMETER name value`` line each.

    Ollama's parser reads a line per instruction and gives ``"`` a meaning, so the path must
    be absolute and plain (inner spaces are kept: the value runs to the end of the line),
    names are identifiers and values single plain words.
    """
    path = _checked_path(model_path, field, spaces=True)
    lines = [f"FROM {path}\n"]
    for name, value in parameters.items():
        word = refuse_controls(value, field)
        if not word or not _SAFE_WORD.match(word):
            raise BadInput(f"Modelfile parameter {_shown(word)} is not a plain word", field=field)
        lines.append(f"PARAMETER {env_name(name, field)} {word}\n")
    return "".join(lines)


# --------------------------------------------------------------------------- the environment

FILTERS = {
    "systemd_quote": systemd_quote,
    "systemd_command": systemd_command,
    "env_name": env_name,
    "systemd_env": systemd_env_value,
    "systemd_path": systemd_path,
    "systemd_paths": systemd_paths,
    "systemd_env_file": systemd_env_file,
    "systemd_device": systemd_device,
    "systemd_name": systemd_name,
    "user_name": user_name,
    "unit_text": unit_text,
    "xml": xml_text,
    "xml_comment": xml_comment,
    "plist_path": plist_path,
    "launchd_label": launchd_label,
    "ini_section": ini_section,
    "ini_key": ini_key,
    "ini_value": ini_value,
}


def _only_rendered(value: object) -> object:
    """Jinja's ``finalize``: every printed value must have come through one of :data:`FILTERS`."""
    if isinstance(value, Rendered):
        return value
    raise BadInput(
        f"a template printed {_shown(str(value))} without a rendering filter", field="template"
    )


def _load(name: str) -> str:
    resource = files(__name__).joinpath(name)
    if not resource.is_file():
        raise TemplateNotFound(name)
    return resource.read_text(encoding="utf-8")


_environment = Environment(
    loader=FunctionLoader(_load),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
    finalize=_only_rendered,
)
_environment.filters.update(FILTERS)


def render(name: str, **context: Any) -> str:
    from jinja2 import UndefinedError

    try:
        return _environment.get_template(name).render(**context)
    except UndefinedError as e:
        raise BadInput(f"template {name}: {e.message}", field="template") from None
