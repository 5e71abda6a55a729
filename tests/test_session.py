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
