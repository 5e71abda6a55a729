"""Role variables of ``service``, with their defaults."""

from __future__ import annotations

#: Directory of rigctl's per-service configuration (API key) on the host: ``/etc/rigctl/<unit>``.
SERVICE_CONFIG_ROOT: str = "/etc/rigctl"

#: Where systemd units are written (system units, as the services run at boot).
SERVICE_SYSTEMD_UNIT_DIR: str = "/etc/systemd/system"

#: Shell of the dedicated service users: they never log in.
SERVICE_USER_SHELL: str = "/usr/sbin/nologin"
