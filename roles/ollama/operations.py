"""Operations of the ``ollama`` role: install a release archive, import a GGUF as a model."""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Generator
from io import BytesIO
from pathlib import Path

from rigctl.pyinfra_api import (
    FileUploadCommand,
    QuoteString,
    StringCommand,
    host,
    operation,
    server_facts,
)


@operation()
def archive(src: str, sha256: str, install_dir: str) -> Generator[object, None, None]:
    """Unpack an Ollama release archive into ``install_dir`` unless that archive is installed.

    + src: the archive on the controller (``ollama-linux-<arch>.tgz``)
    + sha256: its sha256, recorded in ``<install_dir>/lib/ollama/.rigctl-archive``
    + install_dir: where ``bin/`` and ``lib/`` go (``/usr/local`` as upstream)

    Upstream's installer removes the old ``lib/ollama`` first (libraries of several versions
    must not mix); so does this, then unpacks from a staging copy of the archive.
    """
    marker = f"{install_dir}/lib/ollama/.rigctl-archive"
    installed = host.get_fact(server_facts.Command, f"cat {shlex.quote(marker)} 2>/dev/null || true")
    if installed == sha256 and host.get_fact(server_facts.Which, command="ollama"):
        host.noop(f"ollama archive {sha256[:12]} is installed")
        return
    staged = f"/var/cache/rigctl/{Path(src).name}"
    yield StringCommand("mkdir", "-p", "/var/cache/rigctl", QuoteString(f"{install_dir}/bin"))
    yield FileUploadCommand(src, staged)
    yield StringCommand("rm", "-rf", QuoteString(f"{install_dir}/lib/ollama"))
    yield StringCommand("tar", "-xzf", QuoteString(staged), "-C", QuoteString(install_dir))
    yield StringCommand("sh", "-c", QuoteString(f"echo {sha256} > {shlex.quote(marker)}"))
    yield StringCommand("rm", "-f", QuoteString(staged))


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
        "env", f"OLLAMA_HOST={server}", "ollama", "create", QuoteString(model_name), "-f", QuoteString(path)
    )
