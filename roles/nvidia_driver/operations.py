"""The driver's own operation: its packages (with the running kernel's headers, which DKMS
builds the module against) and the reboot that loads it, waited for."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from rigctl.pyinfra_api import (
    QuoteString,
    StringCommand,
    deb_facts,
    file_facts,
    host,
    operation,
    reboot,
    rpm_facts,
    server_facts,
)

#: Present exactly while an NVIDIA kernel module is loaded (what rigctl's NvidiaDriverProc reads).
MODULE_FILE = "/proc/driver/nvidia/version"


def _module_loaded() -> bool:
    return bool(host.get_fact(file_facts.File, path=MODULE_FILE))


@operation(is_idempotent=True)
def apt_driver(
    packages: Sequence[str], reboot_timeout: int, lock_timeout: int = 600
) -> Generator[object, None, None]:
    """Install the driver ``packages`` (and ``linux-headers-<running kernel>``) from the
    configured repositories, then reboot and wait for the host when no NVIDIA module is loaded.

    Nothing happens on a host whose packages are installed and whose module is loaded.

    + packages: the driver's packages (``nvidia-open`` or ``cuda-drivers``)
    + reboot_timeout: seconds to wait for the host to come back
    + lock_timeout: seconds apt waits for another apt's lock
    """
    kernel = host.get_fact(server_facts.KernelVersion)
    installed = host.get_fact(deb_facts.DebPackages) or {}
    wanted = [*packages, f"linux-headers-{kernel}"] if kernel else list(packages)
    missing = [name for name in wanted if name not in installed]
    if missing:
        yield StringCommand(
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "-o",
            f"DPkg::Lock::Timeout={int(lock_timeout)}",
            *(QuoteString(name) for name in missing),
        )
    if missing or not _module_loaded():
        yield from reboot._inner(delay=10, interval=2, reboot_timeout=reboot_timeout)
    else:
        host.noop("the NVIDIA driver is installed and loaded")


@operation(is_idempotent=True)
def dnf_driver(packages: Sequence[str], reboot_timeout: int) -> Generator[object, None, None]:
    """As :func:`apt_driver` with dnf (``kernel-devel-<running kernel>`` for DKMS). Tested by
    operation fixtures only; not run on a real host.

    + packages: the driver's packages (``nvidia-open`` or ``cuda-drivers``)
    + reboot_timeout: seconds to wait for the host to come back
    """
    kernel = host.get_fact(server_facts.KernelVersion)
    installed = host.get_fact(rpm_facts.RpmPackages) or {}
    missing = [name for name in packages if name not in installed]
    headers = installed.get("kernel-devel", [])
    if kernel and not any(kernel.startswith(version) for version in headers):
        missing.append(f"kernel-devel-{kernel}")
    if missing:
        yield StringCommand("dnf", "install", "-y", *(QuoteString(name) for name in missing))
    if missing or not _module_loaded():
        yield from reboot._inner(delay=10, interval=2, reboot_timeout=reboot_timeout)
    else:
        host.noop("the NVIDIA driver is installed and loaded")
