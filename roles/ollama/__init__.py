"""Role ``ollama``: Ollama installed the way upstream does, configured by a systemd drop-in.

One job: an Ollama server serving one model, with the plan's settings. The release archives
(:mod:`rigctl.roles.ollama.release`: ``archive_names``, ``archive_url``, checked against the
release's ``sha256sum.txt``) are fetched on the controller and unpacked on the host into
``/usr/local`` as upstream's installer does (``.tar.zst`` with ``zstd``, installed first on
apt and dnf hosts); the ``ollama`` user is in the ``render`` and ``video`` groups as
upstream's is; upstream's ``ollama.service`` is written only when absent; rigctl's settings live
in ``ollama.service.d/rigctl.conf`` (re-running upstream's installer overwrites its unit, never
the drop-in); a GGUF rigctl fetched is imported with ``ollama create`` from a Modelfile, so the
quant and context are the plan's.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import StringIO
from typing import Any

from rigctl.roles.ollama import defaults
from rigctl.roles.ollama.operations import archives as archives_op
from rigctl.roles.ollama.operations import model
from rigctl.roles.ollama.release import archive_names, archive_url, sums_url

from rigctl.operations.files import atomic_put
from rigctl.pyinfra_api import (
    apt,
    deploy,
    dnf,
    file_facts,
    files,
    host,
    server,
    server_facts,
    systemd,
)

__all__ = [
    "DROPIN",
    "UNIT",
    "archive_names",
    "archive_url",
    "configure",
    "import_model",
    "install",
    "install_dir",
    "models_dir",
    "sums_url",
]

UNIT = "ollama"
DROPIN = "/etc/systemd/system/ollama.service.d/rigctl.conf"


def install_dir(host_obj: Any) -> str:
    """Where the archives are unpacked on a host (host data ``ollama_install_dir``)."""
    return str(host_obj.data.get("ollama_install_dir", defaults.OLLAMA_INSTALL_DIR))


def models_dir(host_obj: Any) -> str:
    """Where Ollama keeps its models on a host (host data ``ollama_models_dir``)."""
    return str(host_obj.data.get("ollama_models_dir", defaults.OLLAMA_MODELS_DIR))


@deploy("rigctl ollama")
def install(archives: Sequence[tuple[str, str]], user_groups: Sequence[str] = ("render", "video")) -> Any:
    """Install Ollama from release archives on the controller; returns the install operation.

    + archives: ``(local path, sha256)`` of each archive, base first
    + user_groups: groups of the ``ollama`` user that exist on the host (GPU device access)

    ``.tar.zst`` archives (upstream's since 0.14.0) need ``zstd`` on the host: installed first
    with apt or dnf when it is missing; elsewhere it must already be there (the install refuses
    before it touches the installed tree otherwise).
    """
    zstd = any(path.endswith(".tar.zst") for path, _sha in archives)
    if zstd and not host.get_fact(server_facts.Which, command="zstd"):
        if host.get_fact(server_facts.Which, command="apt-get"):
            apt.packages(
                name="ollama: zstd",
                packages=list(defaults.OLLAMA_APT_PACKAGES),
                update=True,
                cache_time=3600,
                no_recommends=True,
            )
        elif host.get_fact(server_facts.Which, command="dnf"):
            dnf.packages(name="ollama: zstd", packages=list(defaults.OLLAMA_DNF_PACKAGES))
    server.group(name="ollama: group", group=defaults.OLLAMA_USER, system=True)
    server.user(
        name="ollama: user",
        user=defaults.OLLAMA_USER,
        group=defaults.OLLAMA_USER,
        groups=list(user_groups) or None,
        system=True,
        home=defaults.OLLAMA_HOME,
        shell="/bin/false",
        create_home=True,
    )
    names = ", ".join(path.rsplit("/", 1)[-1] for path, _sha in archives)
    return archives_op(name=f"ollama: install {names}", srcs=list(archives), install_dir=install_dir(host))


@deploy("rigctl ollama service")
def configure(
    dropin_text: str,
    base_unit_text: str,
    changed_inputs: Sequence[Any] = (),
) -> Any:
    """Upstream's unit when missing, rigctl's drop-in, and a restart when either or an input changed.

    + dropin_text: the rendered ``ollama.service.d/rigctl.conf``
    + base_unit_text: upstream's ``ollama.service`` (written only if no unit exists)
    + changed_inputs: operations whose change must restart Ollama (the installed archive)
    """
    files.directory(
        name="ollama: models directory", path=models_dir(host), user=defaults.OLLAMA_USER, group=defaults.OLLAMA_USER, mode="0750"
    )
    base_unit = None
    if not host.get_fact(file_facts.File, path="/etc/systemd/system/ollama.service"):
        base_unit = atomic_put(
            name="ollama: upstream unit", src=StringIO(base_unit_text), dest="/etc/systemd/system/ollama.service"
        )
    dropin = atomic_put(name="ollama: rigctl drop-in", src=StringIO(dropin_text), dest=DROPIN)
    triggers = [op for op in (base_unit, dropin, *changed_inputs) if op is not None]
    if any(op.will_change for op in triggers):
        systemd.service(
            name="ollama: restart on change",
            service="ollama.service",
            running=True,
            enabled=True,
            restarted=True,
            daemon_reload=True,
        )
    return systemd.service(name="ollama: running", service="ollama.service", running=True, enabled=True)


@deploy("rigctl ollama model")
def import_model(model_name: str, modelfile: str, server_address: str) -> Any:
    """Import a GGUF into Ollama under ``model_name`` (``ollama create`` from the Modelfile).

    + model_name: the model's Ollama name
    + modelfile: Modelfile text (``FROM /path.gguf``, ``PARAMETER num_ctx ...``)
    + server_address: ``host:port`` where the Ollama server listens
    """
    return model(
        name=f"ollama: import {model_name}",
        model_name=model_name,
        modelfile=modelfile,
        server=server_address,
        state_dir="/var/lib/rigctl/ollama",
    )
