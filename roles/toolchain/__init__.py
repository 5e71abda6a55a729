"""Role ``toolchain``: the compilers and tools a from-source llama.cpp build needs.

One job: make a host able to run ``cmake --build``. Which packages, per OS family, is in
``defaults.py``; how, per OS, in ``setup_<os>.py``.
"""

from __future__ import annotations

from rigctl.roles.toolchain import defaults

from rigctl.hostdata import role_value
from rigctl.pyinfra_api import OperationError, deploy, host, server_facts


@deploy("rigctl toolchain")
def install(backend: str = "cpu", extra_packages: list[str] | None = None) -> None:
    """Install the build toolchain for a llama.cpp ``backend`` (cpu, cuda, rocm, vulkan, metal).

    + backend: which llama.cpp backend will be built; adds that backend's build packages
    + extra_packages: more OS packages to install alongside
    """
    kernel = host.get_fact(server_facts.Kernel)
    if kernel == "Darwin":
        from rigctl.roles.toolchain import setup_macos

        setup_macos.install()
        return

    if host.get_fact(server_facts.Which, command="apt-get"):
        from rigctl.roles.toolchain import setup_debian

        packages = role_value(host.data, "toolchain_apt_packages", defaults.TOOLCHAIN_APT_PACKAGES)
        packages = [*packages, *defaults.TOOLCHAIN_APT_BACKEND_PACKAGES.get(backend, [])]
        setup_debian.install(
            [*packages, *(extra_packages or [])],
            defaults.TOOLCHAIN_APT_CACHE_TIME,
            defaults.TOOLCHAIN_APT_LOCK_TIMEOUT,
        )
    elif host.get_fact(server_facts.Which, command="dnf"):
        from rigctl.roles.toolchain import setup_redhat

        packages = role_value(host.data, "toolchain_dnf_packages", defaults.TOOLCHAIN_DNF_PACKAGES)
        setup_redhat.install(packages, backend, extra_packages or [])
    else:
        raise OperationError("toolchain: no supported package manager (apt-get or dnf) found")
