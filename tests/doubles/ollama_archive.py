"""Upstream's Ollama release archive layout (``bin/ollama``, ``lib/ollama/``) holding the TEST
DOUBLE of the binary (``tests/doubles/ollama``), for the ``ollama`` role scenario where the real
archive cannot be fetched. Byte-identical on every call (fixed times), so a second converge
sees the same sha256.

    python tests/doubles/ollama_archive.py DIR    # then RIGCTL_ROLETEST_OLLAMA_ARCHIVES=DIR
"""

from __future__ import annotations

import gzip
import io
import sys
import tarfile
from pathlib import Path

DOUBLE = Path(__file__).resolve().parent / "ollama"
ARCHIVE = "ollama-linux-amd64.tgz"


def double_archive(directory: Path) -> Path:
    """Write ``DIRECTORY/ollama-linux-amd64.tgz`` holding the double; return the directory."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in (
            ("bin/ollama", DOUBLE.read_bytes(), 0o755),
            ("lib/ollama/README", b"test double archive (rigctl role scenario)\n", 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    directory.mkdir(parents=True, exist_ok=True)
    with (
        (directory / ARCHIVE).open("wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz,
    ):
        gz.write(raw.getvalue())
    return directory


if __name__ == "__main__":
    print(double_archive(Path(sys.argv[1])))
