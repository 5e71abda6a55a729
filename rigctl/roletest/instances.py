"""Molecule's instance config: the lab host a role scenario runs against, and how to reach it.

``create.yml`` writes it from ``rigctl lab up --json`` (Molecule's keys: ``instance``,
``address``, ``user``, ``port``, ``identity_file``, ``connection``; rigctl adds
``known_hosts_file``, where the lab pinned the host's key). The converge entry point turns it
into a pyinfra inventory; the testinfra plugin into an SSH connection with that pinned key.
``tests/test_roles.py`` writes the same file for a host of the test lab.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from rigctl.errors import BadInput

#: Molecule's ``connection`` for these instances: Ansible's paramiko plugin. testinfra picks its
#: paramiko backend from it; rigctl's plugin uses the same backend with pinned host keys.
CONNECTION = "paramiko_ssh"


@dataclass(frozen=True)
class Instance:
    instance: str
    address: str
    user: str
    port: int
    identity_file: str
    known_hosts_file: str
    connection: str = CONNECTION

    def host_data(self) -> dict[str, Any]:
        """pyinfra host data for the instance (as ``rigctl.lab.Lab.host_data`` has it)."""
        return {
            "ssh_hostname": self.address,
            "ssh_port": self.port,
            "ssh_user": self.user,
            "ssh_key": self.identity_file,
            "ssh_known_hosts_file": self.known_hosts_file,
            "ssh_strict_host_key_checking": "yes",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
            # services of a role scenario bind the host's own address, as on every lab host
            "listen": self.address,
        }

    def ssh_settings(self) -> dict[str, Any]:
        """The fields of :class:`rigctl.pyinfra_api.SSHSettings` (what
        :func:`rigctl.verify.connection.connect` takes), with the host key pinned."""
        return {
            "hostname": self.address,
            "port": self.port,
            "user": self.user,
            "key_file": self.identity_file,
            "key_password": None,
            "password": None,
            "known_hosts_file": self.known_hosts_file,
            "strict_host_key_checking": "yes",
            "allow_agent": False,
            "look_for_keys": False,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {"instance": str, "address": str, "user": str, "port": int, "identity_file": str}


def read_instances(path: str | Path) -> list[Instance]:
    """The instances in a Molecule instance config file; one line of error when malformed."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise BadInput(f"{path}: {e}", field="instance_config") from None
    if not isinstance(data, list) or not data:
        raise BadInput(f"{path}: expected a list of instances", field="instance_config")
    instances = []
    for entry in data:
        if not isinstance(entry, dict):
            raise BadInput(f"{path}: an instance is not a mapping", field="instance_config")
        for key, kind in _FIELDS.items():
            if not isinstance(entry.get(key), kind):
                raise BadInput(
                    f"{path}: instance {entry.get('instance')!r}: {key} must be a {kind.__name__}",
                    field="instance_config",
                )
        if entry.get("connection") != CONNECTION:
            raise BadInput(
                f"{path}: instance {entry['instance']!r}: connection must be {CONNECTION}"
                f" (got {entry.get('connection')!r})",
                field="instance_config",
            )
        known_hosts = entry.get("known_hosts_file")
        if not isinstance(known_hosts, str) or not known_hosts:
            raise BadInput(
                f"{path}: instance {entry['instance']!r}: known_hosts_file is required"
                " (rigctl pins host keys)",
                field="instance_config",
            )
        instances.append(
            Instance(
                instance=entry["instance"],
                address=entry["address"],
                user=entry["user"],
                port=entry["port"],
                identity_file=entry["identity_file"],
                known_hosts_file=known_hosts,
            )
        )
    return instances


def write_instances(path: str | Path, instances: list[Instance]) -> None:
    Path(path).write_text(yaml.safe_dump([i.to_json() for i in instances], sort_keys=False))
