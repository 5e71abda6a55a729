"""``make_plan``: the plan for serving a model to some users on some hardware, and its parts.

Pure: no host, no I/O. Callers import it from :mod:`rigctl.plan`.
"""

from __future__ import annotations

import posixpath

from rigctl.errors import BadInput
from rigctl.hardware import ACCELERATORS, Hardware
from rigctl.models.catalog import CatalogModel
from rigctl.models.facts import ModelFacts
from rigctl.models.refs import hf_resolve_url, model_file_name
from rigctl.plan import preflight
from rigctl.plan.gpu_software import GpuSoftwareWanted, plan_gpu_software
from rigctl.plan.limits import check_context, context_limit, validate_inputs
from rigctl.plan.llamacpp import GgufLayout, choose_layout, llama_server_args, llamacpp_backend
from rigctl.plan.memory import (
    DEFAULT_CONTEXT_MAX,
    Device,
    gib,
    gpu_devices,
    grow_context,
    host_device,
    memoryless_gpus,
)
from rigctl.plan.ollama import ollama_env, ollama_model_name
from rigctl.plan.quant import choose_quant
from rigctl.plan.runtime import (
    Situation,
    check_requested_runtime,
    choose_runtime,
    lowest_compute_capability,
    requested_runtime_warnings,
    vllm_blocker,
    wants_vllm,
)
from rigctl.plan.types import DevicePlacement, MemoryPlan, Plan, PlannedModel
from rigctl.plan.vllm import (
    GPU_MEMORY_UTILIZATION,
    CheckpointChoice,
    VllmFit,
    checkpoint_label,
    choose_checkpoint,
    cpu_dtype,
    fit_vllm_cpu,
    grow_vllm_context,
    vllm_args,
    vllm_env,
    vllm_reason,
)

# Where the model role puts GGUF files on a host; llama-server's -m points here.
DEFAULT_MODEL_DIR = "/var/lib/rigctl/models"

# llama.cpp's CUDA backend builds for compute capability 5.0 and newer (ggml-cuda CMake).
MIN_LLAMACPP_COMPUTE_CAPABILITY = (5, 0)


def _accelerator(hardware: Hardware) -> tuple[str, list[str]]:
    """Return the accelerator to plan for and warnings when it falls back to the CPU; first the
    detection warnings every plan of the host repeats (GPUs it cannot use, or only in part:
    ``Hardware.plan_warnings``), so that no GPU is dropped silently."""
    accelerator = hardware.accelerator
    if accelerator not in ACCELERATORS:
        raise BadInput(f"unknown accelerator {accelerator!r}", field="accelerator")
    detected = [str(warning) for warning in hardware.plan_warnings]
    if accelerator == "cpu":
        return "cpu", detected
    blank = memoryless_gpus(hardware, accelerator)
    said = detected + (
        [f"GPU {', '.join(blank)} reports no memory: left out of the plan (a MIG or vGPU "
         "device, or a driver that cannot read it; check nvidia-smi or rocm-smi)"]
        if blank else []
    )
    if not gpu_devices(hardware, accelerator):
        return "cpu", [
            *said, f"accelerator {accelerator} but no usable GPU listed: planning for CPU"
        ]
    cc = lowest_compute_capability(hardware)
    if accelerator == "cuda" and cc is not None and cc < MIN_LLAMACPP_COMPUTE_CAPABILITY:
        return "cpu", [
            *said,
            f"GPU compute capability {cc[0]}.{cc[1]} is older than any current runtime "
            "supports (5.0): planning for CPU",
        ]
    return accelerator, said


def _download_urls(sources: tuple[str, ...]) -> list[str]:
    urls = []
    for source in sources:
        if source.startswith("hf://"):
            org, repo, path = source[len("hf://") :].split("/", 2)
            path, _, revision = path.partition("@")
            urls.append(hf_resolve_url(f"{org}/{repo}", path, revision or "main"))
        elif source.startswith(("https://", "http://")):
            urls.append(source)
    return urls


def _basename(source: str) -> str:
    """The model's file name on the host: confined to the models directory, one file per
    source (``..@.gguf`` and ``a@1.gguf``/``a@2.gguf`` included)."""
    return model_file_name(source)


