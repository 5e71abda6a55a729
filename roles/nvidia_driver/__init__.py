"""Role ``nvidia_driver``: the NVIDIA driver installed from NVIDIA's CUDA repository, loaded.

One job, and only where host data says ``nvidia_driver: install``: NVIDIA's repository (the
``cuda-keyring`` package on Debian/Ubuntu, its ``.repo`` file on RHEL-likes), the driver's
packages with the running kernel's headers, and a reboot that is waited for. Checking a driver
that is there is not this role's: the planner does it before anything changes
(:mod:`rigctl.plan.gpu_software`). What, per OS, is in ``defaults.py``; how in
``operations.py`` and ``repository.py``.
"""

from __future__ import annotations

from rigctl.roles.nvidia_driver import defaults, operations, repository
from rigctl.roles.toolchain import defaults as toolchain_defaults
from rigctl.roles.toolchain import setup_debian

from rigctl.hostdata import role_value
from rigctl.pyinfra_api import OperationError, deploy, host, server_facts

__all__ = ["defaults", "install", "nvidia_repository", "repository"]


def nvidia_repository(distro: str, repo_base_url: str | None = None) -> None:
    """NVIDIA's CUDA repository for ``distro`` as NVIDIA names it (``debian13``, ``ubuntu2404``,
    ``rhel9``: :data:`rigctl.plan.gpu_tables.NVIDIA_REPO_DISTROS`); also the ``cuda_toolkit``
    role's source of ``cuda-toolkit-X-Y``. ``repo_base_url`` defaults to host data
    ``nvidia_repo_base_url``, then ``NVIDIA_REPO_BASE_URL``."""
    base = repo_base_url or role_value(
        host.data, "nvidia_repo_base_url", defaults.NVIDIA_REPO_BASE_URL
    )
    arch = host.get_fact(server_facts.Arch) or "x86_64"
    url = repository.repository_url(base, distro, arch)
    if host.get_fact(server_facts.Which, command="apt-get"):
        # a bare Debian has neither: the keyring package is fetched over HTTPS
        setup_debian.install(
            list(defaults.NVIDIA_REPO_APT_PREREQUISITES),
            toolchain_defaults.TOOLCHAIN_APT_CACHE_TIME,
            toolchain_defaults.TOOLCHAIN_APT_LOCK_TIMEOUT,
            name="nvidia: curl for NVIDIA's repository",
        )
        repository.apt_repository(name="nvidia: CUDA repository", repo_url=url)
    else:
        repository.dnf_repository(name="nvidia: CUDA repository", repo_url=url, distro=distro)


@deploy("rigctl nvidia_driver")
def install(distro: str, repo_base_url: str | None = None) -> None:
    """The driver from NVIDIA's repository, then a reboot (waited for) unless it is loaded.

    + distro: NVIDIA's name of the host's distribution (``debian13``; the plan says it)
    + repo_base_url: NVIDIA's repositories or a mirror of them (default: host data
      ``nvidia_repo_base_url``, then ``NVIDIA_REPO_BASE_URL``)
    """
    packages = role_value(host.data, "nvidia_driver_packages", defaults.NVIDIA_DRIVER_PACKAGES)
    nvidia_repository(distro, repo_base_url)
    if host.get_fact(server_facts.Which, command="apt-get"):
        operations.apt_driver(
            name="nvidia: driver",
            packages=list(packages),
            reboot_timeout=defaults.NVIDIA_DRIVER_REBOOT_TIMEOUT,
        )
    elif host.get_fact(server_facts.Which, command="dnf"):
        operations.dnf_driver(
            name="nvidia: driver",
            packages=list(packages),
            reboot_timeout=defaults.NVIDIA_DRIVER_REBOOT_TIMEOUT,
        )
    else:
        raise OperationError("nvidia_driver: no supported package manager (apt-get or dnf) found")
