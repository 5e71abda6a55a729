"""The one change rigctl makes to pyinfra's internals, and the check that guards it.

pyinfra runs each host's operation through ``pyinfra.api.operations._run_host_op_with_context``
(on a greenlet per host). It turns OSError, SSHException and timeouts into a failed operation,
but a connection lost during an SFTP transfer raises paramiko's EOFError: it escaped the
host's greenlet, stopped every host's remaining operations and left no summary (a host powered
off while its model was copied aborted the whole provision). :func:`install` replaces that
function with :func:`_run_host_op_guarded`, which fails that one host instead.

The function is private, so a pyinfra release may rename, remove or reshape it. Rather than
trusting a version number, :func:`checked_target` looks at the function itself: it must exist
and take exactly the parameters (names and kinds) the guard passes on. Anything else raises a
RuntimeError naming the function, both signatures and the installed pyinfra, when
``rigctl.pyinfra_api`` is imported: loudly, before any host is touched.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import metadata
from typing import Any

from pyinfra.api import Host, State
from pyinfra.api import operations as _operations

from rigctl.pyinfra_api._support import one_line
from rigctl.pyinfra_api.remote import CONNECTION_LOST, connection_lost
from rigctl.pyinfra_api.session import _Recorder

#: Where the replaced function lives, and its name.
TARGET_MODULE = _operations
TARGET_NAME = "_run_host_op_with_context"
TARGET = f"{TARGET_MODULE.__name__}.{TARGET_NAME}"

_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD
#: Its parameters (name, kind) as the guard calls it: ``(state, host, op_hash)``.
EXPECTED_PARAMETERS: tuple[tuple[str, inspect._ParameterKind], ...] = (
    ("state", _POSITIONAL_OR_KEYWORD),
    ("host", _POSITIONAL_OR_KEYWORD),
    ("op_hash", _POSITIONAL_OR_KEYWORD),
)

RunHostOp = Callable[[State, Host, str], Any]

#: pyinfra's own function, once checked and replaced.
_unguarded: RunHostOp | None = None


def expected_signature() -> inspect.Signature:
    return inspect.Signature([inspect.Parameter(n, k) for n, k in EXPECTED_PARAMETERS])


def pyinfra_version() -> str:
    try:
        return metadata.version("pyinfra")
    except metadata.PackageNotFoundError:  # pragma: no cover - pyinfra imported but not installed
        return "(version unknown)"


def _mismatch(problem: str, found: str) -> RuntimeError:
    return RuntimeError(
        f"rigctl cannot patch {TARGET}: pyinfra {pyinfra_version()} {problem}. "
        f"Expected signature: {expected_signature()}; found: {found}. "
        "rigctl replaces this private pyinfra function so that an operation that raises fails "
        "its host only (rigctl/pyinfra_api/patch.py); install the pyinfra version pyproject.toml "
        "pins, or port the patch to this one."
    )


def checked_target() -> RunHostOp:
    """pyinfra's ``_run_host_op_with_context``, once it is known to be the function the guard
    was written for; a RuntimeError saying what differs otherwise."""
    found = getattr(TARGET_MODULE, TARGET_NAME, None)
    if found is None:
        raise _mismatch("has no such function", "nothing")
    if found is _run_host_op_guarded:  # already installed: pyinfra's was checked then
        assert _unguarded is not None
        return _unguarded
    if not callable(found):
        raise _mismatch("has it, but it is not a function", repr(found))
    try:
        signature = inspect.signature(found)
    except (TypeError, ValueError) as e:
        raise _mismatch("has it, with a signature that cannot be read", one_line(e)) from None
    parameters = tuple((p.name, p.kind) for p in signature.parameters.values())
    if parameters != EXPECTED_PARAMETERS:
        raise _mismatch("has it with other parameters", str(signature))
    return found


def install() -> None:
    """Replace pyinfra's function with the guard (once; checked first, untouched on failure)."""
    global _unguarded
    if installed():
        return
    _unguarded = checked_target()
    setattr(TARGET_MODULE, TARGET_NAME, _run_host_op_guarded)


def installed() -> bool:
    return getattr(TARGET_MODULE, TARGET_NAME, None) is _run_host_op_guarded


def _run_host_op_guarded(state: State, host: Host, op_hash: str) -> bool:
    """One host's operation, where anything it raises fails that host only.

    pyinfra turns OSError, SSHException and timeouts into a failed operation, but a connection
    lost during an SFTP transfer raises paramiko's EOFError: it escaped the host's greenlet,
    stopped every host's remaining operations and left no summary (a host powered off while its
    model was copied aborted the whole provision).
    """
    run_host_op = _unguarded
    assert run_host_op is not None, "installed by install(), which sets it first"
    try:
        return bool(run_host_op(state, host, op_hash))
    except Exception as e:
        # paramiko raises EOFError when the socket closed under it
        why = CONNECTION_LOST if isinstance(e, EOFError) or connection_lost(host) else one_line(e)
        for handler in state.callback_handlers:
            if isinstance(handler, _Recorder):
                handler.raised[host.name] = (op_hash, why)
        state.trigger_callbacks("operation_host_error", host, op_hash)
        return False
