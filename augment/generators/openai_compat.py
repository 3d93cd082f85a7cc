"""OpenAI-compatible HTTP backend: any server that speaks ``/v1/chat/completions`` or
``/v1/completions`` (vLLM, SGLang, TGI, Ollama, llama.cpp's server, hosted APIs), with timeouts,
bounded retries with backoff and concurrent requests. The API key is read from an environment
variable at request time and never stored, logged or cached; user-info in the URL becomes HTTP
basic auth (:mod:`.urls`)."""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import BackendError, ConfigError
from .base import Completion, Decoding, Prompt
from .urls import split_credentials

logger = logging.getLogger(__name__)


class OpenAIGenerator:
    backend = "openai"

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

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if self._basic_auth:
            headers["Authorization"] = self._basic_auth
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode("utf-8")
        delay = 1.0
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                retry = exc.code == 429 or exc.code >= 500
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                retry, reason = True, f"network error ({getattr(exc, 'reason', exc)})"
            if not retry or attempt == self.max_retries:
                raise BackendError(f"{self.base_url}{path}: {reason} after {attempt + 1} attempt(s)")
            time.sleep(delay * (1 + random.random() * 0.25))
            delay *= 2
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

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decoding) -> list[list[Completion]]:
        jobs = [(p, i) for p in range(len(prompts)) for i in range(n)]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            done = list(pool.map(lambda job: self._one(prompts[job[0]], decoding, job[1]), jobs))
        return [done[p * n : (p + 1) * n] for p in range(len(prompts))]
