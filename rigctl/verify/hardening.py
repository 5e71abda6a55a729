"""The hardening each runtime's unit must have in force, as ``systemctl show`` prints it.

The values mirror what rigctl writes: ``templates/llama-server.service.j2`` (llama.cpp),
``templates/vllm.service.j2`` (vLLM) and ``templates/ollama-dropin.conf.j2`` (rigctl's drop-in
over upstream's Ollama unit). A unit test
reads those templates and fails when a hardening directive there is not checked here.
``systemctl show`` reports the loaded unit, i.e. what is in force, not what a file says.
"""

from __future__ import annotations

from dataclasses import dataclass

#: System calls that @privileged, @mount and @obsolete cover: none may be allowed.
DENIED_SYSCALLS_ALL = (
    "mount",
    "umount2",
    "reboot",
    "swapon",
    "init_module",
    "kexec_load",
    "chroot",
)
#: ... and @resources, which llama.cpp's unit denies too (vLLM pins threads and binds memory).
DENIED_SYSCALLS = (*DENIED_SYSCALLS_ALL, "setrlimit")


@dataclass(frozen=True)
class Expected:
    """What one property must be.

    ``kind``: ``exact`` (the value), ``one_of`` (any of the words: systemd versions print some
    values differently), ``same_words`` (the same set of words, any order), ``includes`` (these
    words among others), ``allowlist_without`` (an allow-list, ``~`` would make it a deny-list,
    that lists none of these words).
    """

    value: str
    kind: str = "exact"

    def problem(self, name: str, shown: str | None) -> str | None:
        """Why ``shown`` does not hold, or None."""
        if shown is None:
            return f"{name} not reported by systemctl"
        words = shown.split()
        wanted = self.value.split()
        if self.kind == "exact":
            ok = shown == self.value
        elif self.kind == "one_of":
            ok = shown in wanted
        elif self.kind == "same_words":
            ok = sorted(words) == sorted(wanted)
        elif self.kind == "includes":
            missing = [w for w in wanted if w not in words]
            if missing:
                return f"{name} lacks {' '.join(missing)}"
            ok = True
        elif self.kind == "allowlist_without":
            if not words or shown.startswith("~"):
                return f"{name} is not an allow-list"
            allowed = [w for w in wanted if w in words]
            if allowed:
                return f"{name} allows {' '.join(allowed)}"
            ok = True
        else:
            raise ValueError(f"unknown kind {self.kind}")
        if ok:
            return None
        return f"{name}={shown or '(empty)'}, expected {self.value or '(empty)'}"


#: Directives every rigctl unit (and Ollama's drop-in) sets the same way.
_COMMON: dict[str, Expected] = {
    "NoNewPrivileges": Expected("yes"),
    "CapabilityBoundingSet": Expected(""),
    "AmbientCapabilities": Expected(""),
    "ProtectSystem": Expected("strict"),
    "ProtectHome": Expected("yes"),
    "PrivateTmp": Expected("yes"),
    "ProtectKernelTunables": Expected("yes"),
    "ProtectKernelModules": Expected("yes"),
    "ProtectKernelLogs": Expected("yes"),
    "ProtectControlGroups": Expected("yes"),
    "ProtectClock": Expected("yes"),
    "ProtectHostname": Expected("yes"),
    "ProtectProc": Expected("invisible"),
    "RestrictNamespaces": Expected("yes"),
    "RestrictRealtime": Expected("yes"),
    "RestrictSUIDSGID": Expected("yes"),
    "LockPersonality": Expected("yes"),
    "RemoveIPC": Expected("yes"),
    "UMask": Expected("0077"),
    "SystemCallArchitectures": Expected("native"),
    "SystemCallErrorNumber": Expected("1 EPERM", "one_of"),
    # PrivateDevices=yes implies a closed device policy too: closed either way
    "DevicePolicy": Expected("closed"),
}

GPU_BACKENDS = ("cuda", "rocm", "vulkan")


def _families(netlink: bool) -> Expected:
    return Expected("AF_INET AF_INET6 AF_UNIX" + (" AF_NETLINK" if netlink else ""), "same_words")


def expected(
    runtime: str, backend: str | None, read_only: list[str], writable: list[str]
) -> dict[str, Expected]:
    """The properties ``runtime``'s unit must show; empty when rigctl has no profile for it.

    + backend: llama.cpp's or vLLM's (``cpu``, ``cuda``...; GPU units open device nodes instead
      of ``PrivateDevices``)
    + read_only: paths the service must see read-only (its model, its key's directory)
    + writable: paths it may write (Ollama's model store)
    """
    gpu = backend in GPU_BACKENDS
    if runtime == "llamacpp":
        profile = {
            **_COMMON,
            "SystemCallFilter": Expected(" ".join(DENIED_SYSCALLS), "allowlist_without"),
            "RestrictAddressFamilies": _families(netlink=gpu),
            "PrivateDevices": Expected("no" if gpu else "yes"),
        }
        if not gpu:
            profile.update(MemoryDenyWriteExecute=Expected("yes"), PrivateUsers=Expected("yes"))
    elif runtime == "vllm":
        profile = {
            **_COMMON,
            "SystemCallFilter": Expected(" ".join(DENIED_SYSCALLS_ALL), "allowlist_without"),
            "RestrictAddressFamilies": _families(netlink=True),
            "PrivateDevices": Expected("no" if gpu else "yes"),
        }
        if not gpu:
            profile["PrivateUsers"] = Expected("yes")
    elif runtime == "ollama":
        profile = {
            **_COMMON,
            "SystemCallFilter": Expected(" ".join(DENIED_SYSCALLS_ALL), "allowlist_without"),
            "RestrictAddressFamilies": _families(netlink=True),
        }
        if writable:
            profile["ReadWritePaths"] = Expected(" ".join(writable), "includes")
        return profile
    else:
        return {}
    if read_only:
        profile["ReadOnlyPaths"] = Expected(" ".join(read_only), "includes")
    return profile


def problems(profile: dict[str, Expected], shown: dict[str, str]) -> list[str]:
    """Every property of ``profile`` that ``systemctl show`` output ``shown`` does not satisfy."""
    found = []
    for name, want in profile.items():
        problem = want.problem(name, shown.get(name))
        if problem:
            found.append(problem)
    return found
