"""After a (re)start: wait until the server is ready, then one real chat completion.

Works against any OpenAI-compatible endpoint (llama-server, Ollama's ``/v1``, vLLM). Time to
first token and decode tokens/s come from the stream itself, as a client sees them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import requests

from rigctl.fetch.http import redact

SMOKE_PROMPT = "Name three colours of the rainbow, as a list."


@dataclass
class SmokeResult:
    ok: bool
    ready_seconds: float | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    completion_tokens: int = 0
    text: str = ""
    error: str | None = None
    #: "full" (a generation, after a change or with --smoke) or "probe" (nothing changed:
    #: health, the key refused without it, one token of a model already loaded)
    kind: str = "full"
    #: the model a probe asked one token of (None: none was loaded, none was asked)
    model: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def wait_ready(
    endpoint: str,
    timeout: float = 180.0,
    session: requests.Session | None = None,
    give_up: Callable[[], str | None] | None = None,
    check_every: float = 3.0,
    health_path: str = "/health",
) -> float:
    """Seconds until ``GET /health`` answered 200 (llama-server answers 503 while loading).

    ``give_up`` is asked every ``check_every`` seconds; a reason from it (say, the unit is in
    a crash loop) ends the wait at once instead of at the timeout.
    """
    http = session or requests.Session()
    start = time.monotonic()
    last = "no answer"
    next_check = start + check_every
    while time.monotonic() - start < timeout:
        if give_up and time.monotonic() >= next_check:
            next_check = time.monotonic() + check_every
            reason = give_up()
            if reason:
                raise TimeoutError(reason)
        try:
            response = http.get(f"{endpoint}{health_path}", timeout=5)
            if response.status_code == 200:
                return time.monotonic() - start
            last = f"HTTP {response.status_code}"
        except requests.RequestException as e:
            last = type(e).__name__
        time.sleep(0.5)
    raise TimeoutError(f"not ready after {timeout:.0f}s ({last})")


def chat_once(
    endpoint: str,
    api_key: str,
    *,
    model: str = "default",
    prompt: str = SMOKE_PROMPT,
    max_tokens: int = 64,
    session: requests.Session | None = None,
    timeout: float = 120.0,
    need_content: bool = True,
) -> SmokeResult:
    """One streamed chat completion; TTFT is the first content token, tok/s the decode rate.
    ``need_content=False`` (a one-token probe): a completed stream counts even when its token
    carried no text (an end-of-turn token)."""
    http = session or requests.Session()
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
    }
    headers = {"Authorization": f"Bearer {api_key}"}
    start = time.monotonic()
    first: float | None = None
    last = start
    chunks = 0
    usage_tokens = 0
    done = False
    text = []
    try:
        with http.post(
            f"{endpoint}/v1/chat/completions",
            json=body,
            headers=headers,
            stream=True,
            timeout=timeout,
        ) as response:
            if response.status_code != 200:
                return SmokeResult(
                    ok=False, error=f"HTTP {response.status_code}: {redact(response.text[:200])}"
                )
            for line in response.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                payload = line[len(b"data: ") :]
                if payload == b"[DONE]":
                    done = True
                    break
                event = json.loads(payload)
                if event.get("usage"):
                    usage_tokens = int(event["usage"].get("completion_tokens") or 0)
                for choice in event.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        now = time.monotonic()
                        first = first or now
                        last = now
                        chunks += 1
                        text.append(delta)
    except (requests.RequestException, ValueError) as e:
        return SmokeResult(ok=False, error=redact(f"{type(e).__name__}: {e}")[:300])
    if first is None:
        if not need_content and (done or usage_tokens):
            return SmokeResult(ok=True, completion_tokens=usage_tokens)
        return SmokeResult(ok=False, error="the stream carried no content")
    tokens = usage_tokens or chunks
    decode_seconds = last - first
    return SmokeResult(
        ok=True,
        ttft_ms=round((first - start) * 1000, 1),
        tokens_per_second=round((tokens - 1) / decode_seconds, 2)
        if tokens > 1 and decode_seconds > 0
        else None,
        completion_tokens=tokens,
        text="".join(text),
    )
