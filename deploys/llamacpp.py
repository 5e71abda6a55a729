"""Serve a plan with llama.cpp on one host: toolchain, build, model, dedicated user, unit.

Call :func:`serve` inside a pyinfra deploy context (``Session.prepare`` does, per host); every
value comes from the host's :class:`~rigctl.plan.Plan` and :class:`~rigctl.hostspec.HostSpec`,
nothing is re-derived here.
"""

from __future__ import annotations

from io import StringIO

from rigctl.deploys import GPU_DEVICES, GPU_GROUPS, MODEL_DIR, Served
from rigctl.roles import llamacpp, service, toolchain
from rigctl.roles.llamacpp.backends import cuda_architecture
from rigctl.roles.service import api_key_path
from rigctl.templates import render

from rigctl.fetch.http import Verified
from rigctl.fetch.llamacpp_source import PackedSource
from rigctl.hardware import Hardware
from rigctl.hostspec import HostSpec
from rigctl.manifest import MANIFEST, Deployment
from rigctl.operations.files import atomic_put, verified_file
from rigctl.plan import Plan
from rigctl.pyinfra_api import files, host

UNIT = "rigctl-llama-server"
LAUNCHD_LABEL = "org.rigctl.llama-server"
USER = "llama"


def backend_for(hardware: Hardware, plan: Plan) -> str:
    """The llama.cpp backend: the host's accelerator when the plan puts layers on it."""
    if plan.memory.gpu_layers and hardware.accelerator in ("cuda", "rocm", "vulkan", "metal"):
        return hardware.accelerator
    return "metal" if hardware.accelerator == "metal" else "cpu"


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
    """
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
    ]


def render_unit(
    spec: HostSpec,
    plan: Plan,
    build: llamacpp.BuildSpec,
    prefix: str = llamacpp.defaults.LLAMACPP_PREFIX,
) -> str:
    """The systemd unit for this host's llama-server (Linux); ``prefix``: where builds live."""
    return render(
        "llama-server.service.j2",
        unit=UNIT,
        model_name=f"{plan.model.name} {plan.model.quant}",
        build_name=build.name,
        plan_summary=f"{plan.runtime}, {plan.concurrency} user(s), {plan.context} tokens each",
        user=USER,
        group=USER,
        supplementary_groups=GPU_GROUPS.get(build.backend, []),
        argv=server_argv(plan, spec, api_key_path(UNIT), prefix),
        environment={},
        state_directory=UNIT,
        read_only_paths=[MODEL_DIR, prefix, f"/etc/rigctl/{UNIT}"],
        gpu_devices=GPU_DEVICES.get(build.backend, []),
    )


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
        environment={},
        working_directory=f"/var/lib/{UNIT}",
        log_path=f"/var/log/rigctl/{UNIT}.log",
    )


def serve(
    spec: HostSpec,
    hardware: Hardware,
    plan: Plan,
    source: PackedSource,
    model: Verified,
    extra_cmake_args: list[str] | None = None,
    prebuilt: str | None = None,
) -> Served:
    build = build_spec_for(hardware, plan, source.version, extra_cmake_args or [])
    toolchain.install(backend=build.backend)
    current_build = llamacpp.install(source_tarball=str(source.tarball), spec=build, prebuilt=prebuilt)

    model_path = plan.model.runtime_ref
    files.directory(name="model: directory", path=MODEL_DIR, mode="0755")
    model_op = verified_file(
        name=f"model: {model_path.rsplit('/', 1)[-1]}",
        src=str(model.path),
        dest=model_path,
        sha256=model.sha256,
        mode="0644",
    )

    service.user(user_name=USER, groups=GPU_GROUPS.get(build.backend, []))
    key_file = api_key_path(UNIT)
    prefix = llamacpp.install_prefix(host)
    if hardware.os.init == "launchd":
        unit_text = render_plist(spec, plan, build, prefix)
        unit_file = f"/Library/LaunchDaemons/{LAUNCHD_LABEL}.plist"
        service.install_launchd(
            unit=UNIT,
            label=LAUNCHD_LABEL,
            plist_text=unit_text,
            user_name=USER,
            directories=[f"/var/lib/{UNIT}", "/var/log/rigctl"],
            changed_inputs=[model_op, current_build],
        )
    else:
        unit_text = render_unit(spec, plan, build, prefix)
        unit_file = service.unit_path(UNIT)
        service.install(
            unit=UNIT,
            unit_text=unit_text,
            user_name=USER,
            changed_inputs=[model_op, current_build],
            input_paths=[
                model_path,
                f"{prefix}/current",
                server_argv(plan, spec, key_file, prefix)[0],
            ],
        )
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
        model_path=model_path,
        model_sha256=model.sha256,
        args=server_argv(plan, spec, key_file, prefix),
        config_files=[unit_file],
    )
    atomic_put(
        name="deployment manifest", src=StringIO(manifest.render()), dest=MANIFEST, mode="0644"
    )
    return Served(
        unit=UNIT,
        endpoint=spec.endpoint,
        api_key_file=key_file,
        build=build.name,
        model_path=model_path,
        rendered={unit_file: unit_text, MANIFEST: manifest.render()},
    )
