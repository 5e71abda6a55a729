"""rigctl's testinfra suite: one test per check, run by ``rigctl verify`` against one host.

Run by hand: ``pytest --pyargs rigctl.verify.suite -p rigctl.verify.plugin --rigctl-target
TARGET.json`` (the file ``rigctl verify`` writes per host: see
:class:`rigctl.verify.target.Target`).
"""

from __future__ import annotations

import pytest

from rigctl.manifest import Deployment
from rigctl.verify.parse import is_loopback


def skip_unless_keyed(deployment: Deployment) -> None:
    """Skip a key check for a runtime served without a key (Ollama), which must be on loopback."""
    if deployment.api_key_file:
        return
    assert is_loopback(deployment.listen), (
        f"{deployment.runtime} has no API key but listens on {deployment.listen}, beyond loopback"
    )
    pytest.skip(
        f"{deployment.runtime} has no API key (served on loopback {deployment.listen} only)"
    )
