"""Serve a plan with llama.cpp on one host: toolchain, build, model, dedicated user, unit.

:class:`LlamaCppDeploy` has the shape of every runtime's deploy (:mod:`rigctl.deploys`); every
value comes from the host's :class:`~rigctl.plan.Plan` and :class:`~rigctl.hostspec.HostSpec`,
nothing is re-derived here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rigctl.deploys import (
    GPU_DEVICES,
    GPU_GROUPS,
    MODEL_DIR,
    Deploy,
    HostInputs,
    Served,
    gpu,
    host_gpu_groups,
    model_paths,
    record,
)
from rigctl.deploys import llamacpp_router as router
from rigctl.roles import llamacpp, service, toolchain
from rigctl.roles.llamacpp.backends import cuda_architecture
from rigctl.roles.service import api_key_path
from rigctl.templates import render

from rigctl.errors import BadInput
from rigctl.fetch.builds import cached_build, keep_build
from rigctl.fetch.http import Verified
from rigctl.fetch.llamacpp_source import LlamaCppSource, PackedSource
from rigctl.hardware import Hardware
from rigctl.health import Offload
from rigctl.hostspec import HostSpec
from rigctl.manifest import Deployment
from rigctl.operations.files import verified_file
from rigctl.plan import Plan
from rigctl.plan.llamacpp import llamacpp_backend
from rigctl.plan.multi import ModelsPlan
from rigctl.progress import Reporter
from rigctl.pyinfra_api import Host, files, host

if TYPE_CHECKING:
    from rigctl.fetch.shared import SharedFetches

log = logging.getLogger(__name__)

UNIT = "rigctl-llama-server"

#: ggml's name of the first device of each GPU backend, as llama.cpp logs its buffers on it.
GGML_DEVICES = {"cuda": "CUDA0", "rocm": "ROCm0", "vulkan": "Vulkan0"}
LAUNCHD_LABEL = "org.rigctl.llama-server"
USER = "llama"


def backend_for(hardware: Hardware, plan: Plan) -> str:
    """The llama.cpp backend: the host's accelerator when the plan puts layers on it."""
    return llamacpp_backend(hardware.accelerator, plan.memory.gpu_layers)


def build_spec_for(
    hardware: Hardware, plan: Plan, version: str, extra_cmake_args: list[str]
) -> llamacpp.BuildSpec:
    backend = backend_for(hardware, plan)
    return llamacpp.build_spec(
        version,
        backend,
        cpu_flags=hardware.cpu.flags,
        cuda_architectures=[
            cuda_architecture(gpu.compute_capability)
            for gpu in hardware.gpus
            if backend == "cuda" and gpu.compute_capability
        ],
        gpu_targets=[
            gpu.gfx_target for gpu in hardware.gpus if backend == "rocm" and gpu.gfx_target
        ],
        extra_cmake_args=extra_cmake_args,
    )


def server_argv(
    plan: Plan, spec: HostSpec, key_file: str, prefix: str = llamacpp.defaults.LLAMACPP_PREFIX
) -> list[str]:
    """llama-server's full command line: the plan's flags plus where and how it listens.

    The API key is passed by file (never in argv, where ``ps`` would show it); the slots
    endpoint, which shows other users' prompts, is off; metrics are on for ``rigctl status``.
    A plan that offloads layers logs at verbosity 4 (``-lv 4``): llama.cpp's own INFO lines
    (the devices, the layers offloaded, each buffer's device) are hidden below it, and the
    smoke stage reads them to tell a GPU server from one that fell back to the CPU.
    """
    verbosity = ["-lv", "4"] if plan.memory.gpu_layers else []
    return [
        llamacpp.binary("llama-server", prefix),
        *plan.args,
        "--host",
        spec.listen,
        "--port",
        str(spec.port),
        "--api-key-file",
        key_file,
        "--metrics",
        "--no-slots",
        "--no-webui",
        *verbosity,
    ]


