"""Session: an operation that raises instead of failing fails its host only, with the cause.

paramiko raises EOFError when an SSH connection drops during an SFTP upload; pyinfra does not
catch it, and before the adapter's guard it stopped the whole run with no summary (found by
``tests/test_faults.py``, a host powered off while its model was copied). Here an upload whose
source raises the same error stands in for the dropped connection, on ``@local``.
"""

from __future__ import annotations

import io
from collections.abc import Generator
from pathlib import Path

from rigctl.pyinfra_api import (
    CONNECTION_LOST,
    FileUploadCommand,
    Session,
    load_inventory,
    operation,
)


class _Dropped(io.BytesIO):
    def read(self, *args: object) -> bytes:
        raise EOFError


@operation()
def _upload(dest: str) -> Generator[object, None, None]:
    yield FileUploadCommand(_Dropped(b"x"), dest)


def test_an_operation_that_raises_fails_its_host_with_the_cause(tmp_path: Path) -> None:
    dest = tmp_path / "uploaded"
    with Session(load_inventory("@local")) as session:
        session.prepare(lambda: _upload(name="upload", dest=str(dest)))
        session.run()  # raised EOFError out of pyinfra's run before the guard
        summary = session.summary()
    result = summary.hosts["@local"]
    assert result.status == "failed"
    assert result.error == f"operation failed: upload: {CONNECTION_LOST}"
    assert [op.name for op in result.failed_ops] == ["upload"]
    assert summary.exit_code == 1 and not dest.exists()


def test_a_second_session_over_the_same_inventory_orders_only_its_own_operations() -> None:
    """provision runs its waves as Sessions over one inventory: the builders first, then the
    hosts that install their build (fewer operations). pyinfra keeps the operation order on
    each Host, so the second wave failed with a KeyError in pyinfra's ordering (seen on the
    lab's CUDA fleet) until each Session started its hosts' order afresh."""
    from rigctl.pyinfra_api import server

    inventory = load_inventory("@local")
    with Session(inventory) as session:
        session.prepare(lambda: [server.shell(name=f"first {i}", commands=["true"]) for i in range(4)])
        session.run()
        assert session.summary().exit_code == 0
    with Session(inventory) as session:
        session.prepare(lambda: [server.shell(name=f"second {i}", commands=["true"]) for i in range(2)])
        session.run()
        summary = session.summary()
    assert summary.exit_code == 0
    assert summary.hosts["@local"].changed_ops == ["second 0", "second 1"]
