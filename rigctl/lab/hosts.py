"""Lab hosts: real systemd machines on this one, each with sshd on its own loopback address.

A host is an overlay of the base image booted with ``systemd-nspawn --register=no --keep-unit -b``
(``--register=no`` and ``--keep-unit`` because PID 1 here may not be systemd, so there is no
machined to register with), under :mod:`rigctl.lab.supervise`, which boots it again when it
reboots (nspawn's exit status 133), as ``systemd-nspawn@.service`` would. It shares the controller's network namespace: the kernel routes all
of 127.0.0.0/8 to ``lo``, so host N simply binds 127.0.1.N and no address is ever added or left
behind. sshd accepts only the lab's ed25519 key for root; each host's own ed25519 host key is
pinned in the lab's known_hosts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from rigctl.errors import LabError
from rigctl.lab.image import SUITE

BOOT_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
EXEC_TIMEOUT_S = 5.0


@dataclass
class LabHost:
    name: str
    index: int
    address: str
    root: str  # the booted root filesystem (overlay mount point)
    pid: int | None = None  # the supervisor of its systemd-nspawn (rigctl.lab.supervise)
    pid_namespace: str | None = None  # "pid:[inode]" of the container: how to find its processes
    host_key: str | None = None  # "ssh-ed25519 AAAA..."
    # The Debian release of its image, fixed when the host is created: its disk (the overlay's
    # upper layer) only makes sense over that image. host.json files from before releases
    # existed lack it, and those hosts were all bookworm.
    release: str = SUITE

    @property
    def dir(self) -> Path:
        return Path(self.root).parent

    def save(self) -> None:
        (self.dir / "host.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, host_dir: Path) -> LabHost | None:
        try:
            return cls(**json.loads((host_dir / "host.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    # -- liveness

    def process_alive(self) -> bool:
        if not self.pid:
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"systemd-nspawn" in cmdline and self.root.encode() in cmdline

    def ssh_ready(self, timeout: float = 1.0) -> bool:
        """sshd answers with its banner (a listening socket alone is not enough)."""
        try:
            with socket.create_connection((self.address, 22), timeout=timeout) as sock:
                sock.settimeout(timeout)
                return sock.recv(4).startswith(b"SSH-")
        except OSError:
            return False


# --------------------------------------------------------------------------- preparing


def prepare_root(host: LabHost, image: Path, public_key: str) -> str:
    """Mount the host's overlay and give it its identity; returns its ed25519 host public key."""
    host_dir = host.dir
    root = Path(host.root)
    for sub in ("upper", "work"):
        (host_dir / sub).mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    if not _is_mounted(root):
        options = f"lowerdir={image},upperdir={host_dir / 'upper'},workdir={host_dir / 'work'}"
        result = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LabError(f"lab host {host.name}: overlay mount failed: {result.stderr.strip()}")

    (root / "etc/hostname").write_text(f"{host.name}\n")
    hosts_file = root / "etc/hosts"
    hosts_file.write_text(f"127.0.0.1\tlocalhost\n{host.address}\t{host.name}\n")
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():
        machine_id.write_text(uuid.uuid4().hex + "\n")

    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key.strip() + "\n")
    os.chmod(ssh_dir / "authorized_keys", 0o600)

    key = root / "etc/ssh/ssh_host_ed25519_key"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(key)],
            check=True,
            capture_output=True,
        )
    (root / "etc/ssh/sshd_config.d/rigctl-lab.conf").write_text(
        "# Written by rigctl lab: this host's sshd listens on its own loopback address only.\n"
        f"ListenAddress {host.address}\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UseDNS no\n"
    )
    public = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    return f"{public[0]} {public[1]}"


def _is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts if len(line.split()) > 1)


# --------------------------------------------------------------------------- boot and stop


