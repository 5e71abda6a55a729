"""A CPU quota on one process of a lab host, put on and taken off by a test, from the controller.

A fault test that needs a server slowed far beyond the noise of a loaded machine holds it to a
CFS quota: a ceiling on its CPU time per 100 ms period, which other load can only lower further.

Why from the controller and not ``systemctl set-property --runtime UNIT CPUQuota=`` on the host:
on a cgroup v1 (hybrid) controller, as on the 2-core CI runner, systemd-nspawn mounts the cpu
controller read-only inside the container, so the lab host's systemd accepts ``CPUQuota=`` and
enforces nothing. The controller's root owns that hierarchy: the process is moved into a cgroup
of the test's own (``rigctl-test-quota-*``) with the quota on it. On a pure cgroup v2 controller
the quota is written to the ``cpu.max`` of the process's own cgroup when the cpu controller is
enabled there (the unit's cgroup, delegated to the container's systemd).

Either way nothing outlives the test: the v1 cgroup holds only the throttled process (a restart
of the unit starts a new process outside it) and is removed afterwards, its stragglers moved
back first; a v2 ``cpu.max`` is set back to ``max``. ``release_all`` sweeps what a crashed run
left behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rigctl.lab import LabHost

PREFIX = "rigctl-test-quota-"
PERIOD_US = 100_000


def host_pids(host: LabHost, exe_name: str) -> dict[int, int]:
    """The processes of a lab host whose executable is named ``exe_name``: {PID in the host's
    namespace: PID on the controller}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != host.pid_namespace:
                continue
            if os.path.basename(os.readlink(entry / "exe")) != exe_name:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                found[int(line.split()[-1])] = int(entry.name)
    return found


def _mounts(fstype: str) -> list[tuple[str, set[str]]]:
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] == fstype:
            mounts.append((fields[1], set(fields[3].split(","))))
    return mounts


def _v1_cpu_mount() -> Path | None:
    return next((Path(m) for m, options in _mounts("cgroup") if "cpu" in options), None)


class CpuQuota:
    """``with CpuQuota("rtest2", 10) as quota: quota.hold(pid)``: process ``pid`` (a controller
    PID) gets at most ``percent`` % of one CPU until the block ends."""

    def __init__(self, name: str, percent: float) -> None:
        assert 0 < percent <= 100
        self.name = name
        self.quota_us = int(PERIOD_US * percent / 100)
        self.v1_group: Path | None = None
        self.v2_max: Path | None = None

    def __enter__(self) -> CpuQuota:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def hold(self, pid: int) -> None:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        entries = [line.split(":", 2) for line in lines]
        v1 = _v1_cpu_mount()
        for _id, controllers, path in entries:
            if v1 is not None and "cpu" in controllers.split(","):
                group = v1 / path.lstrip("/") / f"{PREFIX}{self.name}"
                group.mkdir(exist_ok=True)
                self.v1_group = group
                (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
                (group / "cpu.cfs_quota_us").write_text(f"{self.quota_us}\n")
                (group / "cgroup.procs").write_text(f"{pid}\n")  # all its threads move with it
                return
        for _id, controllers, path in entries:
            if _id == "0" and controllers == "":
                for mount, _options in _mounts("cgroup2"):
                    cpu_max = Path(mount) / path.lstrip("/") / "cpu.max"
                    if cpu_max.exists():
                        self.v2_max = cpu_max
                        cpu_max.write_text(f"{self.quota_us} {PERIOD_US}\n")
                        return
        raise AssertionError(
            f"no cpu controller to put a quota on process {pid} with: neither a cgroup v1 cpu "
            f"hierarchy nor cpu.max in its cgroup v2 ({lines})"
        )

    def throttled_periods(self) -> int:
        """How many periods the held process was throttled (it did run into the quota)."""
        group = self.v1_group or (self.v2_max.parent if self.v2_max else None)
        assert group is not None, "hold() was not called"
        for line in (group / "cpu.stat").read_text().splitlines():
            if line.startswith("nr_throttled "):
                return int(line.split()[1])
        return 0

    def release(self) -> None:
        if self.v1_group is not None:
            _remove_v1(self.v1_group)
            self.v1_group = None
        if self.v2_max is not None:
            with contextlib.suppress(OSError):  # gone with its unit's restart: nothing to undo
                self.v2_max.write_text(f"max {PERIOD_US}\n")
            self.v2_max = None


def _remove_v1(group: Path) -> None:
    for pid in (group / "cgroup.procs").read_text().split():
        with contextlib.suppress(OSError):  # exited meanwhile
            (group.parent / "cgroup.procs").write_text(f"{pid}\n")
    group.rmdir()


def release_all() -> None:
    """Remove every cgroup v1 quota group a test left behind (one that died mid-test)."""
    v1 = _v1_cpu_mount()
    if v1 is not None:
        for group in v1.glob(f"**/{PREFIX}*"):
            if group.is_dir():
                _remove_v1(group)
