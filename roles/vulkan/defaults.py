"""Role variables of ``vulkan``, with their defaults."""

from __future__ import annotations

#: Debian/Ubuntu: the loader with its headers, the shader compiler, the SPIR-V headers
#: llama.cpp's Vulkan build needs (``find_package(SPIRV-Headers)``), Mesa's drivers (the ICDs
#: for AMD, Intel, and lavapipe, a CPU Vulkan device) and vulkaninfo (what detection reads).
VULKAN_APT_PACKAGES: list[str] = [
    "libvulkan-dev",
    "glslc",
    "spirv-headers",
    "mesa-vulkan-drivers",
    "vulkan-tools",
]

#: Fedora/RHEL equivalents (tested by operation fixtures; not run on a real host).
VULKAN_DNF_PACKAGES: list[str] = [
    "vulkan-loader-devel",
    "glslc",
    "spirv-headers-devel",
    "mesa-vulkan-drivers",
    "vulkan-tools",
]
