"""``rigctl lab``: real systemd hosts on this machine (systemd-nspawn), reachable over SSH."""

from __future__ import annotations

import pprint

import click
from rigctl.cli.render import emit_json, info, table

from rigctl.lab import RELEASES, Lab, LabHost


def _status_document(lab: Lab) -> dict[str, object]:
    return {
        "hosts": [status.to_json() for status in lab.status()],
        "inventory": "inventories/lab.py",
        "ssh_key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path),
    }


def _print_status(lab: Lab) -> None:
    statuses = lab.status()
    if not statuses:
        info("no lab hosts (start some with `rigctl lab up [N]`)")
        return
    table(
        "lab hosts",
        ["host", "address", "release", "state", "ssh"],
        (
            (
                s.name,
                s.address,
                s.release,
                "running" if s.running else "stopped",
                "yes" if s.ssh else "no",
            )
            for s in statuses
        ),
    )
    info(f"ssh: ssh -i {lab.key_path} -o UserKnownHostsFile={lab.known_hosts_path} root@ADDRESS")


@click.group()
def lab() -> None:
    """Local lab hosts: Debian (bookworm or trixie) under systemd-nspawn, sshd on 127.0.1.N."""


@lab.command()
@click.argument("count", type=click.IntRange(1, 254), default=1)
@click.option(
    "--release",
    type=click.Choice(RELEASES),
    default=RELEASES[0],
    show_default=True,
    help="Debian release of the hosts this call creates; existing hosts keep their own.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def up(count: int, release: str, as_json: bool) -> None:
    """Start lab hosts 1..COUNT (running ones are left alone; safe to repeat)."""
    the_lab = Lab()
    if not the_lab.image_cached(release):
        info(
            f"building the lab's Debian {release} image with debootstrap (once; about a minute)..."
        )
    _note_kept_releases(the_lab.up(count, release=release), release)
    if as_json:
        emit_json(_status_document(the_lab))
    else:
        _print_status(the_lab)


def _note_kept_releases(hosts: list[LabHost], release: str) -> None:
    """A host's release is fixed when it is created: say so when one differs from the ask."""
    kept = [f"{host.name} ({host.release})" for host in hosts if host.release != release]
    if kept:
        info(
            f"kept as created, not {release}: {', '.join(kept)} "
            "(`rigctl lab down` then `up` to recreate)"
        )


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def down(as_json: bool) -> None:
    """Stop every lab host and remove its disk (the base image stays cached)."""
    removed = Lab().down()
    if as_json:
        emit_json({"removed": removed})
    else:
        info(f"stopped and removed: {', '.join(removed)}" if removed else "no lab hosts to stop")


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def status(as_json: bool) -> None:
    """Show the lab hosts and whether their sshd answers."""
    the_lab = Lab()
    if as_json:
        emit_json(_status_document(the_lab))
    else:
        _print_status(the_lab)


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Print the host data as JSON.")
def inventory(as_json: bool) -> None:
    """Print the running lab hosts as a pyinfra inventory (what inventories/lab.py yields)."""
    hosts = Lab().inventory()
    if as_json:
        emit_json({"hosts": dict(hosts)})
        return
    click.echo("# pyinfra inventory of the running rigctl lab hosts")
    click.echo(f"lab = {pprint.pformat(hosts, sort_dicts=False)}")
