"""rigctl.health.offload_problem: a llama-server that answers but fell back to the CPU (its GPU
backend failed to start) is not serving as planned. The log lines are llama.cpp's own formats at
the pinned commit (src/llama-model.cpp, src/llama.cpp, common/arg.cpp, ggml-cuda.cu)."""

from __future__ import annotations

from rigctl.health import Offload, offload_problem

CUDA = Offload("CUDA0", 19)

SERVED_ON_CUDA = [
    "llama_model_load_from_file_impl: using device CUDA0 (NVIDIA GeForce RTX 4090) (0000:01:00.0) - 23770 MiB free",
    "load_tensors: offloading output layer to GPU",
    "load_tensors: offloading 17 repeating layers to GPU",
    "load_tensors: offloaded 19/19 layers to GPU",
    "load_tensors:        CUDA0 model buffer size =   241.41 MiB",
    "load_tensors:   CPU_Mapped model buffer size =    80.00 MiB",
]

CUDA_FAILED = [
    "ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected",
    "warning: no usable GPU found, --gpu-layers option will be ignored",
    "warning: one possible reason is that llama.cpp was compiled without GPU support",
    "load_tensors:   CPU_Mapped model buffer size =   241.41 MiB",
]


def test_a_model_on_its_planned_device_passes() -> None:
    assert offload_problem(SERVED_ON_CUDA, CUDA) is None


def test_a_failed_cuda_backend_is_named_by_its_own_error() -> None:
    problem = offload_problem(CUDA_FAILED, CUDA)
    assert problem == "ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected"


def test_fewer_layers_than_planned_or_no_buffer_on_the_device_fail() -> None:
    partial = [line.replace("19/19", "10/19") for line in SERVED_ON_CUDA]
    assert offload_problem(partial, CUDA) == "10/19 layers offloaded, planned 19"
    no_buffer = [line for line in SERVED_ON_CUDA if "CUDA0 model buffer" not in line]
    assert offload_problem(no_buffer, CUDA) == "no model buffer on CUDA0"
    assert "no layers offloaded" in (offload_problem(["server is listening"], CUDA) or "")


def test_a_plan_of_more_layers_than_the_model_has_is_capped() -> None:
    # -ngl 999 style plans: llama.cpp caps at the model's count and says so
    assert offload_problem(SERVED_ON_CUDA, Offload("CUDA0", 999)) is None


def test_vulkan_on_lavapipe() -> None:
    lines = [
        "llama_model_load_from_file_impl: using device Vulkan0 (llvmpipe (LLVM 19.1.7, 256 bits)) (unknown id) - 11897 MiB free",
        "load_tensors: offloaded 19/19 layers to GPU",
        "load_tensors:      Vulkan0 model buffer size =   241.41 MiB",
    ]
    assert offload_problem(lines, Offload("Vulkan0", 19)) is None
    assert offload_problem(["ggml_vulkan: No devices found."], Offload("Vulkan0", 19)) == (
        "ggml_vulkan: No devices found."
    )
