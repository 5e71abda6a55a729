"""An Ollama release laid out as upstream publishes it, holding the TEST DOUBLE of the binary
(``tests/doubles/ollama``), for the tests and the ``ollama`` role scenario where the real
release cannot be fetched.

Upstream's layout (GitHub releases, ``ollama_base_url``'s default): ``v<version>/`` holds the
archives, ``.tar.zst`` since 0.14.0 (``.tgz`` before), and ``sha256sum.txt`` with one
``<sha256>  ./<name>`` line per file. The archive holds ``bin/ollama`` and ``lib/ollama/``.
Byte-identical on every call on one machine (fixed times, ``zstd -19 -T1``), so a second
converge sees the same sha256. Compressing needs the ``zstd`` command on this machine.

    python tests/doubles/ollama_archive.py DIR    # then RIGCTL_ROLETEST_OLLAMA_ARCHIVES=DIR
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path

from rigctl.roles.ollama import defaults, release

DOUBLE = Path(__file__).resolve().parent / "ollama"
ARCHIVE = release.archive_names("x86_64", "cpu", defaults.OLLAMA_VERSION)[0]


def tar_bytes(members: Mapping[str, tuple[bytes, int]]) -> bytes:
    """An uncompressed tar of ``{name: (data, mode)}``, owned by root, mtime 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def zstd(data: bytes) -> bytes:
    """``data`` compressed by the ``zstd`` command (as upstream's release workflow does)."""
    exe = shutil.which("zstd")
    if exe is None:
        raise RuntimeError("the zstd command is needed to make .tar.zst test archives")
    return subprocess.run(
        [exe, "-q", "-19", "-T1", "-c"], input=data, capture_output=True, check=True
    ).stdout


def compress(name: str, tar: bytes) -> bytes:
    """A tar packed as ``name`` says: ``.tar.zst`` with zstd, ``.tgz`` with gzip (mtime 0)."""
    if name.endswith(".tar.zst"):
        return zstd(tar)
    if name.endswith(".tgz"):
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
            gz.write(tar)
        return out.getvalue()
    raise ValueError(f"not an archive name: {name}")


def double_tar(readme: bytes = b"test double archive (rigctl role scenario)\n") -> bytes:
    return tar_bytes(
        {"bin/ollama": (DOUBLE.read_bytes(), 0o755), "lib/ollama/README": (readme, 0o644)}
    )


def sums_text(files: Mapping[str, bytes]) -> str:
    """``sha256sum.txt`` as upstream's workflow writes it (``find . -type f | xargs sha256sum``)."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  ./{name}\n" for name, data in files.items())


def write_release(
    root: Path, version: str, files: Mapping[str, bytes], sums: str | None = None
) -> Path:
    """``root/v<version>/`` holding ``files`` and their ``sha256sum.txt`` (``sums`` replaces
    it, to serve a wrong or malformed one); returns the release directory."""
    directory = root / f"v{version.removeprefix('v')}"
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    (directory / release.SUMS).write_text(sums_text(files) if sums is None else sums)
    return directory


def double_archive(directory: Path, version: str = defaults.OLLAMA_VERSION) -> Path:
    """The release ``version`` under ``directory`` in upstream's layout: its amd64 archive
    holding the double, and its ``sha256sum.txt``; returns ``directory`` (the base to serve)."""
    name = release.archive_names("x86_64", "cpu", version)[0]
    write_release(directory, version, {name: compress(name, double_tar())})
    return directory


def archive_path(directory: Path, version: str = defaults.OLLAMA_VERSION) -> Path:
    """Where :func:`double_archive` put the amd64 archive of ``version``."""
    name = release.archive_names("x86_64", "cpu", version)[0]
    return directory / f"v{version.removeprefix('v')}" / name


if __name__ == "__main__":
    print(double_archive(Path(sys.argv[1])))
