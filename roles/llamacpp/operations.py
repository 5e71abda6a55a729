"""Operations of the ``llamacpp`` role: build a pinned source with CMake into a versioned directory."""

from __future__ import annotations

import json
import re
from collections.abc import Generator

from rigctl.roles.llamacpp.backends import BACKENDS

from rigctl.digest import sha256_file as file_sha256
from rigctl.operations.files import check_sha256, verified_file
from rigctl.pyinfra_api import (
    OperationError,
    QuoteString,
    StringCommand,
    file_facts,
    host,
    operation,
)

#: The configure environment of the backends' table: the only values passed unquoted, since
#: the host's shell must evaluate them (``$(hipconfig -R)``); any other value is passed quoted.
SHELL_ENV: frozenset[tuple[str, str]] = frozenset(
    item for backend in BACKENDS.values() for item in backend.env.items()
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def compile_jobs(jobs: object) -> int:
    """``-j`` of the compile, from host data: a whole number from 1 to 4096 (ValueError)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int | str):
        raise ValueError(f"llamacpp_jobs: not a number of compile jobs: {jobs!r}")
    try:
        count = int(jobs)
    except ValueError:
        raise ValueError(f"llamacpp_jobs: not a number of compile jobs: {jobs!r}") from None
    if not 1 <= count <= 4096:
        raise ValueError(f"llamacpp_jobs: not a number of compile jobs: {jobs!r}")
    return count


def _env_item(name: str, value: str) -> str | QuoteString:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"not an environment variable name: {name!r}")
    if (name, value) in SHELL_ENV:
        return f"{name}={value}"
    return QuoteString(f"{name}={value}")


@operation()
def build(
    source_tarball: str,
    build_name: str,
    cmake_args: list[str],
    targets: list[str],
    jobs: int,
    prefix: str,
    build_root: str,
    ccache_dir: str,
    configure_env: dict[str, str] | None = None,
    build_info: dict[str, object] | None = None,
) -> Generator[StringCommand, None, None]:
    """Configure and compile llama.cpp, installing the binaries into ``prefix/builds/build_name``.

    + source_tarball: the packed source on the host (``llama.cpp/`` at its top)
    + build_name: ``<version>-<backend>-<key>``: an existing complete build is never rebuilt
    + cmake_args: configure arguments (from ``backends.cmake_args``)
    + targets: CMake targets to build and install (``llama-server``, ``llama-bench``)
    + jobs: ``-j`` for the compile
    + prefix: install root; builds go under ``prefix/builds``
    + build_root: scratch directory for the build tree
    + ccache_dir: compiler cache directory
    + configure_env: environment for configure, values are shell fragments (``$(hipconfig -R)``)
    + build_info: recorded as ``BUILD_INFO.json`` beside the binaries

    The install is atomic: binaries go to ``<dir>.partial`` which is renamed when complete, so a
    build interrupted at any point leaves no directory that looks installed.
    """
    install_dir = f"{prefix}/builds/{build_name}"
    if host.get_fact(file_facts.File, path=f"{install_dir}/BUILD_INFO.json"):
        host.noop(f"llama.cpp build {build_name} is installed")
        return
    jobs = compile_jobs(jobs)

    work = f"{build_root}/{build_name}"
    partial = f"{install_dir}.partial"
    yield StringCommand("rm", "-rf", QuoteString(work), QuoteString(partial))
    yield StringCommand(
        "mkdir", "-p", QuoteString(work), QuoteString(ccache_dir), QuoteString(f"{prefix}/builds")
    )
    yield StringCommand("tar", "-xzf", QuoteString(source_tarball), "-C", QuoteString(work))

    ccache = QuoteString(f"CCACHE_DIR={ccache_dir}")
    env_parts: list[object] = ["env", ccache]
    # the backends' values like "$(hipconfig -R)" must be evaluated by the host's shell, so
    # those (and only those) are not quoted
    env_parts += [_env_item(name, value) for name, value in (configure_env or {}).items()]
    yield StringCommand(
        *env_parts,
        "cmake",
        "-S",
        QuoteString(f"{work}/llama.cpp"),
        "-B",
        QuoteString(f"{work}/build"),
        "-DGGML_CCACHE=ON",
        *[QuoteString(arg) for arg in cmake_args],
    )
    yield StringCommand(
        "env",
        ccache,
        "cmake",
        "--build",
        QuoteString(f"{work}/build"),
        "--config",
        "Release",
        "-j",
        str(jobs),
        "--target",
        *[QuoteString(t) for t in targets],
    )
    yield StringCommand("mkdir", "-p", QuoteString(f"{partial}/bin"))
    yield StringCommand(
        "install",
        "-m",
        "0755",
        *[QuoteString(f"{work}/build/bin/{target}") for target in targets],
        QuoteString(f"{partial}/bin/"),
    )
    info = json.dumps(
        {**(build_info or {}), "build": build_name, "cmake_args": cmake_args}, indent=2
    )
    yield StringCommand(
        "printf", QuoteString("%s\\n"), QuoteString(info), ">", QuoteString(f"{partial}/BUILD_INFO.json")
    )
    # plain mv (BSD/macOS mv has no -T); install_dir cannot exist without BUILD_INFO.json
    # unless an older rigctl left it half-made, so it goes first
    yield StringCommand("rm", "-rf", QuoteString(install_dir))
    yield StringCommand("mv", QuoteString(partial), QuoteString(install_dir))
    yield StringCommand("rm", "-rf", QuoteString(work))


@operation()
def install_prebuilt(
    archive: str,
    build_name: str,
    prefix: str,
    build_root: str,
    sha256: str,
) -> Generator[object, None, None]:
    """Install a build made on another host with the same key, instead of compiling again.

    + archive: local path (on the controller) of ``<build_name>.tar.gz`` holding ``<build_name>/``
    + build_name: ``<version>-<backend>-<key>``; an existing complete build is left alone
    + prefix: install root; builds go under ``prefix/builds``
    + build_root: scratch directory for the upload
    + sha256: the archive's sha256, recorded when the controller kept (and checked) it

    The archive is checked against ``sha256`` on the controller before it is pushed and on the
    host after the upload (``verified_file``); it is unpacked without the owners and modes it
    carries (``--no-same-owner --no-same-permissions``: GNU tar, and bsdtar on macOS, take both)
    into a fresh ``<dir>.partial``, renamed into place when complete.
    """
    install_dir = f"{prefix}/builds/{build_name}"
    if host.get_fact(file_facts.File, path=f"{install_dir}/BUILD_INFO.json"):
        host.noop(f"llama.cpp build {build_name} is installed")
        return
    check_sha256(sha256)
    if file_sha256(archive) != sha256:
        raise OperationError(
            f"{archive} is not the build kept as {sha256[:12]}: not installed"
        )
    remote = f"{build_root}/{build_name}.tar.gz"
    partial = f"{install_dir}.partial"
    # an interrupted earlier attempt's files must not be merged into this build
    yield StringCommand("rm", "-rf", QuoteString(partial))
    yield StringCommand("mkdir", "-p", QuoteString(build_root), QuoteString(partial))
    # uploaded beside, hashed on the host, renamed: `remote` is only ever the checked archive
    yield from verified_file._inner(src=archive, dest=remote, sha256=sha256, mode="0600")
    yield StringCommand(
        "tar",
        "--no-same-owner",
        "--no-same-permissions",
        "-xzf",
        QuoteString(remote),
        "-C",
        QuoteString(partial),
        "--strip-components=1",
    )
    # plain mv (BSD/macOS mv has no -T); install_dir cannot exist without BUILD_INFO.json
    # unless an older rigctl left it half-made, so it goes first
    yield StringCommand("rm", "-rf", QuoteString(install_dir))
    yield StringCommand("mv", QuoteString(partial), QuoteString(install_dir))
    yield StringCommand("rm", "-f", QuoteString(remote), QuoteString(f"{remote}.sha256"))
