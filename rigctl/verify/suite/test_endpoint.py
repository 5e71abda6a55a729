"""The endpoint, as clients meet it: healthy, refusing requests without the key, serving with
it, and its metrics answering. Requests go through the host's SSH connection to the address the
service listens on, so loopback-only endpoints are checked too."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any

import pytest
import testinfra.host

from rigctl.manifest import Deployment, ollama_names
from rigctl.verify.connection import Response, http_request, read_secret
from rigctl.verify.parse import prometheus_samples
from rigctl.verify.suite import skip_unless_keyed

#: A request that costs the server one token.
CHAT_PATH = "/v1/chat/completions"


def _request(
    host: testinfra.host.Host, deployment: Deployment, method: str, path: str,
    port: int | None = None, **kwargs: Any
) -> Response:
    port = deployment.port if port is None else port
    try:
        return http_request(host, deployment.listen, port, method, path, **kwargs)
    except (OSError, http.client.HTTPException) as e:
        pytest.fail(f"{method} {path} on {deployment.listen}:{port}: {type(e).__name__}: {e}")


def _key(host: testinfra.host.Host, deployment: Deployment) -> str:
    try:
        key = read_secret(host, deployment.api_key_file)
    except OSError as e:
        pytest.fail(f"cannot read the API key {deployment.api_key_file}: {e}")
    assert key, f"{deployment.api_key_file} is empty"
    return key


def test_health(
    host: testinfra.host.Host, deployment: Deployment, detail: Callable[[str], None]
) -> None:
    """The health path answers 200."""
    response = _request(host, deployment, "GET", deployment.health_path, timeout=15)
    assert response.status == 200, f"GET {deployment.health_path}: {response.summary()}"
    detail(f"GET {deployment.health_path}: {response.summary(40)}")


def test_auth(
    host: testinfra.host.Host, deployment: Deployment, detail: Callable[[str], None]
) -> None:
    """Requests without the key, or with a wrong one, get 401; with the key, a completion."""
    skip_unless_keyed(deployment)
    key = _key(host, deployment)
    body = {
        "model": deployment.served_model,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 1,
    }
    problems = []
    anonymous = _request(host, deployment, "POST", CHAT_PATH, body=body)
    if anonymous.status != 401:
        problems.append(f"POST {CHAT_PATH} without a key: {anonymous.summary()}, expected 401")
    wrong = _request(
        host,
        deployment,
        "POST",
        CHAT_PATH,
        body=body,
        headers={"Authorization": "Bearer not-the-key"},
    )
    if wrong.status != 401:
        problems.append(f"POST {CHAT_PATH} with a wrong key: {wrong.summary()}, expected 401")
    keyed = _request(
        host,
        deployment,
        "POST",
        CHAT_PATH,
        body=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=300,
    )
    if keyed.status != 200:
        problems.append(f"POST {CHAT_PATH} with the key: {keyed.summary()}, expected 200")
    assert not problems, "; ".join(problems)
    detail(f"401 without a key and with a wrong one, 200 with the key ({CHAT_PATH})")


def _router_states(host: testinfra.host.Host, deployment: Deployment) -> dict[str, dict[str, Any]]:
    """llama-server's router: alias -> its ``status`` object, from ``GET /models``."""
    response = _request(host, deployment, "GET", "/models", timeout=15,
                        headers={"Authorization": f"Bearer {_key(host, deployment)}"})
    assert response.status == 200, f"GET /models: {response.summary()}"
    data = response.json().get("data")
    assert isinstance(data, list), f"GET /models: no list of models ({response.summary()})"
    states: dict[str, dict[str, Any]] = {}
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            status = item.get("status")
            states[item["id"]] = status if isinstance(status, dict) else {}
    return states


