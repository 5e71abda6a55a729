"""Errors that reach the user as one line, with the exit code the CLI uses."""

from __future__ import annotations

EXIT_OK = 0
EXIT_HOST_FAILED = 1
EXIT_BAD_INPUT = 2


class RigctlError(Exception):
    """An error the user can act on; ``str()`` is the one-line message."""

    exit_code = EXIT_HOST_FAILED


class BadInput(RigctlError):
    """Input rejected before any host was touched (exit 2).

    ``host`` and ``field`` name where the problem is, so the message reads
    ``host gpu1: field context: must be a positive integer, got -5``.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, host: str | None = None, field: str | None = None):
        self.host = host
        self.field = field
        self.detail = message
        prefix = ""
        if host:
            prefix += f"host {host}: "
        if field:
            prefix += f"field {field}: "
        super().__init__(prefix + message)


class InventoryError(BadInput):
    """The inventory could not be loaded (syntax error, bad host entry, nothing to run on)."""


class LabError(RigctlError):
    """The local lab cannot do what was asked (missing tool, not root, boot failed)."""

    exit_code = EXIT_BAD_INPUT
