"""Role variables of ``ollama``, with their defaults (override by host data of the same name)."""

from __future__ import annotations

#: Where Ollama's releases come from: ``<base>/v<version>/<archive>`` and, beside the archives,
#: the release's ``sha256sum.txt`` (GitHub's layout, where upstream's release workflow uploads
#: them). A LAN mirror or a file server on the controller serving the same layout works the
#: same way. (Upstream's install.sh asks ``https://ollama.com/download/<archive>?version=<v>``,
#: which redirects to these same GitHub release files; ``sha256sum.txt`` is one of them.)
OLLAMA_BASE_URL: str = "https://github.com/ollama/ollama/releases/download"

#: The Ollama release installed: pinned, so a run never installs whatever is latest that day.
#: 0.34.2: a real release of ollama/ollama, out by 2026-09-17 (packaged from its release files
#: by winget, "New version: Ollama.Ollama version 0.34.2", microsoft/winget-pkgs#436764, and by
#: SlackBuilds, "misc/ollama: Updated for version 0.34.2", SlackBuildsOrg/slackbuilds#17807).
#: Its Linux archives are ``.tar.zst`` (since 0.14.0; ``.tgz`` before, which a lower pin gets).
#: Checked here against those public sources, not downloaded (github.com is out of reach of
#: rigctl's build machine): the first real provision fetches it and checks its sha256sum.txt.
OLLAMA_VERSION: str = "0.34.2"

#: sha256 of archives by name (``{"ollama-linux-amd64.tar.zst": "<sha256>"}``): an entry wins
#: over the release's ``sha256sum.txt`` (which is then not fetched when every archive has one).
OLLAMA_SHA256: dict[str, str] = {}

#: Where the archive is unpacked, as upstream: ``bin/ollama`` and ``lib/ollama/``.
OLLAMA_INSTALL_DIR: str = "/usr/local"

#: Models imported by rigctl live here (``OLLAMA_MODELS``), owned by the ``ollama`` user.
OLLAMA_MODELS_DIR: str = "/var/lib/rigctl/ollama/models"

#: Upstream's service user and its home (its installer creates both).
OLLAMA_USER: str = "ollama"
OLLAMA_HOME: str = "/usr/share/ollama"

#: What unpacking ``.tar.zst`` archives needs on the host (installed first on apt/dnf hosts).
OLLAMA_APT_PACKAGES: tuple[str, ...] = ("zstd",)
OLLAMA_DNF_PACKAGES: tuple[str, ...] = ("zstd",)
