"""The ``nvidia_driver`` role on a converged Debian/Ubuntu host: what its README promises.

Run by Molecule's verifier and by ``tests/test_roles.py``, with ``-p rigctl.roletest.plugin``
(``host``: the instance over SSH, pinned host key).
"""

from __future__ import annotations

import pytest
import testinfra.host
from rigctl.roles.nvidia_driver import defaults

#: What tests/doubles/nvidia_repo.py's empty packages install instead of a driver.
DOUBLE_MARK = "TEST-DOUBLE"


def _kernel(host: testinfra.host.Host) -> str:
    return host.check_output("uname -r")


def test_nvidia_repository_is_configured_by_its_keyring(host: testinfra.host.Host) -> None:
    assert host.package("cuda-keyring").is_installed
    keyring = host.file("/usr/share/keyrings/cuda-archive-keyring.gpg")
    assert keyring.is_file and keyring.size > 0
    listing = host.check_output("cat /etc/apt/sources.list.d/cuda-*.list")
    assert "signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg" in listing, listing
    # apt reads the repository, its signature checked (a failure would leave no candidate)
    policy = host.check_output(f"apt-cache policy {defaults.NVIDIA_DRIVER_PACKAGES[0]}")
    assert "Candidate: (none)" not in policy, policy


@pytest.mark.parametrize("package", defaults.NVIDIA_DRIVER_PACKAGES)
def test_driver_packages_installed(host: testinfra.host.Host, package: str) -> None:
    assert host.package(package).is_installed, f"{package} is not installed"


def test_running_kernels_headers_installed(host: testinfra.host.Host) -> None:
    # what DKMS builds the kernel module against
    name = f"linux-headers-{_kernel(host)}"
    assert host.package(name).is_installed, f"{name} is not installed"


def test_host_rebooted_after_the_driver_was_installed(host: testinfra.host.Host) -> None:
    package = defaults.NVIDIA_DRIVER_PACKAGES[0]
    installed = int(host.check_output(f"stat -c %Y /var/lib/dpkg/info/{package}.list"))
    booted = int(host.check_output("date -d \"$(ps -o lstart= -p 1)\" +%s"))
    assert booted >= installed, f"PID 1 started at {booted}, before the install at {installed}"


def test_driver_module_is_loaded(host: testinfra.host.Host) -> None:
    package = defaults.NVIDIA_DRIVER_PACKAGES[0]
    if host.file(f"/usr/share/doc/{package}/{DOUBLE_MARK}").exists:
        pytest.skip("the test double of NVIDIA's repository installs no kernel module")
    version = host.file("/proc/driver/nvidia/version")
    assert version.exists, "no NVIDIA kernel module is loaded after the reboot"
    assert "NVIDIA" in version.content_string