def boot(
    host: LabHost, binds: dict[Path, str] | None = None, ro_binds: dict[Path, str] | None = None
) -> None:
    """Start systemd-nspawn for the host in its own session (it outlives this process), under
    the supervisor that boots it again after a reboot.

    ``binds`` maps controller directories to paths inside the host (shared caches);
    ``ro_binds`` likewise, read-only (the controller's CA bundle).
    """
    log = open(host.dir / "console.log", "ab")  # noqa: SIM115 (handed to the child)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rigctl.lab.supervise",
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            "--boot",
            f"--directory={host.root}",
            f"--machine={host.name}",
            "--console=read-only",
            *[f"--bind={source}:{target}" for source, target in (binds or {}).items()],
            *[f"--bind-ro={source}:{target}" for source, target in (ro_binds or {}).items()],
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    host.pid = process.pid
    _await_exec(host, process)


def _await_exec(host: LabHost, process: subprocess.Popen[bytes]) -> None:
    """Return once the host is recognisable as alive, or its systemd-nspawn has exited.

    Popen returns as soon as the child's exec has closed its close-on-exec pipe, a moment
    before the kernel publishes the new command line: read then, /proc/PID/cmdline is empty and
    ``process_alive`` would call a host that is booting dead (a lone ``up_host`` checks at once).
    """
    deadline = time.monotonic() + EXEC_TIMEOUT_S
    while not host.process_alive() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def wait_ready(host: LabHost, timeout: float = BOOT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not host.process_alive():
            _reap(host.pid)
            raise LabError(f"lab host {host.name}: systemd-nspawn exited: {console_tail(host)}")
        if host.ssh_ready():
            host.pid_namespace = _container_pid_namespace(host.pid)
            return
        time.sleep(0.3)
    raise LabError(
        f"lab host {host.name}: sshd not answering on {host.address}:22 after {timeout:.0f}s: "
        f"{console_tail(host)}"
    )


def console_tail(host: LabHost) -> str:
    try:
        lines = (host.dir / "console.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no console output"
    lines = [line for line in lines if line.strip()]
    return lines[-1].strip() if lines else "no console output"


def stop(host: LabHost, timeout: float = STOP_TIMEOUT_S) -> None:
    """Shut the host down cleanly (nspawn turns SIGTERM into a poweroff), then make sure."""
    if host.process_alive() and host.pid:
        # a host that rebooted runs in a new PID namespace
        host.pid_namespace = _container_pid_namespace(host.pid) or host.pid_namespace
        with contextlib.suppress(ProcessLookupError):
            os.kill(host.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while host.process_alive() and time.monotonic() < deadline:
            _reap(host.pid)
            time.sleep(0.2)
        if host.process_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(host.pid, signal.SIGKILL)
    _reap(host.pid)
    # Anything still running in the container (a wedged service) goes too.
    for pid in processes_in_namespace(host.pid_namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    root = Path(host.root)
    for _ in range(50):
        if not _is_mounted(root):
            break
        subprocess.run(["umount", str(root)], capture_output=True, check=False)
        if _is_mounted(root):
            time.sleep(0.1)
    if _is_mounted(root):
        raise LabError(f"lab host {host.name}: could not unmount {root}")
    host.pid = None


def _reap(pid: int | None) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    if pid:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def container_init(supervisor_pid: int | None) -> int | None:
    """The container's init as this machine sees it: the first process under the supervisor
    (its systemd-nspawn, then nspawn's child) whose PID namespace is not the controller's."""
    if not supervisor_pid:
        return None
    try:
        own = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    queue = list(children.get(supervisor_pid, []))
    while queue:
        pid = queue.pop(0)
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != own:
                return pid
        except OSError:
            continue
        queue += children.get(pid, [])
    return None


def _container_pid_namespace(supervisor_pid: int | None) -> str | None:
    """The PID namespace of the container's init: how to find all of its processes."""
    init = container_init(supervisor_pid)
    if init is None:
        return None
    try:
        return os.readlink(f"/proc/{init}/ns/pid")
    except OSError:
        return None


def processes_in_namespace(pid_namespace: str | None) -> list[int]:
    """PIDs living in a container's PID namespace (its processes are invisible by root path:
    each sees its own mount namespace, where its root is "/")."""
    if not pid_namespace:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns/pid") == pid_namespace:
                found.append(int(entry.name))
        except OSError:
            continue
    return found