def render_unit(
    spec: HostSpec,
    plan: Plan,
    build: llamacpp.BuildSpec,
    prefix: str = llamacpp.defaults.LLAMACPP_PREFIX,
    groups: list[str] | None = None,
    models: ModelsPlan | None = None,
) -> str:
    """The systemd unit for this host's llama-server (Linux); ``prefix``: where builds live;
    ``groups``: the GPU groups the host has (default: all the backend's); ``models``: the joint
    plan of several models, served by the router (:mod:`rigctl.deploys.llamacpp_router`)."""
    if models is not None:
        model_name = ", ".join(models.plans)
        argv = router.router_argv(spec, models, presets_path(), prefix)
        environment = router.router_environment(list(models.plans.values()), spec.host)
        environment_files = [router_key_path()]
        summary = router.summary(models)
    else:
        model_name = f"{plan.model.name} {plan.model.quant}"
        argv = server_argv(plan, spec, api_key_path(UNIT), prefix)
        environment = dict(plan.env)
        environment_files = []
        summary = f"{plan.runtime}, {plan.concurrency} user(s), {plan.context} tokens each"
    return render(
        "llama-server.service.j2",
        unit=UNIT,
        model_name=model_name,
        build_name=build.name,
        plan_summary=summary,
        user=USER,
        group=USER,
        supplementary_groups=GPU_GROUPS.get(build.backend, []) if groups is None else groups,
        argv=argv,
        environment=environment,
        environment_files=environment_files,
        state_directory=UNIT,
        read_only_paths=[MODEL_DIR, prefix, f"/etc/rigctl/{UNIT}"],
        gpu_devices=GPU_DEVICES.get(build.backend, []),
    )


def presets_path() -> str:
    """Where the router's presets file lives (the unit's configuration directory)."""
    return f"{api_key_path(UNIT).rsplit('/', 1)[0]}/{router.PRESETS_NAME}"


def router_key_path() -> str:
    """The router's key file: ``LLAMA_API_KEY=key``, read by the router and every child."""
    return api_key_path(UNIT, variable=router.KEY_VARIABLE)


def render_plist(
    spec: HostSpec,
    plan: Plan,
    build: llamacpp.BuildSpec,
    prefix: str = llamacpp.defaults.LLAMACPP_PREFIX,
) -> str:
    """The launchd LaunchDaemon for this host's llama-server (macOS), same content as the unit."""
    return render(
        "llama-server.plist.j2",
        label=LAUNCHD_LABEL,
        model_name=f"{plan.model.name} {plan.model.quant}",
        build_name=build.name,
        user=USER,
        group=USER,
        argv=server_argv(plan, spec, api_key_path(UNIT), prefix),
        environment=dict(plan.env),
        working_directory=f"/var/lib/{UNIT}",
        log_path=f"/var/log/rigctl/{UNIT}.log",
    )


