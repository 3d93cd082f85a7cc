"""OpenAI-compatible HTTP backend: any server that speaks ``/v1/chat/completions`` or
``/v1/completions`` (vLLM, SGLang, TGI, Ollama, llama.cpp's server, hosted APIs).

A ``generate()`` call sends all of its prompts (times ``n`` samples) concurrently, at most
``concurrency`` requests in flight. The number allowed in flight adapts to the server (AIMD, as TCP
does): an HTTP 429 or 5xx halves it (once per round of requests), ``limit`` successes in a row raise
it by one again, never above ``concurrency`` nor below 1. A ``Retry-After`` header (seconds or an
HTTP date, capped at :attr:`OpenAIGenerator.max_retry_after`) holds every worker until then; other
retries (429/5xx/network errors, at most ``max_retries`` per request) wait a jittered, doubling
backoff. Connections are kept alive and reused (a pool per generator, reopened on error).

The API key is read from an environment variable at request time and never stored, logged or cached;
user-info in the URL becomes HTTP basic auth (:mod:`.urls`). A request that fails for good becomes
``Completion(None, error)`` for its sample, never an exception. :attr:`OpenAIGenerator.stats`
counts requests, retries, throttled answers, the current limit and the peak in flight.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import BackendError, ConfigError
from .base import Completion, Decoding, Decodings, Prompt, per_prompt
from .urls import split_credentials

logger = logging.getLogger(__name__)

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class ServedStats:
    """What the client did, since the generator was built (read by tests and benchmarks)."""

    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0  # requests sent again after a 429/5xx/network error
    throttled: int = 0  # 429 and 5xx answers
    limit: int = 0  # requests allowed in flight now
    lowest_limit: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    connections: int = 0  # connections opened (the rest of the requests reused one)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class _Limiter:
    """Requests in flight, AIMD: halve on throttling (once per round: answers to requests sent before
    the last decrease do not decrease again), +1 after ``limit`` successes in a row; ``hold_until``
    (a ``Retry-After``) keeps every worker waiting."""

    def __init__(self, ceiling: int, stats: ServedStats, where: str) -> None:
        self.ceiling, self.stats, self.where = ceiling, stats, where
        self.limit = ceiling
        self.successes = 0
        self.round = 0
        self.not_before = 0.0  # time.monotonic()
        self._cond = threading.Condition()
        stats.limit = stats.lowest_limit = ceiling

    def acquire(self) -> int:
        """Wait for a slot (and for any Retry-After); returns the round the request belongs to."""
        with self._cond:
            while True:
                wait = self.not_before - time.monotonic()
                if wait <= 0 and self.stats.in_flight < self.limit:
                    break
                self._cond.wait(timeout=wait if wait > 0 else None)
            self.stats.in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
            return self.round

    def release(self, round_: int, outcome: str, status: int = 0, retry_after: float | None = None) -> None:
        """``outcome``: ok, throttled (429/5xx) or other (a network error or a 4xx: no signal)."""
        with self._cond:
            self.stats.in_flight -= 1
            if outcome == "ok":
                self.successes += 1
                if self.successes >= self.limit and self.limit < self.ceiling:
                    self.successes = 0
                    self._set(self.limit + 1, logging.DEBUG, f"{self.limit} successes in a row")
            elif outcome == "throttled":
                self.stats.throttled += 1
                self.successes = 0
                if retry_after is not None:
                    self.not_before = max(self.not_before, time.monotonic() + retry_after)
                    logger.debug(
                        "%s: HTTP %d, Retry-After %.1f s: every request waits",
                        self.where,
                        status,
                        retry_after,
                    )
                if round_ == self.round:  # the first throttled answer of this round
                    self.round += 1
                    self._set(max(1, self.limit // 2), logging.INFO, f"HTTP {status}")
            self._cond.notify_all()

    def _set(self, limit: int, level: int, why: str) -> None:
        if limit != self.limit:
            logger.log(level, "%s: %s, requests in flight %d -> %d", self.where, why, self.limit, limit)
        self.limit = self.stats.limit = limit
        self.stats.lowest_limit = min(self.stats.lowest_limit, limit)


class _Connections:
    """Idle keep-alive connections to one server, shared by the worker threads: a request takes one
    (or opens one), and gives it back once its response is read; a connection that failed is closed."""

    def __init__(self, base_url: str, timeout: float, stats: ServedStats) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--base-url must be an http(s) URL, got {base_url!r}")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout, self.stats = timeout, stats
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.proxy = self._proxy(parts)

    @staticmethod
    def _proxy(parts: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
        """The proxy urllib would use for this URL (``HTTPS_PROXY``, ``NO_PROXY``...); never for loopback."""
        if parts.hostname in _LOOPBACK:
            return None
        proxy = urllib.request.getproxies().get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return None
        return urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)

    def target(self, path: str) -> str:
        """The request target: the path, or the absolute URL for a plain-HTTP proxy."""
        if self.proxy is not None and not self.https:
            netloc = self.host if self.port is None else f"{self.host}:{self.port}"
            return f"http://{netloc}{self.prefix}{path}"
        return self.prefix + path

    def _open(self) -> http.client.HTTPConnection:
        if self.proxy is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            return cls(self.host, self.port, timeout=self.timeout)
        if self.https:  # a CONNECT tunnel through the proxy
            conn = http.client.HTTPSConnection(
                self.proxy.hostname, self.proxy.port or 8080, timeout=self.timeout
            )
            conn.set_tunnel(self.host, self.port, headers=self.proxy_headers())
            return conn
        return http.client.HTTPConnection(self.proxy.hostname, self.proxy.port or 8080, timeout=self.timeout)

    def proxy_headers(self) -> dict[str, str]:
        if self.proxy is None or not self.proxy.username:
            return {}
        import base64

        pair = (
            f"{urllib.parse.unquote(self.proxy.username)}:{urllib.parse.unquote(self.proxy.password or '')}"
        )
        return {"Proxy-Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}

    def take(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._open()

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(conn)

    def exchange(self, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        """POST and read the whole response: (status, headers, body). Raises OSError or
        http.client.HTTPException; a kept-alive connection the server closed meanwhile is retried
        once on a fresh one (that is not a retry: nothing reached the server)."""
        if self.proxy is not None and not self.https:
            headers = {**headers, **self.proxy_headers()}
        for fresh_retry in (False, True):
            conn = self.take() if not fresh_retry else self._open()
            reused = conn.sock is not None
            if not reused:
                with self._lock:
                    self.stats.connections += 1
            try:
                conn.request("POST", self.target(path), body=data, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if reused and not fresh_retry:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            # a response that closes the connection leaves it closed: it reopens on its next use
            self.give_back(conn)
            return resp.status, resp.headers, body
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """A ``Retry-After`` header as seconds from now (delta-seconds or an HTTP date), at most ``cap``;
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from datetime import datetime, timezone
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


