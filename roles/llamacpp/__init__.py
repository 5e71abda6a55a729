"""Role ``llamacpp``: llama.cpp built from a pinned source for the host's backend.

One job: ``llama-server`` and ``llama-bench`` installed under
``/opt/rigctl/llamacpp/builds/<version>-<backend>-<key>/bin`` with a ``current`` link. The key
hashes everything that changes the binaries (source version, CMake arguments, and the CPU's
instruction sets for ``-march=native`` builds), so re-provisioning with the same key builds
nothing, and the previous build stays on disk for rollback.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigctl.roles.llamacpp import backends, defaults
from rigctl.roles.llamacpp.operations import build, install_prebuilt

from rigctl.fetch.builds import verified_sha256
from rigctl.pyinfra_api import deploy, files, host


@dataclass(frozen=True)
class BuildSpec:
    """What a build is: the source version, backend and configure arguments."""

    version: str
    backend: str
    cmake_args: tuple[str, ...]
    #: instruction-set flags of the CPU, for builds tuned with -march=native
    cpu_flags: tuple[str, ...] = field(default_factory=tuple)
    targets: tuple[str, ...] = backends.TARGETS

    @property
    def key(self) -> str:
        identity = {
            "version": self.version,
            "backend": self.backend,
            "cmake_args": list(self.cmake_args),
            "cpu_flags": sorted(self.cpu_flags) if "-DGGML_NATIVE=ON" in self.cmake_args else [],
            "targets": list(self.targets),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.version}-{self.backend}-{self.key}"


def build_spec(
    version: str,
    backend: str,
    *,
    cpu_flags: list[str] | None = None,
    cuda_architectures: list[str] | None = None,
    gpu_targets: list[str] | None = None,
    extra_cmake_args: list[str] | None = None,
) -> BuildSpec:
    args = backends.cmake_args(
        backend,
        cuda_architectures=cuda_architectures,
        gpu_targets=gpu_targets,
        extra=extra_cmake_args,
    )
    return BuildSpec(version, backend, tuple(args), tuple(sorted(cpu_flags or [])))


def install_dir(spec: BuildSpec, prefix: str = defaults.LLAMACPP_PREFIX) -> str:
    return f"{prefix}/builds/{spec.name}"


def install_prefix(host_obj: Any) -> str:
    """The install root on a host (host data ``llamacpp_prefix``)."""
    return str(host_obj.data.get("llamacpp_prefix", defaults.LLAMACPP_PREFIX))


def binary(name: str = "llama-server", prefix: str = defaults.LLAMACPP_PREFIX) -> str:
    """Path of a binary of the current build (what units run)."""
    return f"{prefix}/current/bin/{name}"


@deploy("rigctl llama.cpp")
def install(
    source_tarball: str, spec: BuildSpec, jobs: int | None = None, prebuilt: str | None = None
) -> Any:
    """Build llama.cpp for the spec's backend unless built, and point ``current`` at it.

    + source_tarball: the packed llama.cpp source on the controller (``rigctl.fetch.llamacpp_source``)
    + spec: the build (``build_spec(...)``)
    + jobs: compile jobs (default: ``llamacpp_jobs`` host data, else the host's CPU count)
    + prebuilt: a ``<build name>.tar.gz`` on the controller made by another host with the same
      key (``rigctl.provision`` keeps them): installed instead of compiling
    """
    prefix = install_prefix(host)
    build_root = host.data.get("llamacpp_build_root", defaults.LLAMACPP_BUILD_ROOT)
    ccache_dir = host.data.get("llamacpp_ccache_dir", defaults.LLAMACPP_CCACHE_DIR)
    jobs = jobs or host.data.get("llamacpp_jobs", defaults.LLAMACPP_JOBS) or _cpu_count()

    # a kept build is installed only while it is the tarball the controller checked and
    # recorded; one that changed since is discarded (with a warning) and this host compiles
    sha256 = verified_sha256(Path(prebuilt)) if prebuilt else None
    if prebuilt and sha256:
        install_prebuilt(
            name=f"llama.cpp: install prebuilt {spec.name}",
            archive=prebuilt,
            build_name=spec.name,
            prefix=prefix,
            build_root=build_root,
            sha256=sha256,
        )
        return files.link(
            name="llama.cpp: current build", path=f"{prefix}/current", target=install_dir(spec, prefix)
        )

    files.directory(name="llama.cpp: source directory", path=f"{prefix}/src", mode="0755")
    remote_source = f"{prefix}/src/llama.cpp-{spec.version}.tar.gz"
    files.put(name="llama.cpp: push source", src=source_tarball, dest=remote_source, mode="0644")
    build(
        name=f"llama.cpp: build {spec.name}",
        source_tarball=remote_source,
        build_name=spec.name,
        cmake_args=list(spec.cmake_args),
        targets=list(spec.targets),
        jobs=jobs,
        prefix=prefix,
        build_root=build_root,
        ccache_dir=ccache_dir,
        configure_env=backends.BACKENDS[spec.backend].env,
        build_info={"version": spec.version, "backend": spec.backend, "key": spec.key},
    )
    # Returned so a service can restart when the build it runs changed.
    return files.link(
        name="llama.cpp: current build", path=f"{prefix}/current", target=install_dir(spec, prefix)
    )


def _cpu_count() -> int:
    from rigctl.pyinfra_api import server_facts

    return int(host.get_fact(server_facts.Command, "nproc 2>/dev/null || sysctl -n hw.ncpu") or 1)
