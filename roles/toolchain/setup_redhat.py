"""The toolchain on Fedora, RHEL and their rebuilds (dnf).

Tested by operation fixtures (``tests/operations/rigctl.roles.toolchain.setup_redhat.dnf_packages/``:
a fresh install with a backend's packages, nothing to do when all are installed); not run on a
real host.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

from rigctl.roles.toolchain import defaults

from rigctl.pyinfra_api import dnf, operation


@operation()
def dnf_packages(
    packages: Sequence[str], backend: str = "cpu", extra_packages: Sequence[str] = ()
) -> Generator[object, None, None]:
    """``dnf install -y`` of what is missing: ``packages``, the ``backend``'s build packages
    (``TOOLCHAIN_DNF_BACKEND_PACKAGES``) and ``extra_packages``; nothing when all are installed.

    + packages: the toolchain (``toolchain_dnf_packages``, default ``TOOLCHAIN_DNF_PACKAGES``)
    + backend: the llama.cpp backend that will be built (cpu, cuda, rocm, vulkan)
    + extra_packages: more packages to install alongside
    """
    wanted = [
        *packages,
        *defaults.TOOLCHAIN_DNF_BACKEND_PACKAGES.get(backend, []),
        *extra_packages,
    ]
    yield from dnf.packages._inner(packages=wanted)


def install(packages: Sequence[str], backend: str, extra_packages: Sequence[str] = ()) -> None:
    dnf_packages(
        name="toolchain: dnf packages",
        packages=list(packages),
        backend=backend,
        extra_packages=list(extra_packages),
    )
