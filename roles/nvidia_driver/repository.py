"""NVIDIA's CUDA repository on a host: the keyring package (apt) or the repository file (dnf).

The ``cuda_toolkit`` role uses it too (its NVIDIA source), the way an Ansible role depends on
another. Both steps are operations of their own, so the fixtures under
``tests/operations/rigctl.roles.nvidia_driver.repository.*`` pin their commands.
"""

from __future__ import annotations

from collections.abc import Generator

from rigctl.roles.nvidia_driver import defaults

from rigctl.pyinfra_api import QuoteString, StringCommand, deb_facts, file_facts, host, operation

#: ``<base>/<distro>/<arch>``: NVIDIA names aarch64 servers ``sbsa``.
REPO_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "sbsa", "arm64": "sbsa"}


def repository_url(base_url: str, distro: str, arch: str) -> str:
    """The repository of one distribution (``debian13``, ``ubuntu2404``, ``rhel9``) and CPU."""
    if arch not in REPO_ARCH:
        raise ValueError(f"NVIDIA's CUDA repository has no {arch!r} packages")
    return f"{base_url.rstrip('/')}/{distro}/{REPO_ARCH[arch]}"


def _download(url: str, dest: str) -> StringCommand:
    """curl over HTTPS only (no redirect to plain http), to a partial file renamed when done."""
    return StringCommand(
        "curl",
        "-fsSL",
        "--proto",
        "=https",
        "--proto-redir",
        "=https",
        "--retry",
        "3",
        "-o",
        QuoteString(f"{dest}.part"),
        QuoteString(url),
        "&&",
        "mv",
        QuoteString(f"{dest}.part"),
        QuoteString(dest),
    )


@operation()
def apt_repository(repo_url: str, keyring: str = defaults.NVIDIA_REPO_KEYRING) -> Generator[object, None, None]:
    """Add NVIDIA's apt repository by its keyring package, unless ``cuda-keyring`` is installed.

    + repo_url: the distribution's repository (:func:`repository_url`)
    + keyring: the keyring package's file name in it
    """
    if "cuda-keyring" in (host.get_fact(deb_facts.DebPackages) or {}):
        host.noop("NVIDIA's repository is configured (cuda-keyring installed)")
        return
    staged = f"{defaults.NVIDIA_DRIVER_STAGING_DIR}/{keyring}"
    yield StringCommand("mkdir", "-p", QuoteString(defaults.NVIDIA_DRIVER_STAGING_DIR))
    yield _download(f"{repo_url}/{keyring}", staged)
    yield StringCommand("dpkg", "-i", QuoteString(staged))
    yield StringCommand("apt-get", "update")


@operation()
def dnf_repository(repo_url: str, distro: str) -> Generator[object, None, None]:
    """Add NVIDIA's dnf repository file (``cuda-<distro>.repo``) unless it is there.

    + repo_url: the distribution's repository (:func:`repository_url`)
    + distro: NVIDIA's name of it (``rhel9``)
    """
    dest = f"/etc/yum.repos.d/cuda-{distro}.repo"
    if host.get_fact(file_facts.File, path=dest):
        host.noop(f"NVIDIA's repository is configured ({dest})")
        return
    yield _download(f"{repo_url}/cuda-{distro}.repo", dest)
