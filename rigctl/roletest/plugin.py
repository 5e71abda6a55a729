"""The pytest plugin of the role scenarios' testinfra tests (``-p rigctl.roletest.plugin``).

It replaces testinfra's ``host`` fixture: testinfra's paramiko backend never loads a
known_hosts file and accepts any host key, and its SSH backend ignores ``--ssh-extra-args``;
here each instance of the Molecule instance config (``--rigctl-instances PATH``, by default
``$MOLECULE_INSTANCE_CONFIG``, which Molecule's verifier sets) is reached with testinfra's
paramiko backend built by ``rigctl.verify.connection``: the instance's key, its pinned host
key, nothing else tried. Tests run once per instance; ``instance`` is the one being checked.
"""

from __future__ import annotations

import os

import pytest

from rigctl.errors import BadInput
from rigctl.roletest.instances import Instance, read_instances


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rigctl roletest")
    group.addoption(
        "--rigctl-instances",
        dest="rigctl_instances",
        metavar="PATH",
        help="Molecule's instance config: the hosts to check (default: $MOLECULE_INSTANCE_CONFIG).",
    )


def instances(config: pytest.Config) -> list[Instance]:
    path = config.getoption("rigctl_instances") or os.environ.get("MOLECULE_INSTANCE_CONFIG")
    if not path:
        raise pytest.UsageError(
            "--rigctl-instances PATH is required (Molecule's verifier sets $MOLECULE_INSTANCE_CONFIG)"
        )
    try:
        return read_instances(path)
    except BadInput as e:
        raise pytest.UsageError(str(e)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "instance" in metafunc.fixturenames:
        found = instances(metafunc.config)
        metafunc.parametrize("instance", found, ids=[i.instance for i in found], scope="module")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # testinfra's own `host` (unpinned host keys) must never be the one a test gets
    leaked = [
        item.nodeid for item in items if "_testinfra_host" in getattr(item, "fixturenames", [])
    ]
    if leaked:
        raise pytest.UsageError(
            f"testinfra's host fixture reached {leaked[0]}: load rigctl.roletest.plugin last"
        )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # registered after every plugin (testinfra's included), so its `host` is the one used
    config.pluginmanager.import_plugin("rigctl.roletest.fixtures")
