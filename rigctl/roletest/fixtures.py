"""The ``host`` fixture of the role scenarios' tests (registered by ``rigctl.roletest.plugin``
after testinfra, whose fixture of the same name it replaces)."""

from __future__ import annotations

import pytest
import testinfra.host

from rigctl.roletest.instances import Instance
from rigctl.verify.connection import connect


@pytest.fixture(scope="module")
def host(instance: Instance) -> testinfra.host.Host:
    """The instance over SSH with its pinned host key (raises with the cause when unreachable)."""
    return connect(instance.ssh_settings())