class OpenAIGenerator:
    backend = "openai"
    backoff = 1.0  # seconds before the first retry (doubling, jittered), when no Retry-After says
    max_backoff = 30.0
    max_retry_after = 60.0  # a Retry-After is honoured up to this many seconds

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        endpoint: str = "chat",
        timeout: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 4,
    ) -> None:
        if not base_url:
            raise ConfigError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if concurrency < 1:
            raise ConfigError(f"generator.concurrency must be >= 1, got {concurrency}")
        self.model_id = model
        # user-info in the URL is sent as HTTP basic auth, never as part of the URL, and is kept out of
        # base_url (which messages, rejected rows and the response cache's key see)
        self.base_url, self._basic_auth = split_credentials(base_url.rstrip("/"))
        self.revision = None
        self.api_key_env = api_key_env
        if self._basic_auth and os.environ.get(api_key_env):
            logger.warning(
                "%s: the URL's user and password are sent as HTTP basic auth; the key in $%s is not sent",
                self.base_url,
                api_key_env,
            )
        self.chat = endpoint != "completions"
        self.timeout, self.max_retries, self.concurrency = timeout, max_retries, concurrency
        self.stats = ServedStats()
        self._limiter = _Limiter(concurrency, self.stats, self.base_url)
        self._connections = _Connections(self.base_url, timeout, self.stats)
        self._stats_lock = threading.Lock()

    def _count(self, **more: int) -> None:
        with self._stats_lock:
            for name, k in more.items():
                setattr(self.stats, name, getattr(self.stats, name) + k)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)  # read at request time, never kept
        if self._basic_auth:
            headers["Authorization"] = self._basic_auth
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode("utf-8")
        delay = self.backoff
        for attempt in range(self.max_retries + 1):
            round_ = self._limiter.acquire()
            self._count(requests=1, retries=1 if attempt else 0)
            wait: float | None = None
            try:
                status, response_headers, payload = self._connections.exchange(path, data, headers)
            except (OSError, http.client.HTTPException) as exc:
                self._limiter.release(round_, "other")
                retry, reason = True, f"network error ({type(exc).__name__}: {exc})".replace("\n", " ")
            else:
                if 200 <= status < 300:
                    self._limiter.release(round_, "ok")
                    try:
                        return json.loads(payload.decode("utf-8"))
                    except ValueError as exc:
                        raise BackendError(f"{self.base_url}{path}: the answer is not JSON ({exc})") from None
                retry = status == 429 or status >= 500
                if retry:
                    wait = retry_after_seconds(response_headers.get("Retry-After"), self.max_retry_after)
                self._limiter.release(round_, "throttled" if retry else "other", status, wait)
                reason = f"HTTP {status}"
            if not retry or attempt == self.max_retries:
                raise BackendError(f"{self.base_url}{path}: {reason} after {attempt + 1} attempt(s)")
            logger.debug(
                "%s%s: %s, retrying (%d of %d)", self.base_url, path, reason, attempt + 1, self.max_retries
            )
            if wait is None:  # with a Retry-After, the limiter holds every worker until then
                time.sleep(delay * (1 + random.random() * 0.25))
                delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover

    def _one(self, prompt: Prompt, decoding: Decoding, i: int) -> Completion:
        body: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": decoding.max_new_tokens,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "seed": decoding.seed + i,
        }
        if decoding.stop:
            body["stop"] = list(decoding.stop)
        try:
            if self.chat:
                body["messages"] = (
                    prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
                )
                r = self._post("/chat/completions", body)
                text = r["choices"][0]["message"]["content"]
            else:
                body["prompt"] = (
                    prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
                )
                r = self._post("/completions", body)
                text = r["choices"][0]["text"]
        except BackendError as exc:
            return Completion(None, str(exc))
        except (KeyError, IndexError, TypeError) as exc:
            return Completion(None, f"unexpected response shape ({exc})")
        usage = r.get("usage") or {}
        return Completion(text, None, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decodings) -> list[list[Completion]]:
        """``n`` completions per prompt, every request of the call in flight together (up to the
        limit); ``decoding`` is shared or one per prompt."""
        decodings = per_prompt(decoding, len(prompts))
        jobs = [(p, i) for p in range(len(prompts)) for i in range(n)]

        def run(job: tuple[int, int]) -> Completion:
            return self._one(prompts[job[0]], decodings[job[0]], job[1])

        if len(jobs) <= 1 or self.concurrency == 1:
            done = [run(job) for job in jobs]
        else:
            from concurrent.futures import ThreadPoolExecutor

            workers = min(self.concurrency, len(jobs))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai") as pool:
                done = list(pool.map(run, jobs))
        return [done[p * n : (p + 1) * n] for p in range(len(prompts))]

    def close(self) -> None:
        """Close the kept-alive connections (they reopen on the next request)."""
        self._connections.close()