def test_models(
    host: testinfra.host.Host, deployment: Deployment, detail: Callable[[str], None]
) -> None:
    """The models the endpoint lists (``GET /v1/models``): one model, or with several the
    router serves exactly the manifest's aliases and none of them failed its last load, or
    each model's own server runs, refuses a request without the key and serves its alias."""
    if deployment.separate:
        _separate_servers(host, deployment, detail)
        return
    if not deployment.models:
        headers = (
            {"Authorization": f"Bearer {_key(host, deployment)}"} if deployment.api_key_file else {}
        )
        response = _request(host, deployment, "GET", "/v1/models", timeout=15, headers=headers)
        assert response.status == 200, f"GET /v1/models: {response.summary()}"
        listed = response.json().get("data") if response.body.startswith("{") else None
        assert isinstance(listed, list) and listed, f"GET /v1/models lists no model: {response.summary()}"
        detail(f"GET /v1/models: {len(listed)} model(s)")
        return
    wanted = [entry["alias"] for entry in deployment.models]
    if not deployment.router:  # one Ollama server: each alias imported (``alias:latest``)
        response = _request(host, deployment, "GET", "/v1/models", timeout=15)
        assert response.status == 200, f"GET /v1/models: {response.summary()}"
        data = response.json().get("data") if response.body.startswith("{") else None
        ids = {m.get("id") for m in data if isinstance(m, dict)} if isinstance(data, list) else set()
        missing = [alias for alias in wanted if not ids & ollama_names(alias)]
        assert not missing, f"GET /v1/models: not imported: {', '.join(missing)}"
        detail(f"GET /v1/models: {', '.join(wanted)} imported")
        return
    states = _router_states(host, deployment)
    problems = []
    if sorted(states) != sorted(wanted):
        problems.append(f"the router serves {', '.join(sorted(states)) or 'nothing'}, "
                        f"the manifest {', '.join(wanted)}")
    failed = [alias for alias, status in states.items() if status.get("failed") is True]
    if failed:
        problems.append(f"last load failed: {', '.join(failed)}")
    assert not problems, "; ".join(problems)
    detail(", ".join(f"{alias} {states[alias].get('value')}" for alias in wanted))


def _separate_servers(
    host: testinfra.host.Host, deployment: Deployment, detail: Callable[[str], None]
) -> None:
    """Several models with a server each (vLLM): each unit active, its port refusing a request
    without the key, and listing exactly its alias with it."""
    key = _key(host, deployment)
    problems = []
    for entry in deployment.models:
        alias = entry["alias"]
        unit, port = deployment.server_of(alias)
        if not host.service(unit).is_running:
            problems.append(f"{alias}: {unit} is not running")
            continue
        anonymous = _request(host, deployment, "GET", "/v1/models", port=port, timeout=15)
        if anonymous.status != 401:
            problems.append(f"{alias}: GET /v1/models on port {port} without a key: "
                            f"{anonymous.summary()}, expected 401")
        keyed = _request(host, deployment, "GET", "/v1/models", port=port, timeout=15,
                         headers={"Authorization": f"Bearer {key}"})
        listed = keyed.json().get("data") if keyed.status == 200 else None
        names = [m.get("id") for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
        if names != [alias]:
            problems.append(f"{alias}: GET /v1/models on port {port}: "
                            f"{', '.join(map(str, names)) or keyed.summary()}, expected {alias}")
    assert not problems, "; ".join(problems)
    detail(", ".join(f"{e['alias']} on {deployment.server_of(e['alias'])[1]}"
                     for e in deployment.models))


def test_metrics(
    host: testinfra.host.Host, deployment: Deployment, detail: Callable[[str], None]
) -> None:
    """The metrics path answers with Prometheus samples (the router: a loaded model's)."""
    if not deployment.metrics_path:
        pytest.skip(f"{deployment.runtime} has no metrics endpoint")
    headers = (
        {"Authorization": f"Bearer {_key(host, deployment)}"} if deployment.api_key_file else {}
    )
    path = deployment.metrics_path
    if deployment.router:  # the router answers a model's metrics, never loading one for it
        loaded = [a for a, s in _router_states(host, deployment).items() if s.get("value") == "loaded"]
        if not loaded:
            pytest.skip("no model is loaded: no metrics to read")
        path = f"{path}?model={loaded[0]}&autoload=false"
    response = _request(host, deployment, "GET", path, headers=headers, timeout=15)
    assert response.status == 200, f"GET {path}: {response.summary()}"
    samples = prometheus_samples(response.body)
    assert samples, f"GET {path}: 200 but no Prometheus samples"
    detail(f"GET {path}: {len(samples)} samples")
