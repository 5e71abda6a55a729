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
from xml.etree import ElementTree

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


#: ``nvidia-smi -L``'s lines: a GPU, and under it each MIG device (R470 and newer drivers name
#: MIG devices ``MIG-<uuid>``; the older ``MIG-GPU-<uuid>/<gi>/<ci>`` is refused, those drivers
#: are below every CUDA the pinned runtimes need). Real lines, NVIDIA/go-dcgm#30:
#: ``GPU 0: NVIDIA A100 80GB PCIe (UUID: GPU-41255406-c9af-f94b-4ebf-9d57ad1853da)``,
#: ``  MIG 2g.20gb     Device  0: (UUID: MIG-a65afc88-50b5-5ccf-b0a8-f93b3247ae9e)``
_UUID = r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
_LIST_GPU = re.compile(rf"GPU (\d{{1,3}}): (.{{1,120}}?) \(UUID: (GPU-{_UUID})\)")
_LIST_MIG = re.compile(
    r"\s+MIG ([0-9]{1,2}g\.[0-9]{1,4}gb(?:\+[a-z0-9]{1,8})?)\s+Device\s+(\d{1,3}): "
    rf"\(UUID: (MIG-{_UUID})\)"
)
_MIB = re.compile(r"(\d{1,9}) MiB")
#: ``--query-gpu=uuid,mig.mode.current --format=csv,noheader``: "GPU-..., Enabled"
_QUERY_MODE = re.compile(rf"(GPU-{_UUID}), (Enabled|Disabled|\[N/A\])")


class NvidiaMigDevice(TypedDict):
    index: int  # "Device N" of nvidia-smi -L, <index> of nvidia-smi -q -x
    profile: str | None  # "3g.40gb"; a name, not a size (see NvidiaMig)
    uuid: str | None  # "MIG-..."; None when -L did not list the device
    memory_mib: int | None  # the slice's framebuffer, from nvidia-smi -q -x


class NvidiaMigGpu(TypedDict):
    index: int | None  # nvidia-smi's index, from -L; None when -L did not list the GPU
    uuid: str
    mig_mode: str  # Enabled | Disabled | N/A: <current_mig>
    devices: list[NvidiaMigDevice]


