"""NVIDIA: GPUs from ``nvidia-smi``, the driver's CUDA level, the CUDA toolkit, Jetson boards.

Every command here is safe on a host with no NVIDIA hardware: the binary-dependent facts use
``requires_command`` (pyinfra then returns ``default()``), the file readers end in ``|| true``.
nvidia-smi exits non-zero when it cannot talk to the driver ("NVIDIA-SMI has failed because it
couldn't communicate with the NVIDIA driver"); that must not fail the host, so its exit status
is dropped and the unparseable message simply yields no GPU.
"""

from __future__ import annotations

import re
from typing import TypedDict

from rigctl.facts._parse import to_int, version_key
from rigctl.pyinfra_api import FactBase

#: The ``--query-gpu`` fields :class:`NvidiaGpus` asks for, in output order.
NVIDIA_QUERY_FIELDS = ("index", "name", "uuid", "memory.total", "driver_version", "compute_cap")


class NvidiaGpu(TypedDict):
    index: int
    name: str
    uuid: str | None
    memory_mib: int | None  # None where nvidia-smi says "[N/A]" (Jetson, some vGPUs)
    driver_version: str | None
    compute_capability: str | None  # "8.9"


class NvidiaGpus(FactBase[list[NvidiaGpu] | None]):
    """
    Returns the GPUs ``nvidia-smi`` lists, or ``None`` where nvidia-smi is not installed.
    An empty list means nvidia-smi ran but listed nothing it could parse (driver not loaded,
    or a driver too old to know ``compute_cap``).

    .. code:: python

        [
            {
                "index": 0,
                "name": "NVIDIA GeForce RTX 4090",
                "uuid": "GPU-5a6e4a3c-8f0e-4b2b-9d53-0c1e8f3b6a71",
                "memory_mib": 24564,
                "driver_version": "550.54.14",
                "compute_capability": "8.9",
            },
        ]
    """

    def requires_command(self) -> str:
        return "nvidia-smi"

    def command(self) -> str:
        fields = ",".join(NVIDIA_QUERY_FIELDS)
        return f"nvidia-smi --query-gpu={fields} --format=csv,noheader,nounits 2>/dev/null || true"

    def process(self, output: list[str]) -> list[NvidiaGpu] | None:
        gpus: list[NvidiaGpu] = []
        for line in output:
            fields = [field.strip() for field in line.split(",")]
            if len(fields) != len(NVIDIA_QUERY_FIELDS):
                continue
            index, name, uuid, memory, driver, compute_cap = fields
            if to_int(index) is None or not name:
                continue
            gpus.append(
                NvidiaGpu(
                    index=int(index),
                    name=name,
                    uuid=uuid if uuid.startswith(("GPU-", "MIG-")) else None,
                    memory_mib=to_int(memory),
                    driver_version=driver if re.fullmatch(r"\d+(\.\d+)+", driver) else None,
                    compute_capability=(
                        compute_cap if re.fullmatch(r"\d+\.\d+", compute_cap) else None
                    ),
                )
            )
        return gpus


class NvidiaCudaDriverVersion(FactBase[str | None]):
    """
    Returns the highest CUDA version the installed driver supports, from the header of the
    plain ``nvidia-smi`` table (``CUDA Version: 12.4``), or ``None``.

    .. code:: python

        "12.4"
    """

    def requires_command(self) -> str:
        return "nvidia-smi"

    def command(self) -> str:
        return "nvidia-smi 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        for line in output:
            match = re.search(r"CUDA Version:\s*(\d+\.\d+)", line)
            if match:
                return match.group(1)
        return None


class CudaToolkit(FactBase[str | None]):
    """
    Returns the installed CUDA toolkit version (major.minor), or ``None`` when there is none.

    Read from ``nvcc --version`` ("release 12.4, V12.4.131"), trying ``/usr/local/cuda/bin`` as
    well since it is rarely on a non-interactive PATH; without nvcc, from
    ``/usr/local/cuda*/version.json`` (``{"cuda": {"version": "12.4.1"}}``) or, before CUDA 11.1,
    ``version.txt`` ("CUDA Version 10.2.89"). With several toolkits installed, the highest wins.

    .. code:: python

        "12.4"
    """

    def command(self) -> str:
        return (
            "if command -v nvcc >/dev/null 2>&1; then nvcc --version 2>/dev/null; "
            "elif [ -x /usr/local/cuda/bin/nvcc ]; then /usr/local/cuda/bin/nvcc --version "
            "2>/dev/null; "
            "else for f in /usr/local/cuda*/version.json /usr/local/cuda*/version.txt; do "
            '[ -r "$f" ] && cat "$f"; done; fi; true'
        )

    def process(self, output: list[str]) -> str | None:
        text = "\n".join(output)
        versions = re.findall(r"release (\d+\.\d+), V", text)
        versions += re.findall(r'"cuda"\s*:\s*\{[^}]*?"version"\s*:\s*"(\d+\.\d+)', text)
        versions += re.findall(r"^CUDA Version (\d+\.\d+)", text, flags=re.MULTILINE)
        return max(versions, key=version_key) if versions else None


class NvidiaDriverProc(FactBase[str | None]):
    """
    Returns the version of the loaded NVIDIA kernel module, from the first line of
    ``/proc/driver/nvidia/version``, or ``None`` when no NVIDIA module is loaded. Present even
    when nvidia-smi is missing, so it tells "driver loaded, tools missing" from "no driver".

    .. code:: python

        "550.54.14"
    """

    def command(self) -> str:
        return "cat /proc/driver/nvidia/version 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        for line in output[:1]:
            # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 ..." or, for
            # the open modules, "... UNIX Open Kernel Module for x86_64  550.54.14  Release Build"
            match = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)", line)
            if match:
                return match.group(1)
        return None


class JetsonRelease(FactBase[str | None]):
    """
    Returns the L4T (Jetson Linux) release from ``/etc/nv_tegra_release``, or ``None`` on
    anything that is not a Jetson. "# R36 (release), REVISION: 3.0, ..." is L4T 36.3.0.

    .. code:: python

        "36.3.0"
    """

    def command(self) -> str:
        return "cat /etc/nv_tegra_release 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        for line in output:
            match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)", line)
            if match:
                return f"{match.group(1)}.{match.group(2)}"
        return None
