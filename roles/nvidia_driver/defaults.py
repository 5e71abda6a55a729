"""Role variables of ``nvidia_driver``, with their defaults (host data of the same name in lower
case overrides the ones marked so)."""

from __future__ import annotations

#: What ``nvidia_driver: install`` installs from NVIDIA's repository (host data
#: ``nvidia_driver_packages``): the open kernel modules, which NVIDIA recommends for Turing and
#: newer and Blackwell requires; ``cuda-drivers`` is the proprietary flavour pre-Turing GPUs need.
NVIDIA_DRIVER_PACKAGES: list[str] = ["nvidia-open"]

#: NVIDIA's CUDA repositories (host data ``nvidia_repo_base_url``): ``<base>/<distro>/<arch>/``
#: holds ``cuda-keyring_<version>_all.deb`` (apt) and ``cuda-<distro>.repo`` (dnf).
NVIDIA_REPO_BASE_URL: str = "https://developer.download.nvidia.com/compute/cuda/repos"

#: What fetching the keyring package needs on a Debian/Ubuntu host (a bare one has neither).
NVIDIA_REPO_APT_PREREQUISITES: list[str] = ["curl", "ca-certificates"]

#: The keyring package that adds NVIDIA's repository and its signing key to apt.
NVIDIA_REPO_KEYRING: str = "cuda-keyring_1.1-1_all.deb"

#: Seconds to wait for the host to come back after the reboot that loads the new driver.
NVIDIA_DRIVER_REBOOT_TIMEOUT: int = 900

#: Where downloads are staged on the host.
NVIDIA_DRIVER_STAGING_DIR: str = "/var/cache/rigctl"
