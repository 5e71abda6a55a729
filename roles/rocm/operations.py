"""The ``rocm`` role's operation: AMD's apt repository, signed by AMD's key, pinned."""

from __future__ import annotations

from collections.abc import Generator

from rigctl.roles.rocm import defaults

from rigctl.pyinfra_api import QuoteString, StringCommand, file_facts, host, operation


def _write(text: str, dest: str) -> StringCommand:
    return StringCommand(
        "printf", "'%s'", QuoteString(text), ">", QuoteString(f"{dest}.tmp"),
        "&&", "mv", QuoteString(f"{dest}.tmp"), QuoteString(dest),
    )


@operation()
def amd_repository(base_url: str, version: str, suite: str, key_url: str) -> Generator[object, None, None]:
    """AMD's ROCm ``version`` repository for ``suite`` with its key and a 600 pin, then
    ``apt-get update``; nothing when the source already reads so.

    + base_url: ``https://repo.radeon.com/rocm/apt`` or a mirror of it
    + version: the ROCm release (``6.4``)
    + suite: AMD's suite for the host (``noble``, ``jammy``)
    + key_url: AMD's signing key
    """
    line = (
        f"deb [arch=amd64 signed-by={defaults.ROCM_KEYRING}] "
        f"{base_url.rstrip('/')}/{version} {suite} main\n"
    )
    present = host.get_fact(file_facts.FindInFile, path=defaults.ROCM_SOURCE_FILE, pattern=line.strip())
    if present and host.get_fact(file_facts.File, path=defaults.ROCM_KEYRING):
        host.noop(f"AMD's ROCm {version} repository is configured")
        return
    keyring = defaults.ROCM_KEYRING
    yield StringCommand("mkdir", "-p", "-m", "0755", QuoteString(keyring.rsplit("/", 1)[0]))
    yield StringCommand(
        "curl", "-fsSL", "--proto", "=https", "--proto-redir", "=https", "--retry", "3",
        "-o", QuoteString(f"{keyring}.part"), QuoteString(key_url),
        "&&", "mv", QuoteString(f"{keyring}.part"), QuoteString(keyring),
    )
    yield _write(line, defaults.ROCM_SOURCE_FILE)
    yield _write("Package: *\nPin: release o=repo.radeon.com\nPin-Priority: 600\n", defaults.ROCM_PIN_FILE)
    yield StringCommand("apt-get", "update")