class LlamaCppDeploy(Deploy):
    """llama.cpp: the toolchain, a build from source for the host's backend (or the kept build of
    another host with the same build key), the model(s), a dedicated user and the unit: one
    llama-server, or for several models its router with a presets file."""

    UNIT = UNIT
    SERVES_SEVERAL = True

    def __init__(self, inputs: HostInputs) -> None:
        super().__init__(inputs)
        self.source = LlamaCppSource.from_host_data(
            inputs.data.get("llamacpp_source"), inputs.name, allow_http=inputs.allow_http
        )
        self.cmake_args = list(inputs.data.get("llamacpp_cmake_args", []) or [])
        self.plans = inputs.plans
        self.models = inputs.models if len(self.plans) > 1 else None
        # one build serves every model: the backend of the one that offloads most
        widest = max(self.plans.values(), key=lambda plan: plan.memory.gpu_layers or 0)
        self.build = build_spec_for(inputs.hardware, widest, self.source.version, self.cmake_args)
        self.paths = model_paths(self.plans, inputs.name)
        self.packed: PackedSource | None = None
        self.files: dict[str, Verified] = {}  # alias -> the verified model file

    @property
    def model(self) -> Verified | None:
        """The first model's file (the only one's, unless the host serves several)."""
        return self.files.get(next(iter(self.plans)))

    def prepare(self, fetches: SharedFetches) -> None:
        name = self.inputs.name
        for alias, plan in self.plans.items():
            self.files[alias] = fetches.model(
                name, plan.model, self.inputs.mirrors, allow_http=self.inputs.allow_http
            )
        self.packed = fetches.llamacpp_source(name, self.source)

    @property
    def build_key(self) -> str:
        return self.build.name

    def keep(self, host: Host, report: Reporter) -> None:
        # Whenever the controller lacks it, not only right after compiling: a run killed while
        # keeping it would otherwise leave every later host of this key compiling again.
        if cached_build(self.build.name):
            return
        report(host.name, "build", f"keeping {self.build.name} for hosts with the same key")
        try:
            keep_build(host, self.build.name, llamacpp.install_prefix(host))
        except OSError as e:
            log.warning("could not keep build %s: %s", self.build.name, e)

    def lock(self) -> tuple[str, int]:
        assert self.model is not None, "prepare() first"
        return self.model.sha256, self.model.size

    def lock_models(self) -> dict[str, tuple[str, int]]:
        assert len(self.files) == len(self.plans), "prepare() first"
        return {alias: (file.sha256, file.size) for alias, file in self.files.items()}

    def serve(self) -> Served:
        assert self.packed is not None and self.model is not None, "prepare() first"
        spec, hardware, plan, build = (
            self.inputs.spec,
            self.inputs.hardware,
            self.inputs.plan,
            self.build,
        )
        prebuilt = cached_build(build.name)
        toolchain.install(backend=build.backend)
        software = plan.gpu_software
        gpu.install_toolkit(software.toolkit if software else None, runtime_only=prebuilt is not None)
        current_build = llamacpp.install(
            source_tarball=str(self.packed.tarball),
            spec=build,
            prebuilt=str(prebuilt) if prebuilt else None,
        )

        files.directory(name="model: directory", path=MODEL_DIR, mode="0755")
        model_ops = []
        for path, alias in self.paths.items():
            model_ops.append(verified_file(
                name=f"model: {path.rsplit('/', 1)[-1]}",
                src=str(self.files[alias].path),
                dest=path,
                sha256=self.files[alias].sha256,
                mode="0644",
            ))

        groups = host_gpu_groups(build.backend)
        service.user(user_name=USER, groups=groups)
        prefix = llamacpp.install_prefix(host)
        if self.models is not None:
            key_file = router_key_path()
            argv = router.router_argv(spec, self.models, presets_path(), prefix)
            config = {
                router.PRESETS_NAME: router.render_presets(
                    UNIT, self.models, spec.models_idle_seconds
                )
            }
        else:
            key_file = api_key_path(UNIT)
            argv = server_argv(plan, spec, key_file, prefix)
            config = {}
        if hardware.os.init == "launchd":
            if self.models is not None:
                raise BadInput(
                    "several models on macOS (llama-server's router under launchd) is not "
                    "built yet: list one", host=self.inputs.name, field="models",
                )
            unit_text = render_plist(spec, plan, build, prefix)
            unit_file = f"/Library/LaunchDaemons/{LAUNCHD_LABEL}.plist"
            service.install_launchd(
                unit=UNIT,
                label=LAUNCHD_LABEL,
                plist_text=unit_text,
                user_name=USER,
                directories=[f"/var/lib/{UNIT}", "/var/log/rigctl"],
                changed_inputs=[*model_ops, current_build],
            )
        else:
            unit_text = render_unit(spec, plan, build, prefix, groups, self.models)
            unit_file = service.unit_path(UNIT)
            service.install(
                unit=UNIT,
                unit_text=unit_text,
                user_name=USER,
                changed_inputs=[*model_ops, current_build],
                key_variable=router.KEY_VARIABLE if self.models is not None else None,
                input_paths=[*self.paths, f"{prefix}/current", argv[0]],
                config_texts=config,
            )
        rendered = {unit_file: unit_text}
        rendered.update({presets_path(): text for text in config.values()})
        manifest = Deployment(
            runtime="llamacpp",
            unit=UNIT,
            listen=spec.listen,
            port=spec.port,
            api_key_file=key_file,
            user=USER,
            build=build.name,
            model_name=plan.model.name,
            model_quant=plan.model.quant,
            model_path=plan.model.runtime_ref,
            model_sha256=self.model.sha256,
            args=argv,
            served_model=next(iter(self.plans)) if self.models is not None else "default",
            config_files=[unit_file, *([presets_path()] if config else [])],
            models=[
                {
                    "alias": alias,
                    "model_name": model_plan.model.name,
                    "model_quant": model_plan.model.quant,
                    "model_path": model_plan.model.runtime_ref,
                    "model_sha256": self.files[alias].sha256,
                }
                for alias, model_plan in self.plans.items()
            ] if self.models is not None else [],
        )
        device = GGML_DEVICES.get(build.backend)
        # the router's children log through it, each line under its port: the check of where
        # the layers went reads one server's log, so it is made for a single model only
        offload = (
            Offload(device, plan.memory.gpu_layers or 0)
            if device and plan.memory.gpu_layers and self.models is None else None
        )
        return record(manifest, spec, rendered, offload=offload, router=self.models is not None)
