"""The smoke check of a host where nothing changed: a probe, not a generation.

A run that changed nothing on a host need not prove again that its model generates: it checks
that the endpoint is healthy (``wait_ready``), refuses a request without the key
(:func:`key_refused`) and answers one token from a model that is already loaded
(:func:`loaded_model`): never one that would make llama-server's router or Ollama load a model
they swapped out. ``rigctl provision --smoke`` runs the full check anyway.
"""

from __future__ import annotations

import requests

from rigctl.bench.router import router_models
from rigctl.manifest import ollama_names

#: The request the probe sends without a key: the smallest completion there is.
PROBE_BODY = {"model": "probe", "messages": [{"role": "user", "content": "OK"}], "max_tokens": 1}


def key_refused(endpoint: str, api_key: str, *, timeout: float = 30) -> str | None:
    """Why the endpoint is not refusing a request without its key (None: it answered 401, or
    it has no key to refuse one without)."""
    if not api_key:
        return None
    try:
        response = requests.post(f"{endpoint}/v1/chat/completions", json=PROBE_BODY, timeout=timeout)
    except requests.RequestException as e:
        return f"a request without the key got no answer: {type(e).__name__}"
    if response.status_code != 401:
        return f"a request without the key got HTTP {response.status_code}, not 401"
    return None


def loaded_model(
    endpoint: str, api_key: str, *, runtime: str, router: bool, names: tuple[str, ...],
    default: str, timeout: float = 10,
) -> str | None:
    """The name of a model the endpoint has loaded now, to ask one token of; None when none is
    (nothing is asked then). ``names``: the aliases behind it (several models), ``default``
    the one model's served name. llama-server's router: a ``loaded`` alias of its own list;
    Ollama: one its ``/api/ps`` lists; any other server has its model loaded once healthy."""
    if router:
        states = router_models(endpoint, api_key, timeout=timeout)
        return next((alias for alias in names if alias in states
                     and states[alias].state == "loaded"), None)
    if runtime == "ollama":
        response = requests.get(f"{endpoint}/api/ps", timeout=timeout)
        response.raise_for_status()
        listed = response.json().get("models")
        loaded = {m.get("name") for m in listed if isinstance(m, dict)} if isinstance(listed, list) else set()
        return next((name for name in names or (default,) if loaded & ollama_names(name)), None)
    return default
