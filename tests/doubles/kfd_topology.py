"""TEST DOUBLE of an AMD GPU's KFD topology (``/sys/class/kfd/kfd/topology``) in a lab host.

A lab host is a container on a machine without an AMD GPU, and sysfs cannot be written. This
puts a KFD topology, in the kernel's own format, where rigctl's ``KfdNodes`` fact reads it: in
the container's mount namespace only (entered from the controller with ``nsenter``), ``/sys/class``
becomes a tmpfs holding a bind mount of each real class directory plus ``kfd/`` with the double's
nodes. The topology is a real one, read off an RX 7900 XTX (gfx1100, 24 GiB), the fact fixture
``tests/facts/amd.KfdNodes/rx7900xtx.json``. It lasts until the host reboots.

Only what reads ``/sys/class/kfd`` sees a GPU: no device node, no driver. It is for planning
tests (detection, then the pre-flight refusals), never for running anything on the GPU.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from rigctl.lab import LabHost
from rigctl.lab.hosts import container_init

FIXTURE = Path(__file__).resolve().parent.parent / "facts" / "amd.KfdNodes" / "rx7900xtx.json"
NODE_MARKER, BANK_MARKER = "== node ", "== mem_bank "


def topology_files(fixture: Path = FIXTURE) -> dict[str, str]:
    """The fixture's output turned back into the files it was read from, by relative path
    under ``topology/nodes``: ``1/properties``, ``1/mem_banks/0/properties``..."""
    lines = json.loads(fixture.read_text())["output"]
    files: dict[str, list[str]] = {}
    node = current = None
    for line in lines:
        if line.startswith(NODE_MARKER):
            node = line[len(NODE_MARKER):].strip()
            current = f"{node}/properties"
        elif line.startswith(BANK_MARKER) and node is not None:
            current = f"{node}/mem_banks/{line[len(BANK_MARKER):].strip()}/properties"
        elif current is not None:
            files.setdefault(current, []).append(line)
            continue
        else:
            continue
        files.setdefault(current, [])
    return {path: "\n".join(content) + "\n" for path, content in files.items()}


def mount_into(host: LabHost, fixture: Path = FIXTURE) -> None:
    """Make the host's ``/sys/class/kfd`` show the fixture's topology (see the module's doc)."""
    writes = []
    for path, content in sorted(topology_files(fixture).items()):
        target = f"/sys/class/kfd/kfd/topology/nodes/{path}"
        writes.append(
            f"mkdir -p {shlex.quote(target.rsplit('/', 1)[0])} && "
            f"printf %s {shlex.quote(content)} > {shlex.quote(target)}"
        )
    script = " && ".join(
        [
            "set -e",
            "mkdir -p /run/rigctl-test-sysclass",
            "mount --bind /sys/class /run/rigctl-test-sysclass",
            # not a peer of /sys, or the tmpfs below would cover it too
            "mount --make-private /run/rigctl-test-sysclass",
            "mount -t tmpfs -o mode=0755 rigctl-test-kfd /sys/class",
            "for d in /run/rigctl-test-sysclass/*; do n=${d##*/}; mkdir /sys/class/$n; "
            "mount --bind $d /sys/class/$n; done",
            *writes,
        ]
    )
    init = container_init(host.pid)
    if init is None:
        raise RuntimeError(f"lab host {host.name}: no container process found")
    subprocess.run(
        ["nsenter", "-t", str(init), "-m", "--", "sh", "-c", script],
        check=True, capture_output=True, text=True,
    )
