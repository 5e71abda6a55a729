"""The one door to pyinfra.

Every use of pyinfra in rigctl goes through this package: the building blocks that
facts and roles need (re-exported below), and the run machinery the CLI needs:
load an inventory the way the ``pyinfra`` CLI does, connect, prepare each host's
operations *in parallel*, run them, and turn the outcome into a :class:`RunSummary`.

Why a door: pyinfra's Python API moves between releases (``add_deploy`` refuses to run
under the CLI, ``State.init`` changed signature in 3.x, op ordering differs between CLI
and API mode). Keeping it in one place means one package to read when upgrading
``pyinfra~=3.10``, and a test (``tests/test_layout.py``) makes sure no other module
imports pyinfra directly.

This module is the face: import from ``rigctl.pyinfra_api``, never from its parts. The parts,
one job each:

- ``inventory``: load an inventory as the ``pyinfra`` CLI does and check it (duplicate hosts,
  host data, pinned SSH host keys); :class:`SSHSettings` for tools with their own SSH client;
  ``--limit`` host selection.
- ``results``: :class:`OpResult`, :class:`HostResult`, :class:`RunSummary` (plain data).
- ``session``: :class:`Session`, one run: connect, prepare per host in parallel, run, summarise.
- ``remote``: I/O on one connected host outside operations (read or fetch a file, run a
  command or stream its output, tunnel to an endpoint) and whether its connection was lost.
- ``patch``: the one replaced pyinfra internal (an operation that raises fails its host only),
  with the check that pyinfra still has that function with the expected signature. It is
  installed when this package is imported (below), as it always was.

gevent is patched before pyinfra is imported: pyinfra's parallelism is greenlets. Importing
any part imports this module first, so that order holds however the package is entered.
"""

from __future__ import annotations

from rigctl import _gevent

_gevent.patch()

# ruff: noqa: E402  (imports must follow the gevent patch)
from pyinfra import context as _context
from pyinfra.api import (
    FactBase,
    FileUploadCommand,
    FunctionCommand,
    Host,
    Inventory,
    MaskString,
    OperationError,
    QuoteString,
    ShortFactBase,
    StringCommand,
    deploy,
    operation,
)
from pyinfra.facts import apt as apt_facts
from pyinfra.facts import deb as deb_facts
from pyinfra.facts import files as file_facts
from pyinfra.facts import rpm as rpm_facts
from pyinfra.facts import server as server_facts
from pyinfra.operations import apt, dnf, files, launchd, pip, server, systemd

from rigctl.pyinfra_api import patch as _patch
from rigctl.pyinfra_api.inventory import SSHSettings, load_inventory, select_hosts, ssh_settings
from rigctl.pyinfra_api.reboot import reboot
from rigctl.pyinfra_api.remote import (
    CONNECTION_LOST,
    connection_lost,
    endpoint_from_controller,
    fetch_file,
    read_file,
    run_command,
    stream_command,
)
from rigctl.pyinfra_api.results import HostResult, OpResult, RunSummary
from rigctl.pyinfra_api.session import OperationHook, Session

__all__ = [
    # building blocks for facts and roles
    "FactBase",
    "ShortFactBase",
    "StringCommand",
    "QuoteString",
    "MaskString",
    "FunctionCommand",
    "FileUploadCommand",
    "OperationError",
    "operation",
    "deploy",
    "host",
    "apt",
    "dnf",
    "files",
    "launchd",
    "pip",
    "server",
    "systemd",
    "reboot",
    "apt_facts",
    "deb_facts",
    "file_facts",
    "rpm_facts",
    "server_facts",
    # running
    "Host",
    "Inventory",
    "Session",
    "OperationHook",
    "HostResult",
    "OpResult",
    "RunSummary",
    "load_inventory",
    "read_file",
    "fetch_file",
    "endpoint_from_controller",
    "run_command",
    "stream_command",
    "select_hosts",
    "SSHSettings",
    "ssh_settings",
    "CONNECTION_LOST",
    "connection_lost",
]

#: The host being prepared (greenlet-local inside :meth:`Session.prepare`).
host: Host = _context.host

# An operation that raises fails its host only; a RuntimeError here if pyinfra changed under it.
_patch.install()
