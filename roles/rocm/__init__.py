"""Role ``rocm``: ROCm/HIP for a llama.cpp HIP build, from AMD's repository or Debian's own.

One job. The plan chooses (:class:`~rigctl.plan.gpu_software.Toolkit`, kind ``rocm``): the
pinned llama.cpp needs HIP 6.1, so Debian 13's own ROCm (5.7) is refused before anything
changes and AMD's repository is what serves a HIP build today; ``present`` installs nothing.
"""

from __future__ import annotations

from rigctl.roles.rocm import defaults, operations
from rigctl.roles.toolchain import defaults as toolchain_defaults
from rigctl.roles.toolchain import setup_debian

from rigctl.hostdata import role_value
from rigctl.plan.gpu_software import Toolkit
from rigctl.pyinfra_api import OperationError, deploy, host, server_facts

__all__ = ["defaults", "install", "packages"]


def packages(toolkit: Toolkit) -> list[str]:
    if toolkit.source == "present":
        return []
    return list(defaults.ROCM_DEBIAN_PACKAGES if toolkit.source == "debian" else defaults.ROCM_AMD_PACKAGES)


@deploy("rigctl rocm")
def install(toolkit: Toolkit, runtime_only: bool = False) -> None:
    """Install the plan's ROCm (``runtime_only`` changes nothing: HIP builds link the SDK's
    libraries, which the same packages carry).

    + toolkit: the plan's choice (``plan.gpu_software.toolkit``)
    """
    if toolkit.kind != "rocm":
        raise OperationError(f"rocm: not a ROCm toolkit: {toolkit.kind}")
    wanted = packages(toolkit)
    if not wanted:
        return
    if not host.get_fact(server_facts.Which, command="apt-get"):
        raise OperationError(
            "rocm: rigctl installs ROCm with apt (Debian, Ubuntu); install it yourself and set "
            "rocm: present"
        )
    if toolkit.source == "amd":
        if toolkit.repository is None or toolkit.version is None:
            raise OperationError("rocm: the plan names no AMD repository suite or version")
        operations.amd_repository(
            name=f"rocm: AMD's ROCm {toolkit.version} repository",
            base_url=role_value(host.data, "rocm_repo_base_url", defaults.ROCM_REPO_BASE_URL),
            version=toolkit.version,
            suite=toolkit.repository,
            key_url=defaults.ROCM_REPO_KEY_URL,
        )
    setup_debian.install(
        wanted,
        toolchain_defaults.TOOLCHAIN_APT_CACHE_TIME,
        toolchain_defaults.TOOLCHAIN_APT_LOCK_TIMEOUT,
        name=f"rocm: {' '.join(wanted)}",
    )
