"""Operations of the ``ollama`` role: install a release archive, import a GGUF as a model."""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Generator, Sequence
from io import BytesIO
from pathlib import Path

from rigctl.operations.files import check_sha256
from rigctl.pyinfra_api import (
    FileUploadCommand,
    QuoteString,
    StringCommand,
    host,
    operation,
    server_facts,
)

#: An archive as the role installs it: upstream's name, ``.tar.zst`` (0.14.0 on) or ``.tgz``.
ARCHIVE_NAME = re.compile(r"ollama-[A-Za-z0-9._-]{1,120}\.(tar\.zst|tgz)")

#: Where archives are staged on the host while they are installed.
STAGING_DIR = "/var/cache/rigctl"


def unpack_command(archive: str, install_dir: str) -> StringCommand:
    """``tar`` for one staged archive, by its extension: ``.tar.zst`` through ``zstd -d``
    (``--use-compress-program``: GNU tar before 1.31, RHEL 8's 1.30, has no ``--zstd``), ``.tgz``
    through gzip. ``--no-same-owner``: files belong to root whatever the archive says; the modes
    are the archive's (``bin/ollama`` must stay executable by the ``ollama`` user)."""
    match = ARCHIVE_NAME.fullmatch(Path(archive).name)
    if match is None:
        raise ValueError(f"not an Ollama release archive (.tar.zst or .tgz): {archive!r}")
    how = ["--use-compress-program=zstd", "-xf"] if match.group(1) == "tar.zst" else ["-xzf"]
    return StringCommand(
        "tar", "--no-same-owner", *how, QuoteString(archive), "-C", QuoteString(install_dir)
    )


def _verify_upload(copy: str, sha256: str) -> StringCommand:
    """The staged copy hashed on the host: removed, and the install stopped, unless it is
    exactly the archive the controller verified."""
    q = shlex.quote(copy)
    return StringCommand(
        "sh",
        "-c",
        QuoteString(
            f"got=$(sha256sum {q} | cut -d' ' -f1);"
            f' [ "$got" = {sha256} ]'
            f" || {{ rm -f {q}; echo {shlex.quote(f'sha256 mismatch after upload: {copy}')} >&2; exit 1; }}"
        ),
    )


@operation()
def archives(
    srcs: Sequence[tuple[str, str]], install_dir: str
) -> Generator[object, None, None]:
    """Unpack Ollama's release archives into ``install_dir`` unless exactly these are installed.

    + srcs: ``(path on the controller, sha256)`` of each archive, base first
      (``ollama-linux-amd64.tar.zst``, then ``ollama-linux-amd64-rocm.tar.zst`` on AMD GPUs, or
      ``ollama-linux-arm64-jetpack6.tar.zst`` on a JetPack 6 Jetson; ``.tgz`` before 0.14.0)
    + install_dir: where ``bin/`` and ``lib/`` go (``/usr/local`` as upstream)

    Every archive is uploaded to ``/var/cache/rigctl`` and hashed on the host first; ``zstd``
    must be there for ``.tar.zst`` (the role installs it). Only then, as upstream's installer:
    the old ``lib/ollama`` is removed once (libraries of several versions must not mix), then
    every archive is unpacked over the same tree (ROCm's or JetPack's adds its libraries beside
    the base ones). Their sha256s, one per line, are recorded in
    ``<install_dir>/lib/ollama/.rigctl-archive`` last, so an interrupted install is redone.
    """
    for path, sha256 in srcs:
        check_sha256(sha256)
        unpack_command(path, install_dir)  # refuses a name that is no release archive
    marker = f"{install_dir}/lib/ollama/.rigctl-archive"
    wanted = "\n".join(sha256 for _path, sha256 in srcs)
    binary = f"{install_dir}/bin/ollama"
    # the binary this install_dir holds, not whichever `ollama` is first on PATH
    installed = host.get_fact(
        server_facts.Command,
        f"[ -x {shlex.quote(binary)} ] && cat {shlex.quote(marker)} 2>/dev/null || true",
    )
    if installed == wanted:
        host.noop(f"ollama archives {', '.join(sha[:12] for _p, sha in srcs)} are installed")
        return
    yield StringCommand("mkdir", "-p", STAGING_DIR, QuoteString(f"{install_dir}/bin"))
    staged = [f"{STAGING_DIR}/{Path(path).name}" for path, _sha in srcs]
    for (path, sha256), copy in zip(srcs, staged, strict=True):
        yield FileUploadCommand(path, copy)
        yield _verify_upload(copy, sha256)
    if any(copy.endswith(".tar.zst") for copy in staged):
        yield StringCommand(
            "sh",
            "-c",
            QuoteString(
                "command -v zstd >/dev/null"
                " || { echo 'ollama: zstd is needed to unpack .tar.zst archives' >&2; exit 1; }"
            ),
        )
    yield StringCommand("rm", "-rf", QuoteString(f"{install_dir}/lib/ollama"))
    for copy in staged:
        yield unpack_command(copy, install_dir)
    shas = " ".join(sha for _p, sha in srcs)
    yield StringCommand("sh", "-c", QuoteString(f"printf '%s\\n' {shas} > {shlex.quote(marker)}"))
    yield StringCommand("rm", "-f", *(QuoteString(copy) for copy in staged))


@operation()
def model(model_name: str, modelfile: str, server: str, state_dir: str) -> Generator[object, None, None]:
    """Import a model into Ollama from a Modelfile (``ollama create``), once per Modelfile.

    + model_name: the model's name in Ollama (``gemma-3-270m:q4_k_m``)
    + modelfile: the Modelfile text (``FROM /path.gguf`` and ``PARAMETER`` lines)
    + server: ``host:port`` of the running Ollama server (``OLLAMA_HOST`` for the CLI)
    + state_dir: where rigctl keeps the Modelfile it imported, to know when it changed
    """
    digest = hashlib.sha256(modelfile.encode()).hexdigest()
    safe = model_name.replace("/", "_").replace(":", "_")
    path = f"{state_dir}/{safe}.Modelfile"
    recorded = host.get_fact(
        server_facts.Command,
        f"sha256sum {shlex.quote(path)} 2>/dev/null | cut -d' ' -f1; "
        f"OLLAMA_HOST={shlex.quote(server)} ollama list 2>/dev/null | awk 'NR>1 {{print $1}}' || true",
    ) or ""
    lines = recorded.splitlines()
    if lines and lines[0] == digest and model_name in lines[1:]:
        host.noop(f"ollama model {model_name} is imported")
        return
    yield StringCommand("mkdir", "-p", QuoteString(state_dir))
    yield FileUploadCommand(BytesIO(modelfile.encode()), path)
    # the server was (re)started just before: give it up to a minute to answer
    yield StringCommand(
        "sh", "-c",
        QuoteString(
            f"for i in $(seq 60); do OLLAMA_HOST={shlex.quote(server)} ollama list >/dev/null 2>&1 && exit 0;"
            " sleep 1; done; echo 'ollama server not answering' >&2; exit 1"
        ),
    )
    yield StringCommand(
        "env", QuoteString(f"OLLAMA_HOST={server}"), "ollama", "create", QuoteString(model_name), "-f", QuoteString(path)
    )
