"""Load against an OpenAI-compatible endpoint: TTFT, decode tok/s, aggregate tok/s, latency.

Measured as a client sees it, with streaming: time to first token is the first content chunk;
decode tok/s per request is (completion tokens - 1) / (last chunk - first chunk); aggregate
tok/s at a concurrency level is all completion tokens / the level's wall time. The prompt is
calibrated to the requested length in *tokens* using the server's own ``usage.prompt_tokens``
(no tokenizer guessing), and a warm-up request per level is not counted.

Concurrency runs on gevent greenlets: the process is monkey-patched (``rigctl._gevent``), so
every worker's socket waits cooperatively and N workers are N requests in flight.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import gevent
import requests

from rigctl.fetch.http import redact

# Plain words that tokenize to about one token each in common vocabularies; the prompt is
# scaled by the server's own count, so the exact ratio does not matter.
FILLER = [
    "the",
    "river",
    "carries",
    "cold",
    "water",
    "past",
    "old",
    "stone",
    "walls",
    "while",
    "birds",
    "circle",
    "above",
    "quiet",
    "fields",
    "and",
    "a",
    "farmer",
    "counts",
    "the",
    "sheep",
    "before",
    "the",
    "evening",
    "rain",
    "arrives",
    "over",
    "the",
    "distant",
    "hills",
]
INSTRUCTION = "Summarise the following text in one long paragraph:\n"


@dataclass
class RequestResult:
    ok: bool
    ttft_s: float | None = None
    latency_s: float | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0
    decode_tps: float | None = None
    error: str | None = None


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    prompt_tokens: int  # as counted by the server
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    decode_tps_per_request: float | None  # median over requests
    aggregate_tps: float  # completion tokens of all requests / wall time
    first_error: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Client:
    endpoint: str
    api_key: str
    model: str = "default"
    timeout: float = 300.0
    session: requests.Session = field(default_factory=requests.Session)

    def complete(self, prompt: str, max_tokens: int) -> RequestResult:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0,
            # llama-server stops at max_tokens only if EOS does not come first; ignore_eos keeps
            # generation lengths equal so tok/s compares like with like (others ignore the key).
            "ignore_eos": True,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"}
        start = time.monotonic()
        first = last = None
        chunks = usage_completion = usage_prompt = 0
        try:
            with self.session.post(
                f"{self.endpoint}/v1/chat/completions",
                json=body,
                headers=headers,
                stream=True,
                timeout=self.timeout,
            ) as response:
                if response.status_code != 200:
                    return RequestResult(
                        ok=False,
                        error=f"HTTP {response.status_code}: {redact(response.text[:160])}",
                    )
                for line in response.iter_lines():
                    if not line.startswith(b"data: "):
                        continue
                    payload = line[6:]
                    if payload == b"[DONE]":
                        break
                    event = json.loads(payload)
                    usage = event.get("usage")
                    if usage:
                        usage_completion = int(usage.get("completion_tokens") or 0)
                        usage_prompt = int(usage.get("prompt_tokens") or 0)
                    for choice in event.get("choices") or []:
                        if (choice.get("delta") or {}).get("content"):
                            now = time.monotonic()
                            first = first or now
                            last = now
                            chunks += 1
                        if choice.get("finish_reason") and first is not None:
                            # The last token was generated now, even when it showed no text
                            # (a detokenizer holds back partial UTF-8 and flushes it in bursts).
                            last = time.monotonic()
        except (requests.RequestException, ValueError) as e:
            return RequestResult(ok=False, error=redact(f"{type(e).__name__}: {e}")[:200])
        end = time.monotonic()
        if first is None or last is None:
            if usage_completion > 0:
                # Tokens that decode to no visible text (special tokens, a UTF-8 sequence cut
                # by max_tokens): generated all the same, but with no time of the first token.
                return RequestResult(
                    ok=True,
                    latency_s=end - start,
                    completion_tokens=usage_completion,
                    prompt_tokens=usage_prompt,
                )
            return RequestResult(ok=False, error="no content in the stream")
        tokens = usage_completion or chunks
        decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
        return RequestResult(
            ok=True,
            ttft_s=first - start,
            latency_s=end - start,
            completion_tokens=tokens,
            prompt_tokens=usage_prompt,
            decode_tps=decode,
        )


def make_prompt(words: int) -> str:
    body = " ".join(FILLER[i % len(FILLER)] for i in range(max(1, words)))
    return INSTRUCTION + body


def calibrate_prompt(client: Client, target_tokens: int) -> tuple[str, int]:
    """A prompt whose chat-templated length is close to ``target_tokens`` (server-counted)."""
    words = max(1, target_tokens)
    prompt = make_prompt(words)
    counted = 0
    for _ in range(3):
        probe = client.complete(prompt, max_tokens=1)
        if not probe.ok or not probe.prompt_tokens:
            return prompt, 0  # the server does not report usage: keep the word count
        counted = probe.prompt_tokens
        if abs(counted - target_tokens) <= max(2, target_tokens // 50):
            break
        overhead = counted - words if counted > words else 0
        words = max(1, round((target_tokens - overhead) * words / max(1, counted - overhead)))
        prompt = make_prompt(words)
    return prompt, counted


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run_level(
    client: Client,
    prompt: str,
    *,
    concurrency: int,
    max_tokens: int,
    duration_s: float,
    requests_per_worker: int = 1,
    on_request: Callable[[RequestResult], None] | None = None,
) -> LevelResult:
    """``concurrency`` workers send requests back to back until ``duration_s`` has passed and
    each has sent at least ``requests_per_worker``. One warm-up request is not counted."""
    client.complete(f"Warm-up.\n{prompt}", max_tokens=min(8, max_tokens))
    results: list[RequestResult] = []
    start = time.monotonic()

    counter = iter(range(1, 1 << 30))

    def worker() -> None:
        sent = 0
        while sent < requests_per_worker or time.monotonic() - start < duration_s:
            # A distinct first line per request: servers cache prompt prefixes, and a repeated
            # prompt would hide the cost of prompt processing from TTFT.
            result = client.complete(f"Request {next(counter)}.\n{prompt}", max_tokens)
            results.append(result)
            if on_request:
                on_request(result)
            sent += 1

    gevent.joinall([gevent.spawn(worker) for _ in range(concurrency)])
    wall = time.monotonic() - start
    good = [r for r in results if r.ok]
    ttfts = [r.ttft_s * 1000 for r in good if r.ttft_s is not None]
    latencies = [r.latency_s for r in good if r.latency_s is not None]
    decodes = [r.decode_tps for r in good if r.decode_tps]
    errors = [r for r in results if not r.ok]
    return LevelResult(
        concurrency=concurrency,
        requests=len(results),
        errors=len(errors),
        wall_s=round(wall, 3),
        prompt_tokens=int(statistics.median([r.prompt_tokens for r in good])) if good else 0,
        ttft_p50_ms=_round(_percentile(ttfts, 0.5)),
        ttft_p95_ms=_round(_percentile(ttfts, 0.95)),
        latency_p50_s=_round(_percentile(latencies, 0.5), 3),
        latency_p95_s=_round(_percentile(latencies, 0.95), 3),
        decode_tps_per_request=_round(statistics.median(decodes)) if decodes else None,
        aggregate_tps=round(sum(r.completion_tokens for r in good) / wall, 2) if wall > 0 else 0.0,
        first_error=errors[0].error if errors else None,
    )


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
