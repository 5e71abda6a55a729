"""Options several commands share, parsed once."""

from __future__ import annotations

from typing import Any

import click


class HostList(click.ParamType):
    """``--limit a,b,gpus``: host or group names, comma-separated; empty parts dropped."""

    name = "hosts"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        names = [part.strip() for part in str(value).split(",") if part.strip()]
        if not names:
            self.fail("names no host or group", param, ctx)
        return names


#: ``--limit``: only these hosts or groups
limit_option = click.option(
    "--limit", type=HostList(), default=None, help="Only these hosts or groups (comma-separated)."
)