class NvidiaMig(FactBase[list[NvidiaMigGpu] | None]):
    """
    Returns each GPU's MIG mode and MIG devices (slices) when some GPU has MIG enabled, an
    empty list when none has, or ``None`` where nvidia-smi is not installed.

    With MIG on, ``--query-gpu=memory.total`` still reports the whole card (an A100 80GB says
    81920 MiB) while a process sees only its slice. A slice's memory comes from
    ``nvidia-smi -q -x``'s ``<mig_device><fb_memory_usage><total>`` (19968 MiB for an A100
    40GB's 3g.20gb in a real capture: netdata's ``testdata/a100-sxm4-mig.xml``), never from the
    profile's name: the name is a rounded share of the card, above the real size even read as
    GB of 10^9 bytes (``nvidia-smi mig -lgip``: H100 NVL ``1g.12gb`` 10.75 GiB = 11.5 GB,
    GB200 ``1g.24gb`` 20.00 GiB = 21.5 GB; NVIDIA/gpu-operator#900 and #1303). That XML carries
    no MIG UUID on some drivers, so the UUIDs and profiles come from ``nvidia-smi -L``, joined by
    GPU UUID and device index. Both are read only when ``mig.mode.current`` says Enabled.

    Output is untrusted: GPU and MIG UUIDs must have their exact shape, other lines are
    ignored, and an XML document that declares entities is not parsed at all.

    .. code:: python

        [
            {
                "index": 0,
                "uuid": "GPU-27b94a00-ed54-5c24-b1fd-1054085de32a",
                "mig_mode": "Enabled",
                "devices": [
                    {
                        "index": 0,
                        "profile": "3g.20gb",
                        "uuid": "MIG-5c1c5a11-6c1e-5ad1-9d2e-1f0b3f6e8a21",
                        "memory_mib": 19968,
                    },
                ],
            },
        ]
    """

    def requires_command(self) -> str:
        return "nvidia-smi"

    def command(self) -> str:
        # the query first: it names each GPU's mode even when the XML cannot be read
        return (
            "m=$(nvidia-smi --query-gpu=uuid,mig.mode.current --format=csv,noheader "
            '2>/dev/null); case "$m" in *Enabled*) echo "$m"; nvidia-smi -L 2>/dev/null; '
            "nvidia-smi -q -x 2>/dev/null;; esac; true"
        )

    def process(self, output: list[str]) -> list[NvidiaMigGpu] | None:
        start = next((i for i, line in enumerate(output) if line.startswith("<?xml")), None)
        text = output if start is None else output[:start]
        queried = {
            match.group(1): match.group(2).strip("[]")
            for match in (_QUERY_MODE.fullmatch(line.strip()) for line in text)
            if match
        }
        listed = _mig_list(text)
        xml = _mig_xml("\n".join(output[start:])) if start is not None else {}
        gpus: list[NvidiaMigGpu] = []
        for uuid in dict.fromkeys([*queried, *xml, *listed]):
            index, devices = listed.get(uuid, (None, {}))
            xml_mode, memory = xml.get(uuid, (None, {}))
            # a GPU that -L lists MIG devices under is in MIG mode, whatever else failed
            mode = queried.get(uuid) or xml_mode or ("Enabled" if devices else "N/A")
            gpus.append(
                NvidiaMigGpu(
                    index=index,
                    uuid=uuid,
                    mig_mode=mode,
                    devices=[
                        NvidiaMigDevice(
                            index=device,
                            profile=devices[device][0] if device in devices else None,
                            uuid=devices[device][1] if device in devices else None,
                            memory_mib=memory.get(device),
                        )
                        for device in sorted(set(devices) | set(memory))
                    ],
                )
            )
        return gpus


def _mig_list(lines: list[str]) -> dict[str, tuple[int, dict[int, tuple[str, str]]]]:
    """``nvidia-smi -L``: GPU UUID -> (index, {device index: (profile, MIG UUID)})."""
    listed: dict[str, tuple[int, dict[int, tuple[str, str]]]] = {}
    current: dict[int, tuple[str, str]] | None = None
    for line in lines:
        gpu = _LIST_GPU.fullmatch(line.rstrip())
        if gpu:
            current = {}
            listed[gpu.group(3)] = (int(gpu.group(1)), current)
            continue
        mig = _LIST_MIG.fullmatch(line.rstrip())
        if mig and current is not None:
            current[int(mig.group(2))] = (mig.group(1), mig.group(3))
        elif not line.startswith(" "):
            current = None  # junk between a GPU and its devices ends that GPU's list
    return listed


def _mig_xml(text: str) -> dict[str, tuple[str, dict[int, int]]]:
    """``nvidia-smi -q -x``: GPU UUID -> (MIG mode, {MIG device index: memory MiB})."""
    if "<!ENTITY" in text:
        return {}  # nvidia-smi declares none; expansion is how a hostile document blows up
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return {}
    found: dict[str, tuple[str, dict[int, int]]] = {}
    for gpu in root.iter("gpu"):
        uuid = (gpu.findtext("uuid") or "").strip()
        if not re.fullmatch(f"GPU-{_UUID}", uuid):
            continue
        mode = (gpu.findtext("mig_mode/current_mig") or "").strip()
        memory: dict[int, int] = {}
        for device in gpu.iterfind("mig_devices/mig_device"):
            index = to_int(device.findtext("index"))
            total = _MIB.fullmatch((device.findtext("fb_memory_usage/total") or "").strip())
            if index is not None and total:
                memory[index] = int(total.group(1))
        found[uuid] = (mode if mode in ("Enabled", "Disabled") else "N/A", memory)
    return found


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
