"""The probe of a host where nothing changed (rigctl.bench.probe), against a test double of
the servers' HTTP answers on 127.0.0.1: the key must be required, and the one token asked of a
model already loaded only (never one the router or Ollama would have to load)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rigctl.bench.probe import key_refused, loaded_model
from rigctl.bench.smoke import chat_once

#: what the double answers: the router's models, Ollama's loaded ones, whether it wants a key
STATE: dict[str, object] = {}


@pytest.fixture
def double() -> Iterator[tuple[str, list[str]]]:
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: object, stream: bytes | None = None) -> None:
            data = stream if stream is not None else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/models":
                self._send(200, {"data": [{"id": a, "status": {"value": v}}
                                          for a, v in STATE["router"].items()]})  # type: ignore[attr-defined]
            elif self.path == "/api/ps":
                self._send(200, {"models": [{"name": n} for n in STATE["ps"]]})  # type: ignore[attr-defined]
            else:
                self._send(404, {})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if STATE["keyed"] and self.headers.get("Authorization") != "Bearer k":
                self._send(401, {"error": {"code": 401}})
                return
            asked.append(body["model"])
            # one token that carries no text (an end of turn), then usage and the end
            events = [{"choices": [{"delta": {"content": ""}}]},
                      {"choices": [], "usage": {"completion_tokens": 1}}]
            stream = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"
            self._send(200, None, stream)

    STATE.update(router={}, ps=[], keyed=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()


def test_a_server_that_answers_without_its_key_fails_the_probe(double: tuple[str, list[str]]) -> None:
    endpoint, asked = double
    assert key_refused(endpoint, "k") is None
    STATE["keyed"] = False
    assert key_refused(endpoint, "k") == "a request without the key got HTTP 200, not 401"
    assert key_refused(endpoint, "") is None  # Ollama on loopback has no key to refuse without
    assert asked == ["probe"]  # the one that got through


def test_the_router_is_asked_only_of_a_model_it_has_loaded(double: tuple[str, list[str]]) -> None:
    endpoint, _ = double
    names = ("chat", "coder", "small")
    STATE["router"] = {"chat": "unloaded", "coder": "sleeping", "small": "loaded"}
    assert loaded_model(endpoint, "k", runtime="llamacpp", router=True, names=names,
                        default="chat") == "small"
    STATE["router"] = {"chat": "unloaded", "coder": "sleeping", "small": "loading"}
    assert loaded_model(endpoint, "k", runtime="llamacpp", router=True, names=names,
                        default="chat") is None


def test_ollama_is_asked_only_of_a_model_in_memory(double: tuple[str, list[str]]) -> None:
    endpoint, _ = double
    STATE["ps"] = ["coder:latest"]
    assert loaded_model(endpoint, "", runtime="ollama", router=False, names=("chat", "coder"),
                        default="chat") == "coder"
    assert loaded_model(endpoint, "", runtime="ollama", router=False, names=(),
                        default="gemma") is None  # its one model expired: not loaded for a probe
    STATE["ps"] = ["gemma:latest"]
    assert loaded_model(endpoint, "", runtime="ollama", router=False, names=(),
                        default="gemma") == "gemma"
    # any other server has its model loaded once it is healthy
    assert loaded_model(endpoint, "k", runtime="vllm", router=False, names=("a", "b"),
                        default="b") == "b"


def test_one_token_without_text_is_an_answer_for_a_probe_only(double: tuple[str, list[str]]) -> None:
    endpoint, asked = double
    probe = chat_once(endpoint, "k", model="small", max_tokens=1, need_content=False)
    assert probe.ok and probe.completion_tokens == 1
    full = chat_once(endpoint, "k", model="small")
    assert not full.ok and full.error == "the stream carried no content"
    assert asked == ["small", "small"]
