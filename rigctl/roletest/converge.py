"""Apply a role's scenario to the instances of a Molecule instance config, with rigctl/pyinfra.

This is Molecule's ``converge`` for rigctl's roles: Molecule's provisioner is Ansible, but
Ansible only runs this on localhost; pyinfra does the work on the host, over SSH with the
lab's pinned host key. The summary (per host: changed operations by name) is what the
scenario's ``converge.yml`` reports to Molecule, so its ``idempotence`` step sees rigctl's
changes and names the operations.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rigctl.pyinfra_api import RunSummary, Session, load_inventory
from rigctl.roletest.instances import Instance
from rigctl.roletest.scenarios import scenario


def write_inventory(instances: list[Instance], directory: Path) -> Path:
    """The instances as a pyinfra inventory file (one group, ``hosts``)."""
    path = directory / "instances.py"
    entries = [(i.instance, i.host_data()) for i in instances]
    path.write_text(f"hosts = {entries!r}\n")
    return path


def converge(
    role: str, instances: list[Instance], values: dict[str, Any] | None = None
) -> RunSummary:
    """Apply ``role``'s scenario to every instance, in parallel; one summary for all."""
    chosen = scenario(role, values)
    with (
        tempfile.TemporaryDirectory(prefix=f"rigctl-roletest-{role}-") as scratch,
        ExitStack() as stack,
    ):
        workdir = Path(scratch)
        inventory = load_inventory(str(write_inventory(instances, workdir)))
        chosen.setup(stack, workdir)
        with Session(inventory) as session:
            session.prepare(chosen.deploy)
            session.run()
            summary = session.summary()
            # an exception while finishing (keeping a build) fails that host in this summary
            session.each_host(
                lambda h: (
                    None
                    if summary.hosts[h.name].failed
                    else chosen.finish(h, summary.hosts[h.name].changed_ops)
                )
            )
    return summary