def _gguf_plan(
    runtime: str,
    facts: ModelFacts,
    layout: GgufLayout,
    hardware: Hardware,
    *,
    context: int,
    concurrency: int,
    model_dir: str,
    threads: int | None = None,
) -> tuple[PlannedModel, list[str], dict[str, str], MemoryPlan, list[str]]:
    """Return (model, args, env, memory, reasons) for llama.cpp or Ollama."""
    source = facts.source or facts.name
    host_path = posixpath.join(model_dir, _basename(source))
    reasons = []
    if runtime == "ollama":
        ref = ollama_model_name(facts.source, facts.quant) or host_path
        args = ["serve"]
        env = ollama_env(layout=layout, context_per_slot=context, slots=concurrency)
    else:
        ref = host_path
        cores = hardware.cpu.cores or hardware.cpu.threads or 1
        args = llama_server_args(
            model_path=host_path,
            layout=layout,
            context_per_slot=context,
            slots=concurrency,
            threads=threads or cores,
        )
        env = {}
        if hardware.accelerator == "vulkan" and layout.placement.gpu_layers:
            # the devices planned for, as CUDA_VISIBLE_DEVICES would pin them; ggml skips CPU-type
            # Vulkan devices (lavapipe) unless they are named here
            indexes = ",".join(str(gpu.index) for gpu in hardware.gpus)
            env["GGML_VK_VISIBLE_DEVICES"] = indexes
            reasons.append(f"GGML_VK_VISIBLE_DEVICES={indexes}: the Vulkan devices planned for")
        if threads:
            reasons.append(
                f"threads: -t {threads}, from the host data (planned: {cores}, the physical cores)"
            )
        elif not layout.placement.full_offload or layout.placement.cpu_moe_layers:
            reasons.append(
                f"threads: -t {cores}, the physical cores (hyper-threads add "
                "nothing to memory-bound decoding)"
            )
        if concurrency > 1:
            reasons.append(
                f"slots: -np {concurrency} with -c {context * concurrency:,}, so each "
                f"user gets {context:,} tokens"
            )
    placement = layout.placement
    rows = placement.placement
    model = PlannedModel(
        name=facts.name or facts.architecture,
        quant=(facts.quant or "unknown").upper(),
        format="gguf",
        source=source,
        urls=_download_urls(facts.sources or ((facts.source,) if facts.source else ())),
        size_bytes=facts.file_size,
        size_exact=facts.size_exact,
        sha256=facts.sha256,
        runtime_ref=ref,
    )
    memory = MemoryPlan(
        weights_bytes=sum(r.weights for r in rows),
        kv_cache_bytes=sum(r.kv_cache for r in rows),
        overhead_bytes=sum(r.overhead for r in rows),
        kv_cache_type=placement.kv_type,
        v_cache_type=placement.v_cache_type,
        context_per_slot=context,
        slots=concurrency,
        placement=rows,
        gpu_layers=placement.gpu_layers,
        n_layers=facts.n_layers,
    )
    return model, args, env, memory, reasons


_QUANT_OF_DTYPE = {"float32": "F32", "bfloat16": "BF16", "float16": "F16", "float8_e4m3fn": "FP8"}


def vllm_host_path(base: ModelFacts, model_dir: str) -> tuple[str, str, str]:
    """Return (source, path on the host, served model name) of a vLLM model.

    A directory from the controller keeps its name; a Hub repository gets
    ``<org>--<name>@<revision>``, so two revisions never share a directory.
    """
    if base.hf_dir:
        name = posixpath.basename(base.hf_dir.rstrip("/"))
        return base.hf_dir, posixpath.join(model_dir, name), name
    repo = base.hf_repo or ""
    revision = base.hf_revision or "main"
    source = (
        base.source if base.format == "safetensors" and base.source else f"hf://{repo}@{revision}"
    )
    return source, posixpath.join(model_dir, f"{repo.replace('/', '--')}@{revision}"), repo


