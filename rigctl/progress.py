"""How the commands' cores report progress: ``report(host_or_None, stage, detail)``.

The CLI renders these lines (on stderr); library use passes :func:`quiet`.
"""

from __future__ import annotations

from collections.abc import Callable

#: A stage reporter: ``report(host_or_None, stage, detail)``.
Reporter = Callable[[str | None, str, str], None]


def quiet(_host: str | None, _stage: str, _detail: str) -> None:
    """The reporter that reports nothing (library use)."""
    return None
