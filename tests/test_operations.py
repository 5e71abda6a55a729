"""rigctl's own pyinfra operations, from facts to commands: one directory per operation, one file per case.

``tests/operations/<base import path>.<module>.<operation>/<case>.json`` holds the arguments, the
facts the host reports and the exact commands the operation must yield, or none and its
``noop_description`` when the host is already as wanted (pyinfra-testing's format).

Operations that read a file on the controller (``atomic_put`` hashes ``src``, ``verified_file``
takes its size) read real ones: ``src`` paths in the fixtures are relative to
``tests/operations/`` and point into its ``_local/`` folder.
"""

import gzip
import hashlib
import io
import os
import tarfile
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
    # the role's dnf path: tested by these fixtures only, not run on a real host
    ("rigctl.roles.toolchain", "setup_redhat.dnf_packages"),
    ("rigctl.roles.nvidia_driver", "repository.apt_repository"),
    ("rigctl.roles.nvidia_driver", "repository.dnf_repository"),
    ("rigctl.roles.nvidia_driver", "operations.apt_driver"),
    ("rigctl.roles.nvidia_driver", "operations.dnf_driver"),
    ("rigctl.roles.cuda_toolkit", "operations.debian_components"),
    ("rigctl.roles.rocm", "operations.amd_repository"),
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


#: A kept llama.cpp build as ``rigctl.fetch.builds`` keeps one: made here, byte for byte the same
#: each time (its sha256 is pinned in the install_prebuilt cases), never committed.
PREBUILT = TESTS_BASE / "_local" / "b6000-cpu-0123abcd.tar.gz"
PREBUILT_SHA256 = "e6447a9e392817b9bc44da262acca47fa126c1c055af5ce0f76488ceb7ddb73d"


def _make_prebuilt() -> bytes:
    members = [
        ("b6000-cpu-0123abcd", None, 0o755),
        ("b6000-cpu-0123abcd/bin", None, 0o755),
        ("b6000-cpu-0123abcd/bin/llama-server", b"#!/bin/sh\necho llama-server\n", 0o755),
        ("b6000-cpu-0123abcd/BUILD_INFO.json", b'{"build": "b6000-cpu-0123abcd"}\n', 0o644),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uname, info.gname = 1_700_000_000, mode, "root", "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as packed:
        packed.write(raw.getvalue())
    return out.getvalue()


@pytest.fixture(autouse=True)
def _controller_files(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _make_prebuilt()
    assert hashlib.sha256(data).hexdigest() == PREBUILT_SHA256, "this zlib packs differently"
    if not PREBUILT.exists() or PREBUILT.read_bytes() != data:
        PREBUILT.write_bytes(data)
    monkeypatch.setattr(pyinfra_testing.operations, "patch_files", _LocalFilesAndRealOnes)
    monkeypatch.chdir(TESTS_BASE)


for base_import_path, operation_path in OPERATIONS:
    name = f"{base_import_path}.{operation_path}"
    locals()[name] = make_operation_tests(base_import_path, operation_path, TESTS_BASE / name)