def _vllm_plan(
    base: ModelFacts,
    fit: VllmFit,
    *,
    context: int,
    concurrency: int,
    exact: bool,
    model_dir: str,
) -> tuple[PlannedModel, list[str], MemoryPlan]:
    """Return (model, args, memory) for vLLM."""
    source, host_path, served = vllm_host_path(base, model_dir)
    if fit.device == "cpu":
        quant = _QUANT_OF_DTYPE[fit.dtype]
    elif base.hf_quant:
        quant = checkpoint_label(base).split()[0].upper()
    else:
        quant = "F16" if base.hf_dtype == "float16" else "BF16"
    model = PlannedModel(
        name=base.name or served,
        quant=quant,
        format="safetensors",
        source=source,
        urls=[],
        size_bytes=base.hf_weights_bytes or 0,
        size_exact=exact,
        sha256=None,
        runtime_ref=host_path,
    )
    rows: list[DevicePlacement] = fit.gpus
    memory = MemoryPlan(
        weights_bytes=sum(r.weights for r in rows),
        kv_cache_bytes=sum(r.kv_cache for r in rows),
        overhead_bytes=sum(r.overhead for r in rows),
        kv_cache_type=fit.kv_dtype,
        context_per_slot=context,
        slots=concurrency,
        placement=rows,
        gpu_layers=None,
        n_layers=base.n_layers,
    )
    args = vllm_args(
        model_path=host_path, served_name=served, fit=fit, context=context, concurrency=concurrency
    )
    return model, args, memory


def _context_cap(native: int | None, context_max: int | None) -> tuple[int, str]:
    """The longest context a grown plan may take, and what sets it."""
    if context_max is not None:
        try:
            check_context(context_max)
        except ValueError as e:
            raise BadInput(str(e), field="context_max") from None
    wanted = context_max or DEFAULT_CONTEXT_MAX
    limit = context_limit(native)
    if limit < wanted:
        return limit, f"the model's trained context, {limit:,}"
    name = "context_max" if context_max else "context_max's default"
    return wanted, f"{name}, {wanted:,}"


def _grow_context(
    facts: ModelFacts,
    hardware: Hardware,
    gpus: list[Device],
    layout: GgufLayout,
    *,
    cap: int,
    cap_reason: str,
    ollama: bool,
) -> tuple[GgufLayout, int, str]:
    """The layout with its context grown into the memory left (no context was given): the
    layout, the context per slot, and the sentence that says how far and why not further."""
    placement = layout.placement
    start = placement.context_per_slot
    grown = grow_context(facts, hardware, gpus, placement, cap=cap)
    where = "on " + ", ".join(g.name for g in gpus) if gpus else "in RAM"
    if grown.context_per_slot <= start:
        if start >= cap:
            return layout, start, f"context: {start:,} tokens per user (none given; {cap_reason})"
        return layout, start, (
            f"context: {start:,} tokens per user (none given): no room for more {where} "
            "without moving weights off it"
        )
    context = grown.context_per_slot
    again = choose_layout(facts, hardware, gpus, context_per_slot=context,
                          slots=placement.slots, moe_offload=not ollama,
                          mixed_kv=False if ollama else None)
    # the ladder is monotonic in context, so it lands on the same step; keep the grown
    # placement (with the old sentences) if it ever did not
    chosen = again if again.placement.shape == grown.shape else GgufLayout(grown, layout.reasons)
    limit = cap_reason if context >= cap else f"what fits next to the weights {where}"
    return chosen, context, (
        f"context: {context:,} tokens per user, grown from {start:,} into the memory the "
        f"placed weights leave {where} (none given; at most {limit})"
    )


#: The variable each GPU runtime reads to see only some GPUs (their indexes as the vendor's
#: tool lists them: CUDA's with CUDA_DEVICE_ORDER=PCI_BUS_ID, which every CUDA plan sets; a MIG
#: device by its ``MIG-<uuid>``, the only name CUDA takes for one).
VISIBLE_DEVICES_VARIABLE = {"cuda": "CUDA_VISIBLE_DEVICES", "rocm": "HIP_VISIBLE_DEVICES"}


def _visible_devices(accelerator: str, gpus: list[Device], hardware: Hardware) -> dict[str, str]:
    """Pin the planned GPUs when the host has others of the same kind the plan left out (one
    that reports no memory, a card in MIG mode): a split over the planned GPUs must not land on
    it. A planned MIG slice is pinned by its UUID (without it CUDA sees no MIG device, or
    another one); detection plans one slice per service."""
    variable = VISIBLE_DEVICES_VARIABLE.get(accelerator)
    if variable is None or not gpus:
        return {}
    planned = {g.name for g in gpus}
    for gpu in hardware.gpus:
        if gpu.mig_profile is None or f"{accelerator}:{gpu.index}" not in planned:
            continue
        if gpu.mig_uuid is None:
            raise BadInput(
                f"GPU {gpu.index} is a MIG device ({gpu.mig_profile}) without a MIG UUID: "
                f"{str(gpu.uuid)[:60]!r}",
                field="gpus",
            )
        return {variable: gpu.mig_uuid}
    if not memoryless_gpus(hardware, accelerator):
        return {}
    return {variable: ",".join(g.name.split(":", 1)[1] for g in gpus)}


