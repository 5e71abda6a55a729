"""Jinja2 templates, named after what they render (``llama-server.service.j2`` -> a systemd unit).

``render("llama-server.service.j2", ...)`` renders with ``StrictUndefined`` (a missing variable
is an error, never an empty string in a unit) and the filters units and plists need.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment, FunctionLoader, StrictUndefined, TemplateNotFound

from rigctl.errors import BadInput

_SAFE_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def systemd_quote(word: object) -> str:
    """Quote one argument for a systemd ``ExecStart=`` line (systemd.service(5), "Command lines").

    ``%`` starts a specifier and ``$`` an environment expansion, so both are doubled; words with
    spaces, quotes or backslashes are double-quoted with C-style escapes.
    """
    text = str(word).replace("%", "%%").replace("$", "$$")
    if text and _SAFE_WORD.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_env_value(value: object) -> str:
    """A value for ``Environment="NAME=value"``."""
    text = str(value).replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    if "\n" in text:
        raise BadInput("environment values cannot contain newlines", field="environment")
    return text


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
)
_environment.filters["systemd_quote"] = systemd_quote
_environment.filters["systemd_env"] = systemd_env_value
_environment.filters["xml"] = lambda value: escape(str(value))


def render(name: str, **context: Any) -> str:
    from jinja2 import UndefinedError

    try:
        return _environment.get_template(name).render(**context)
    except UndefinedError as e:
        raise BadInput(f"template {name}: {e.message}", field="template") from None
