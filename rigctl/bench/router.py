"""llama-server's router API (several models behind one endpoint): the models it serves with
their state, and loading one (``GET /models``, ``POST /models/load``, as the pinned
``tools/server/README.md`` documents them).

What a host answers is untrusted: only the aliases and states rigctl expects are taken from it,
as plain strings; the caller escapes them for the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

#: The states the router reports for a model (``status.value``).
STATES = ("unloaded", "loading", "loaded", "sleeping", "downloading")


@dataclass(frozen=True)
class RouterModel:
    alias: str
    state: str  # one of STATES, or "unknown"
    failed: bool = False  # the last load ended with its process exiting
    exit_code: int | None = None


def router_models(
    endpoint: str, api_key: str, *, session: requests.Session | None = None, timeout: float = 10
) -> dict[str, RouterModel]:
    """alias -> its state, from ``GET /models`` (raises requests' errors, ValueError)."""
    http = session or requests.Session()
    response = http.get(
        f"{endpoint}/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
    )
    response.raise_for_status()
    data = response.json().get("data")
    if not isinstance(data, list):
        raise ValueError("GET /models: no list of models")
    models: dict[str, RouterModel] = {}
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        raw = item.get("status")
        status: dict[str, object] = raw if isinstance(raw, dict) else {}
        state = status.get("value")
        code = status.get("exit_code")
        models[item["id"]] = RouterModel(
            alias=item["id"],
            state=state if state in STATES else "unknown",
            failed=status.get("failed") is True,
            exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        )
    return models


def load_model(
    endpoint: str,
    api_key: str,
    alias: str,
    *,
    timeout: float = 180.0,
    give_up: Callable[[], str | None] | None = None,
    session: requests.Session | None = None,
    poll: float = 0.5,
) -> float:
    """Have the router load ``alias`` (unloading the least recently used one when ``models_max``
    are loaded) and wait until it is; return the seconds it took. TimeoutError when it is not
    loaded in time, or its process exited (``give_up``: asked each poll, a reason ends the wait).
    """
    http = session or requests.Session()
    start = time.monotonic()
    response = http.post(
        f"{endpoint}/models/load",
        json={"model": alias},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    if response.status_code != 200 and "already running" not in response.text:
        raise TimeoutError(f"the router refused to load {alias}: HTTP {response.status_code}")
    while True:
        state = router_models(endpoint, api_key, session=http).get(alias)
        if state is None:
            raise TimeoutError(f"the router does not serve {alias}")
        if state.state in ("loaded", "sleeping"):
            return time.monotonic() - start
        if state.state == "unloaded" and state.failed:
            code = "" if state.exit_code is None else f" (exit code {state.exit_code})"
            raise TimeoutError(f"{alias}'s llama-server exited while loading{code}")
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{alias} not loaded after {timeout:.0f}s ({state.state})")
        reason = give_up() if give_up else None
        if reason:
            raise TimeoutError(reason)
        time.sleep(poll)