def make_plan(
    hardware: Hardware,
    model: ModelFacts | CatalogModel,
    *,
    concurrency: int = 1,
    context: int | None = None,
    runtime: str = "auto",
    prefer: str = "control",
    model_dir: str = DEFAULT_MODEL_DIR,
    threads: int | None = None,
    gpu_software: GpuSoftwareWanted | None = None,
    context_max: int | None = None,
    vllm_rocm_source: bool = False,
    gpu_memory_utilization: float | None = GPU_MEMORY_UTILIZATION,
) -> Plan:
    """Return the :class:`Plan` for serving ``model`` to ``concurrency`` users on ``hardware``.

    ``context`` is per request (default: 8,192 or the model's native context if smaller).
    ``runtime`` "auto" follows the decision tree in :mod:`rigctl.plan.runtime`; an explicit
    runtime is honoured with warnings when it is a poor fit, and refused with BadInput
    (field runtime) when it cannot run here. Inputs out of range raise BadInput naming the
    field. A host too small for the plan gets ``errors`` in the plan, not an exception.
    ``threads`` overrides llama.cpp's CPU threads (default: the physical cores).
    ``gpu_software`` is the host data's say in the driver and toolkits
    (:mod:`rigctl.plan.gpu_software`); their mismatches are errors of the plan.
    With no ``context``, llama.cpp's and Ollama's context grows from the default into the
    memory the placed weights leave, up to ``context_max`` (default 32,768) and the model's
    trained length (:func:`rigctl.plan.memory.grow_context`); vLLM's --max-model-len grows as
    far as its KV pool holds every user at that length (:func:`rigctl.plan.vllm.grow_vllm_context`).
    ``vllm_rocm_source``: the host data names an index or wheelhouse for vLLM's ROCm build (not
    on PyPI), so ``auto`` may choose vLLM on a supported AMD GPU.
    ``gpu_memory_utilization``: vLLM's --gpu-memory-utilization on GPUs, the share of each
    GPU's memory its budget is (default 0.90, vLLM's); None: only what the layout chosen at
    0.90 needs (:func:`rigctl.plan.vllm.needed_utilization`), for a GPU shared with other
    models (:mod:`rigctl.plan.multi`).
    """
    asked_context = context
    context = validate_inputs(
        model, concurrency=concurrency, context=context, runtime=runtime, prefer=prefer
    )
    context_cap, cap_reason = _context_cap(model.context_length, context_max)
    if asked_context is None:
        context = min(context, context_cap)
    accelerator, warnings = _accelerator(hardware)
    gpus: list[Device] = gpu_devices(hardware, accelerator)
    catalog = model if isinstance(model, CatalogModel) else None
    base = catalog.facts(catalog.quant or catalog.quants[0]) if catalog else model
    assert isinstance(base, ModelFacts)
    has_safetensors = bool((base.hf_repo or base.hf_dir) and base.hf_weights_bytes)
    only_vllm = base.format == "safetensors"
    forced_reason = ""
    if only_vllm and runtime in ("llamacpp", "ollama"):
        raise BadInput(
            f"{base.name} is a Hugging Face safetensors model, which only vLLM serves "
            "(use runtime vllm, or a GGUF of it for llama.cpp and Ollama)",
            field="runtime",
        )
    if only_vllm and runtime == "auto":
        runtime = "vllm"
        forced_reason = (
            f"vLLM: {base.name} is a Hugging Face safetensors model, which only vLLM serves"
        )
    check_requested_runtime(runtime, hardware, accelerator, has_safetensors)
    cc = lowest_compute_capability(hardware)
    reasons: list[str] = []
    errors: list[str] = []

    facts: ModelFacts | None = None
    layout: GgufLayout | None = None
    gguf_reasons: list[str] = []
    if runtime != "vllm":
        if catalog is not None and catalog.quant is None:
            quant, why = choose_quant(
                catalog, hardware, gpus, context_per_slot=context, slots=concurrency
            )
            gguf_reasons.append(why)
            facts = catalog.facts(quant)
        else:
            facts = catalog.facts() if catalog is not None else base
        layout = choose_layout(facts, hardware, gpus, context_per_slot=context, slots=concurrency)
        quant_reasons = list(gguf_reasons)
        gguf_reasons += layout.reasons

    blocker = vllm_blocker(hardware, accelerator, has_safetensors)
    fit: VllmFit | None = None
    choice: CheckpointChoice | None = None
    vllm_base = base
    # Also for an explicit llama.cpp/Ollama: whether vLLM would fit decides a warning.
    # vLLM's ROCm build is not on PyPI: auto considers it only where the host data names an
    # index or a wheelhouse for it (an explicit runtime: vllm is refused by the role without)
    vllm_source = accelerator == "cuda" or (accelerator == "rocm" and vllm_rocm_source)
    if blocker is None and (
        runtime == "vllm" or (vllm_source and wants_vllm(concurrency, prefer))
    ):
        if accelerator == "cpu":
            fit = fit_vllm_cpu(
                base,
                host_device(hardware),
                context=context,
                concurrency=concurrency,
                dtype=cpu_dtype(hardware.cpu.flags),
            )
        else:
            choice = choose_checkpoint(
                catalog.vllm_facts(base) if catalog else [base], gpus, context=context,
                concurrency=concurrency, compute_capability=cc,
                utilization=gpu_memory_utilization,
            )
            fit, vllm_base = choice.fit, choice.facts

    placement = layout.placement if layout else None
    situation = Situation(
        accelerator=accelerator,
        concurrency=concurrency,
        prefer=prefer,
        compute_capability=cc,
        vllm_blocker=blocker,
        vllm_fits=bool(fit and fit.runs and not (choice and choice.blocked)),
        partial_offload=bool(placement and placement.gpus and not placement.full_offload),
        kv_mixed=bool(placement and placement.kv_mixed),
        multi_gpu=bool(placement and placement.gpus_used > 1),
        moe_offload=bool(placement and placement.cpu_moe_layers),
        vllm_source=vllm_source,
    )
    if forced_reason:
        chosen = runtime
        reasons.append(forced_reason)
    elif runtime == "auto":
        chosen, why = choose_runtime(situation)
        reasons.append(why)
    else:
        chosen = runtime
        reasons.append(f"{runtime}: requested explicitly")
        warnings += requested_runtime_warnings(runtime, situation)

    if chosen == "vllm":
        assert fit is not None
        if asked_context is None and fit.device == "gpu":
            grown = grow_vllm_context(vllm_base, gpus, fit, start=context, cap=context_cap,
                                      concurrency=concurrency)
            if grown is not fit:
                limit = cap_reason if grown.context >= context_cap else (
                    "what the KV pool holds for every user")
                reasons.append(
                    f"context: --max-model-len {grown.context:,}, grown from {context:,} "
                    f"(none given) so that the KV pool still holds {concurrency} × the full "
                    f"length (at most {limit})"
                )
                fit, context = grown, grown.context
        exact = catalog.vllm_size_exact(vllm_base.hf_repo) if catalog else True
        planned, args, memory = _vllm_plan(
            vllm_base, fit, context=context, concurrency=concurrency, exact=exact,
            model_dir=model_dir,
        )
        env: dict[str, str] = vllm_env(fit)
        label = checkpoint_label(vllm_base)
        if choice is not None and choice.passed_over:
            reasons.append(
                f"checkpoint {vllm_base.hf_repo} ({label}, {vllm_base.hf_weights_bytes or 0:,} "
                f"bytes), the best quality that serves {concurrency} × {context:,} tokens here; "
                f"not {'; not '.join(choice.passed_over)}"
            )
        if choice is not None and choice.blocked:
            errors.append(choice.blocked)
        reasons.append(vllm_reason(fit, context=context, concurrency=concurrency, label=label))
        reasons.append(f"--max-num-seqs {concurrency}: one running sequence per user")
        if accelerator == "rocm" and runtime == "auto":
            warnings.append("vLLM on ROCm: memory figures assume CUDA's; check the first start")
        if not fit.runs and fit.device == "cpu":
            errors.append(
                f"vLLM cannot load {planned.name}: {gib(fit.weights_per_gpu)} of "
                f"{fit.dtype} weights and {gib(fit.gpus[0].overhead)} of runtime leave no room "
                f"for one {context:,}-token sequence in {gib(fit.gpus[0].usable)} of usable memory"
            )
        elif not fit.runs:
            errors.append(
                f"vLLM cannot load {planned.name}: {gib(fit.weights_per_gpu)} of {label} "
                f"weights per GPU at tensor parallel {fit.tensor_parallel} leave no room for "
                f"one {context:,}-token sequence"
            )
        elif not fit.meets_target:
            warnings.append(
                f"vLLM's KV pool holds {fit.sequences} sequences of {context:,} tokens at once; "
                f"with {concurrency} users at full context the rest wait"
            )
    else:
        assert facts is not None and layout is not None
        if chosen == "ollama" and (layout.placement.cpu_moe_layers or layout.placement.kv_mixed):
            # Ollama has no expert offload (no --n-cpu-moe, no tensor overrides) and one cache
            # type for K and V (OLLAMA_KV_CACHE_TYPE)
            if layout.placement.cpu_moe_layers:
                warnings.append(
                    "Ollama cannot keep a MoE model's experts in RAM and the rest on the GPU "
                    "(llama.cpp's --n-cpu-moe): it gets a plain layer split; runtime: llamacpp "
                    "runs the expert offload"
                )
            if layout.placement.kv_mixed:
                warnings.append(
                    f"Ollama caches K and V in one type (OLLAMA_KV_CACHE_TYPE), not "
                    f"{layout.placement.kv_label}: runtime: llamacpp runs that cache"
                )
            layout = choose_layout(
                facts, hardware, gpus, context_per_slot=context, slots=concurrency,
                moe_offload=False, mixed_kv=False,
            )
            gguf_reasons = [*quant_reasons, *layout.reasons]
        if asked_context is None:
            layout, context, why = _grow_context(
                facts, hardware, gpus, layout, cap=context_cap, cap_reason=cap_reason,
                ollama=chosen == "ollama",
            )
            gguf_reasons = [*quant_reasons, *layout.reasons, why]
        planned, args, env, memory, flag_reasons = _gguf_plan(
            chosen,
            facts,
            layout,
            hardware,
            context=context,
            concurrency=concurrency,
            model_dir=model_dir,
            threads=threads,
        )
        reasons += gguf_reasons + flag_reasons
        errors += preflight.check_memory(memory.placement, unified=hardware.unified_memory)
        uses_cpu = not layout.placement.full_offload or bool(layout.placement.cpu_moe_layers)
        warnings += preflight.check_cpu(hardware, uses_cpu)

    if threads and chosen != "llamacpp":
        warnings.append(f"threads: {threads} in the host data is ignored: {chosen} picks its own")
    elif threads and hardware.cpu.threads and threads > hardware.cpu.threads:
        warnings.append(
            f"threads: -t {threads} is more than the host's {hardware.cpu.threads} hardware "
            "threads; the extra ones only wait on each other"
        )
    driver_warnings, driver_errors = preflight.check_driver(hardware, accelerator, chosen)
    disk_warnings, disk_errors = preflight.check_disk(
        hardware, planned.size_bytes, f"{planned.name} {planned.quant}"
    )
    warnings += driver_warnings + disk_warnings
    errors += driver_errors + disk_errors
    software = plan_gpu_software(
        hardware,
        accelerator,
        chosen,
        llamacpp_backend(hardware.accelerator, memory.gpu_layers) if chosen == "llamacpp" else None,
        gpu_software or GpuSoftwareWanted(),
    )
    reasons += software.reasons
    warnings += software.warnings
    errors += software.errors
    visible = _visible_devices(accelerator, gpus, hardware)
    if visible and (chosen == "vllm" or memory.gpu_layers):
        env = {**env, **visible}
        reasons.append(
            f"{' '.join(f'{k}={v}' for k, v in visible.items())}: only the GPUs planned for"
        )
    if accelerator == "cuda" and (chosen == "vllm" or memory.gpu_layers):
        # nvidia-smi, and so detection and the plan's device order and split, list GPUs in PCI
        # order; CUDA's default numbering (FASTEST_FIRST) differs on a host of mixed GPUs
        env = {**env, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        reasons.append(
            "CUDA_DEVICE_ORDER=PCI_BUS_ID: CUDA numbers the GPUs in nvidia-smi's PCI order, "
            "the order the plan's devices and split follow (CUDA's default puts the fastest first)"
        )
    return Plan(
        runtime=chosen,
        model=planned,
        args=args,
        env=env,
        memory=memory,
        concurrency=concurrency,
        context=context,
        reasons=reasons,
        warnings=warnings,
        errors=errors,
        gpu_software=software.software,
    )
