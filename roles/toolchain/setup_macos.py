"""The toolchain on macOS: Apple's command-line tools, which cannot be installed unattended."""

from __future__ import annotations

from rigctl.pyinfra_api import OperationError, host, server_facts


def install() -> None:
    if not host.get_fact(server_facts.Which, command="clang"):
        raise OperationError(
            "Xcode command-line tools are missing: run `xcode-select --install` on the host"
        )
    if not host.get_fact(server_facts.Which, command="cmake"):
        raise OperationError("cmake is missing: install it (e.g. `brew install cmake`)")
