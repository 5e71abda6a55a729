"""rigctl's own pyinfra operations, from facts to commands: one directory per operation, one file per case.

``tests/operations/<base import path>.<module>.<operation>/<case>.json`` holds the arguments, the
facts the host reports and the exact commands the operation must yield, or none and its
``noop_description`` when the host is already as wanted (pyinfra-testing's format).

Operations that read a file on the controller (``atomic_put`` hashes ``src``, ``verified_file``
takes its size) read real ones: ``src`` paths in the fixtures are relative to
``tests/operations/`` and point into its ``_local/`` folder.
"""

import os
from pathlib import Path

import pyinfra_testing.operations
import pytest
from pyinfra_testing.operations import make_operation_tests
from pyinfra_testing.util import patch_files

TESTS_BASE = Path(__file__).parent / "operations"

OPERATIONS = [
    ("rigctl.operations", "files.atomic_put"),
    ("rigctl.operations", "files.secret_file"),
    ("rigctl.operations", "files.verified_file"),
    ("rigctl.roles.ollama", "operations.archives"),
    ("rigctl.roles.ollama", "operations.model"),
    ("rigctl.roles.llamacpp", "operations.build"),
    ("rigctl.roles.llamacpp", "operations.install_prebuilt"),
    ("rigctl.roles.vllm", "operations.virtualenv"),
    ("rigctl.roles.vllm", "operations.hub_snapshot"),
]

_real_stat = os.stat


class _LocalFilesAndRealOnes(patch_files):
    """pyinfra-testing's fake controller files, letting real files through.

    Its fake ``stat`` replaces ``os.stat`` itself during each test and takes no
    ``follow_symlinks``, which ``pathlib`` passes: ``Path(src).exists()`` and ``.stat()`` (how
    rigctl's operations look at ``src``) raised TypeError. Paths it does not fake get the real
    ``os.stat``.
    """

    def stat(self, pathname, *, dir_fd=None, follow_symlinks=True):
        if self.exists(pathname):
            return super().stat(os.path.normpath(pathname))
        return _real_stat(pathname, dir_fd=dir_fd, follow_symlinks=follow_symlinks)


@pytest.fixture(autouse=True)
def _controller_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyinfra_testing.operations, "patch_files", _LocalFilesAndRealOnes)
    monkeypatch.chdir(TESTS_BASE)


for base_import_path, operation_path in OPERATIONS:
    name = f"{base_import_path}.{operation_path}"
    locals()[name] = make_operation_tests(base_import_path, operation_path, TESTS_BASE / name)
