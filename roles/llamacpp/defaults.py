"""Role variables of ``llamacpp``, with their defaults (override by host data of the same name)."""

from __future__ import annotations

#: Where builds live: ``builds/<version>-<backend>-<key>/bin/llama-server`` and a ``current`` link.
LLAMACPP_PREFIX: str = "/opt/rigctl/llamacpp"

#: Scratch space for configure and compile; removed after a successful install.
LLAMACPP_BUILD_ROOT: str = "/var/cache/rigctl/llamacpp-build"

#: Compiler cache shared by all builds on a host (a rebuild with other flags reuses objects).
LLAMACPP_CCACHE_DIR: str = "/var/cache/rigctl/ccache"


#: Extra ``-D`` CMake options appended to the backend's (``llamacpp_cmake_args`` in host data).
LLAMACPP_CMAKE_ARGS: list[str] = []

#: Parallel compile jobs; ``None`` means the host's logical CPU count.
LLAMACPP_JOBS: int | None = None
