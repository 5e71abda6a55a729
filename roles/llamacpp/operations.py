"""Operations of the ``llamacpp`` role: build a pinned source with CMake into a versioned directory."""

from __future__ import annotations

import json
from collections.abc import Generator

from rigctl.pyinfra_api import (
    FileUploadCommand,
    QuoteString,
    StringCommand,
    file_facts,
    host,
    operation,
)


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

    work = f"{build_root}/{build_name}"
    partial = f"{install_dir}.partial"
    yield StringCommand("rm", "-rf", QuoteString(work), QuoteString(partial))
    yield StringCommand(
        "mkdir", "-p", QuoteString(work), QuoteString(ccache_dir), QuoteString(f"{prefix}/builds")
    )
    yield StringCommand("tar", "-xzf", QuoteString(source_tarball), "-C", QuoteString(work))

    env_parts: list[object] = ["env", f"CCACHE_DIR={ccache_dir}"]
    # values like "$(hipconfig -R)" must be evaluated by the host's shell, so they are not quoted
    env_parts += [f"{name}={value}" for name, value in (configure_env or {}).items()]
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
        f"CCACHE_DIR={ccache_dir}",
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
) -> Generator[object, None, None]:
    """Install a build made on another host with the same key, instead of compiling again.

    + archive: local path (on the controller) of ``<build_name>.tar.gz`` holding ``<build_name>/``
    + build_name: ``<version>-<backend>-<key>``; an existing complete build is left alone
    + prefix: install root; builds go under ``prefix/builds``
    + build_root: scratch directory for the upload
    """
    install_dir = f"{prefix}/builds/{build_name}"
    if host.get_fact(file_facts.File, path=f"{install_dir}/BUILD_INFO.json"):
        host.noop(f"llama.cpp build {build_name} is installed")
        return
    remote = f"{build_root}/{build_name}.tar.gz"
    partial = f"{install_dir}.partial"
    # an interrupted earlier attempt's files must not be merged into this build
    yield StringCommand("rm", "-rf", QuoteString(partial))
    yield StringCommand("mkdir", "-p", QuoteString(build_root), QuoteString(partial))
    yield FileUploadCommand(archive, remote)
    yield StringCommand(
        "tar", "-xzf", QuoteString(remote), "-C", QuoteString(partial), "--strip-components=1"
    )
    # plain mv (BSD/macOS mv has no -T); install_dir cannot exist without BUILD_INFO.json
    # unless an older rigctl left it half-made, so it goes first
    yield StringCommand("rm", "-rf", QuoteString(install_dir))
    yield StringCommand("mv", QuoteString(partial), QuoteString(install_dir))
    yield StringCommand("rm", "-f", QuoteString(remote))
