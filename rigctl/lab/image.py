"""The lab's base images: a Debian root filesystem per release, made by debootstrap, built once.

Every lab host boots an overlay of its release's image (``images/<release>/rootfs``), so the
~40 s debootstrap happens once per machine and release, not once per host or per test run. The
images are bare on purpose (minbase plus what a real server has: systemd, dbus, sshd): whatever
rigctl needs on a host, its roles install.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from rigctl.errors import LabError

#: The Debian releases a lab host can run: the stable one rigctl targets first, and the next.
RELEASES = ("bookworm", "trixie")
SUITE = RELEASES[0]  # what a host runs unless told otherwise

# What a bare Debian server has beyond minbase: an init, a bus, a way in, and the tools an
# operator (and testinfra's checks) expect: ps, ss, ip.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "ca-certificates",
    "iproute2",
    "procps",
)

COMPLETE_MARKER = ".rigctl-image-complete"


def check_release(release: str) -> str:
    """The release itself when the lab knows it; otherwise one line naming the ones it does
    (debootstrap would take any suite name and fail a minute later, or boot something untested)."""
    if release not in RELEASES:
        raise LabError(f"lab release must be one of {', '.join(RELEASES)}, got {release!r}")
    return release


def image_path(images_dir: Path, suite: str = SUITE) -> Path:
    return images_dir / check_release(suite) / "rootfs"


def image_ready(images_dir: Path, suite: str = SUITE) -> bool:
    return (image_path(images_dir, suite) / COMPLETE_MARKER).exists()


def build_image(images_dir: Path, *, mirror: str | None = None, suite: str = SUITE) -> Path:
    """Return the cached image, building it with debootstrap first when missing.

    The build goes to a temporary directory renamed into place when complete, so an
    interrupted build never leaves a half image that later runs would trust.
    """
    target = image_path(images_dir, suite)
    if image_ready(images_dir, suite):
        return target
    scratch = target.with_name(f"rootfs.building-{int(time.time())}")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob("rootfs.building-*"):
        shutil.rmtree(stale, ignore_errors=True)
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        suite,
        str(scratch),
    ]
    if mirror:
        command.append(mirror)
    log_file = target.parent / "debootstrap.log"
    with log_file.open("wb") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-1:]
        shutil.rmtree(scratch, ignore_errors=True)
        raise LabError(
            f"debootstrap {suite} failed (exit {result.returncode}): "
            f"{tail[0] if tail else 'no output'} (log: {log_file})"
        )
    _strip_identity(scratch)
    (scratch / COMPLETE_MARKER).write_text(f"{suite} {' '.join(BASE_PACKAGES)}\n")
    if target.exists():
        shutil.rmtree(target)
    scratch.rename(target)
    return target


def _strip_identity(rootfs: Path) -> None:
    """Remove what must differ per host: SSH host keys and the machine id."""
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    machine_id = rootfs / "etc/machine-id"
    if machine_id.exists():
        machine_id.write_text("")
    # No package caches in the image: hosts run `apt-get update` themselves, like real ones.
    for lists in (rootfs / "var/lib/apt/lists").glob("*_Packages"):
        lists.unlink()
