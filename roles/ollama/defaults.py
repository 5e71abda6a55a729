"""Role variables of ``ollama``, with their defaults (override by host data of the same name)."""

from __future__ import annotations

#: Where Ollama's release archives come from (upstream's install.sh uses the same URLs:
#: ``<base>/ollama-linux-<arch>.tgz``, plus ``-rocm`` for AMD GPUs). A LAN mirror or a file
#: server on the controller works the same way.
OLLAMA_BASE_URL: str = "https://ollama.com/download"

#: A pinned release (``0.12.3``), passed as ``?version=`` as upstream's installer does; ``None``
#: takes the latest, whose checksum cannot be known in advance.
OLLAMA_VERSION: str | None = None

#: sha256 of the archive, checked on the controller when given (per arch: ``{"amd64": ...}``).
OLLAMA_SHA256: dict[str, str] = {}

#: Where the archive is unpacked, as upstream: ``bin/ollama`` and ``lib/ollama/``.
OLLAMA_INSTALL_DIR: str = "/usr/local"

#: Models imported by rigctl live here (``OLLAMA_MODELS``), owned by the ``ollama`` user.
OLLAMA_MODELS_DIR: str = "/var/lib/rigctl/ollama/models"

#: Upstream's service user and its home (its installer creates both).
OLLAMA_USER: str = "ollama"
OLLAMA_HOME: str = "/usr/share/ollama"
