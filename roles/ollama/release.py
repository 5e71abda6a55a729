"""Ollama's Linux releases as upstream publishes them: archive names, URLs, ``sha256sum.txt``.

Upstream's release workflow (``.github/workflows/release.yaml`` of ollama/ollama) uploads, for
each tag ``v<version>``, to ``https://github.com/ollama/ollama/releases/download/v<version>/``:

- ``ollama-linux-<amd64|arm64>.tar.zst`` (``.tgz`` before 0.14.0, ollama/ollama#13651 "Linux:
  switch to zstd compression"), plus ``ollama-linux-amd64-rocm``, ``ollama-linux-arm64-jetpack5``
  and ``ollama-linux-arm64-jetpack6`` with the same extension; each is unpacked over the same
  tree (``bin/ollama``, ``lib/ollama/``);
- ``sha256sum.txt``, made by ``find . -type f -not -name sha256sum.txt | xargs sha256sum`` in
  the release's folder: one ``<sha256>  ./<name>`` line per file.

Upstream's ``install.sh`` picks the archives the same way: the base one; ``-jetpack6`` when
``/etc/nv_tegra_release`` says R36, ``-jetpack5`` for R35 (any other L4T release gets the base
archive only, with a warning there); ``-rocm`` on AMD GPUs.

``sha256sum.txt`` comes from the network: :func:`parse_sha256sums` reads it strictly (64
lowercase hex digits, two-character separator, a printable name; nothing else, not over
:data:`MAX_SUMS_BYTES`), and a name it lists twice with two sha256s refuses the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from rigctl.roles.ollama import defaults

from rigctl.errors import BadInput
from rigctl.fetch.http import Verified, download

#: The first release published as ``.tar.zst`` (earlier ones are ``.tgz``).
ZSTD_SINCE = (0, 14, 0)

#: The checksum file upstream publishes beside each release's archives.
SUMS = "sha256sum.txt"

#: The most a ``sha256sum.txt`` may be (upstream's lists about 20 files: 2 KB).
MAX_SUMS_BYTES = 64 * 1024

#: What ``ollama_version`` must look like (also the host-data schema's pattern).
VERSION_PATTERN = re.compile(r"^v?[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}(?:-[0-9A-Za-z.]{1,32})?\Z")

#: L4T (Jetson Linux) major release -> the JetPack archive's suffix, as upstream's install.sh.
JETPACKS = {"35": "jetpack5", "36": "jetpack6"}

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_SUMS_LINE = re.compile(r"([0-9a-f]{64}) [ *](?:\./)?([!-~][ -~]{0,254})")


def release_version(version: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a release version (``0.34.2``, ``v0.14.0-rc1``)."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise BadInput(
            f"must be an Ollama release version like {defaults.OLLAMA_VERSION}, got {version!r}"[:160],
            field="ollama_version",
        )
    major, minor, patch = version.removeprefix("v").split("-", 1)[0].split(".")
    return int(major), int(minor), int(patch)


def archive_extension(version: str) -> str:
    """``.tar.zst`` from 0.14.0 on, ``.tgz`` before (pre-releases count as their release)."""
    return ".tar.zst" if release_version(version) >= ZSTD_SINCE else ".tgz"


def jetpack(l4t_release: str | None) -> str | None:
    """The JetPack archive suffix for an L4T release (``"36.3.0"`` -> ``"jetpack6"``), or None
    (not a Jetson, or an L4T release upstream publishes no JetPack archive for)."""
    if not l4t_release:
        return None
    major = l4t_release.removeprefix("R").split(".", 1)[0]
    return JETPACKS.get(major)


def archive_names(
    arch: str,
    accelerator: str,
    version: str = defaults.OLLAMA_VERSION,
    l4t_release: str | None = None,
) -> list[str]:
    """The release archives a host needs, base first (upstream's names for ``version``).

    + arch: the host's machine (``x86_64``, ``aarch64``)
    + accelerator: rigctl's (``rocm`` adds the ROCm archive on amd64)
    + l4t_release: the Jetson's L4T release (fact ``JetsonRelease``): R35/R36 add JetPack's
    """
    arch_name = _ARCHES.get(arch)
    if arch_name is None:
        raise BadInput(f"Ollama publishes Linux builds for amd64 and arm64, not {arch}", field="arch")
    ext = archive_extension(version)
    base = f"ollama-linux-{arch_name}"
    names = [f"{base}{ext}"]
    if accelerator == "rocm" and arch_name == "amd64":
        names.append(f"{base}-rocm{ext}")
    suffix = jetpack(l4t_release) if arch_name == "arm64" else None
    if suffix:
        names.append(f"{base}-{suffix}{ext}")
    return names


def release_url(base_url: str = defaults.OLLAMA_BASE_URL, version: str = defaults.OLLAMA_VERSION) -> str:
    """Where a release's files are: ``<base>/v<version>`` (GitHub's layout)."""
    release_version(version)
    return f"{base_url.rstrip('/')}/v{version.removeprefix('v')}"


def archive_url(name: str, base_url: str = defaults.OLLAMA_BASE_URL, version: str = defaults.OLLAMA_VERSION) -> str:
    return f"{release_url(base_url, version)}/{name}"


def sums_url(base_url: str = defaults.OLLAMA_BASE_URL, version: str = defaults.OLLAMA_VERSION) -> str:
    return f"{release_url(base_url, version)}/{SUMS}"


def parse_sha256sums(data: bytes) -> dict[str, str]:
    """``{name: sha256}`` of a ``sha256sum.txt`` (``./`` dropped), or ValueError saying why not.

    Strict, as it comes from the network: at most :data:`MAX_SUMS_BYTES`, ASCII, every
    non-empty line ``<64 lowercase hex> <' ' or '*'><name>`` with a printable name (no control
    characters, so no CR either), at least one line, no name with two different sha256s.
    """
    if len(data) > MAX_SUMS_BYTES:
        raise ValueError(f"{len(data):,} bytes, more than the {MAX_SUMS_BYTES:,} a {SUMS} may be")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("not ASCII text") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        match = _SUMS_LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"line {number} is not '<sha256>  <name>': {ascii(line[:80])}")
        sha256, name = match.groups()
        if sums.setdefault(name, sha256) != sha256:
            raise ValueError(f"{ascii(name)} is listed twice with two different sha256s")
    if not sums:
        raise ValueError("lists no file")
    return sums


def _sums_refusal(path: Path) -> str | None:
    """``download``'s check of a fetched ``sha256sum.txt``: None when it parses."""
    with path.open("rb") as handle:
        data = handle.read(MAX_SUMS_BYTES + 1)
    try:
        parse_sha256sums(data)
    except ValueError as e:
        return f"not a {SUMS}: {e}"
    return None


def fetch_sha256sums(
    base_url: str,
    version: str,
    dest: Path,
    *,
    allow_http: bool = False,
    field: str = "ollama_base_url",
) -> tuple[Verified, dict[str, str]]:
    """The release's ``sha256sum.txt`` into ``dest`` (kept while it still parses), and its
    entries. The download policy's: https, or http to loopback (beyond it, only pinned
    sha256s can vouch for archives: give ``ollama_sha256``). DownloadError when it cannot be
    had or does not parse."""
    fetched = download(
        [sums_url(base_url, version)],
        dest,
        max_bytes=MAX_SUMS_BYTES,
        accept=_sums_refusal,
        allow_http=allow_http,
        field=field,
    )
    return fetched, parse_sha256sums(fetched.path.read_bytes())


def archive_sha256(name: str, pinned: Mapping[str, str], listed: Mapping[str, str]) -> str | None:
    """The sha256 an archive must have: host data's ``ollama_sha256`` wins over the release's
    ``sha256sum.txt``; None when neither names it."""
    return pinned.get(name) or listed.get(name)
