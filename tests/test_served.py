"""Served models at full speed (issue 15): the OpenAI-compatible client sends a generate() call's
requests concurrently, lowers the number in flight on 429/5xx and raises it again after successes,
honours Retry-After, retries a bounded number of times and reuses its connections.

Model-free first: real HTTP servers on loopback (``http.server``) that count the requests in flight.
Then llama-cpp-python's own server with the packaged SmolLM2 (marked ``models``)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from conftest import EN_CLINIC, invoke, llama_server, read_jsonl, write_jsonl

from augment.generators import Decoding, OpenAIGenerator
from augment.generators.openai_compat import retry_after_seconds


# -- a loopback server that counts requests in flight ---------------------------------------------
class CountingServer:
    """An OpenAI-compatible chat endpoint (HTTP/1.1, keep-alive) that echoes each prompt and the seed
    it was sent with. With ``limit``: answers 429 while more than ``limit`` requests are in flight (the
    first 429 with ``Retry-After: first_retry_after``, the rest without). ``fail_every``: every request
    gets 503. Records arrival times, in-flight counts, 429 times and the client ports (connections)."""

    def __init__(
        self,
        *,
        limit: int | None = None,
        first_retry_after: str | None = None,
        delay: float = 0.02,
        fail_every: bool = False,
        close_idle: bool = False,
    ) -> None:
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.arrivals: list[float] = []
        self.throttled_at: list[float] = []
        self.ports: set[int] = set()
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests += 1
                    outer.in_flight += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                    outer.arrivals.append(time.monotonic())
                    outer.ports.add(self.client_address[1])
                    throttle = fail_every or (limit is not None and outer.in_flight > limit)
                    first = throttle and not outer.throttled_at
                    if throttle:
                        outer.throttled_at.append(time.monotonic())
                if throttle:
                    with outer.lock:
                        outer.in_flight -= 1
                    self.send_response(503 if fail_every else 429)
                    if first and first_retry_after is not None:
                        self.send_header("Retry-After", first_retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(delay)
                content = body["messages"][-1]["content"]
                out = json.dumps(
                    {
                        "choices": [{"message": {"content": f"{content} | seed {body['seed']}"}}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
                    }
                ).encode()
                with outer.lock:
                    outer.in_flight -= 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                if close_idle:  # drop the connection without saying so (an idle keep-alive timeout)
                    self.close_connection = True

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_port}/v1"

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def counting():
    made: list[CountingServer] = []

    def make(**kw) -> CountingServer:
        made.append(CountingServer(**kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _chat(k: int) -> list:
    return [[{"role": "user", "content": f"prompt {i}"}] for i in range(k)]


def test_requests_are_concurrent_bounded_and_connections_reused(counting):
    srv = counting()
    gen = OpenAIGenerator("m", srv.url, concurrency=4)
    out = gen.generate(_chat(24), 1, Decoding(max_new_tokens=4, seed=7))
    assert [s[0].text for s in out] == [f"prompt {i} | seed 7" for i in range(24)]  # in order
    assert srv.peak == 4 and gen.stats.peak_in_flight == 4  # concurrent, and never above the ceiling
    assert gen.stats.requests == 24 and gen.stats.retries == 0 and gen.stats.throttled == 0
    # keep-alive: one connection per worker, reused by the next call too
    assert len(srv.ports) == gen.stats.connections <= 4
    gen.generate(_chat(8), 1, Decoding(max_new_tokens=4))
    assert len(srv.ports) == gen.stats.connections <= 4 and srv.requests == 32


def test_one_decoding_per_prompt_and_n_samples(counting):
    srv = counting()
    gen = OpenAIGenerator("m", srv.url, concurrency=3)
    decodings = [Decoding(max_new_tokens=4, seed=100 * (i + 1)) for i in range(3)]
    out = gen.generate(_chat(3), 2, decodings)
    assert [[c.text for c in s] for s in out] == [
        [f"prompt {i} | seed {100 * (i + 1) + j}" for j in range(2)] for i in range(3)
    ]
    with pytest.raises(ValueError, match="2 decodings for 3 prompts"):
        gen.generate(_chat(3), 1, decodings[:2])


def test_429_lowers_the_limit_retry_after_holds_everyone_then_it_climbs_back(counting, caplog):
    caplog.set_level("DEBUG", logger="augment.generators.openai_compat")
    srv = counting(limit=3, first_retry_after="1", delay=0.03)
    gen = OpenAIGenerator("m", srv.url, concurrency=8, max_retries=10)
    gen.backoff = 0.05
    t0 = time.monotonic()
    out = gen.generate(_chat(60), 1, Decoding(max_new_tokens=4, seed=1))
    took = time.monotonic() - t0
    # every prompt got its own answer, in order, despite the 429s
    assert [s[0].text for s in out] == [f"prompt {i} | seed 1" for i in range(60)]
    assert gen.stats.throttled == len(srv.throttled_at) > 0 and gen.stats.retries >= gen.stats.throttled
    assert srv.peak <= 8 and gen.stats.peak_in_flight <= 8
    # the limit halved on the 429s (not once per 429: once per round) and grew again after successes
    changes = [
        tuple(int(x) for x in r.getMessage().rsplit(" ", 3)[-3::2])
        for r in caplog.records
        if "requests in flight" in r.getMessage()
    ]
    assert changes[0] == (8, 4) and gen.stats.lowest_limit < 4  # down first: it starts at the ceiling
    assert any(b == a + 1 for a, b in changes)  # then up again, one at a time
    assert all(1 <= b <= 8 and (b == a + 1 or b == max(1, a // 2)) for a, b in changes)
    # Retry-After: 1 held every worker: no request arrived in the second after the first 429
    first = srv.throttled_at[0]
    assert not [t for t in srv.arrivals if first + 0.3 < t < first + 0.9]
    assert took >= 0.95
    assert len(srv.ports) == gen.stats.connections <= 8  # 429s did not cost connections


def test_a_server_that_keeps_failing_fails_each_sample_and_the_limit_stays_at_least_one(counting):
    srv = counting(fail_every=True)
    gen = OpenAIGenerator("m", srv.url, concurrency=4, max_retries=2)
    gen.backoff = 0.01
    out = gen.generate(_chat(6), 1, Decoding(max_new_tokens=4))
    assert all(s[0].text is None and "HTTP 503 after 3 attempt(s)" in s[0].error for s in out)
    assert srv.requests == 18 and gen.stats.retries == 12 and gen.stats.throttled == 18
    assert gen.stats.limit == gen.stats.lowest_limit == 1


def test_a_connection_the_server_dropped_is_reopened_without_a_retry(counting):
    srv = counting(close_idle=True)
    gen = OpenAIGenerator("m", srv.url, concurrency=1)
    out = gen.generate(_chat(3), 1, Decoding(max_new_tokens=4))
    assert [s[0].text for s in out] == [f"prompt {i} | seed 0" for i in range(3)]
    assert gen.stats.retries == 0 and srv.requests == 3
    assert gen.stats.connections == len(srv.ports) == 3  # each request found its kept connection dropped


def test_retry_after_values():
    assert retry_after_seconds("5", 60) == 5.0
    assert retry_after_seconds("600", 60) == 60.0  # capped
    assert retry_after_seconds("-3", 60) == 0.0
    assert retry_after_seconds(None, 60) is None and retry_after_seconds("soon", 60) is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=10), usegmt=True)
    assert 8 <= retry_after_seconds(later, 60) <= 10
    past = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=10), usegmt=True)
    assert retry_after_seconds(past, 60) == 0.0


def test_concurrency_must_be_positive():
    from augment.errors import ConfigError
    from augment.generators import GeneratorConfig

    with pytest.raises(ConfigError, match="concurrency must be >= 1"):
        GeneratorConfig(concurrency=0)
    with pytest.raises(ConfigError, match="concurrency must be >= 1"):
        OpenAIGenerator("m", "http://127.0.0.1:9/v1", concurrency=0)


# -- llama-cpp-python's server with the packaged SmolLM2 ------------------------------------------
@pytest.fixture(scope="module")
def smollm2_server():
    with llama_server() as url:
        yield url


QUESTIONS = [
    "Name a colour.", "Name a fruit.", "Name an animal.", "Name a country.",
    "Name a tool.", "Name a planet.", "Name a drink.", "Name a sport.",
]  # fmt: skip


@pytest.mark.models
def test_llama_server_batch_at_concurrency_8_equals_concurrency_1(smollm2_server):
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    greedy = Decoding(max_new_tokens=24, temperature=0.0, seed=5)
    one = OpenAIGenerator("smollm2", smollm2_server, concurrency=1)
    eight = OpenAIGenerator("smollm2", smollm2_server, concurrency=8)
    a = one.generate(prompts, 1, greedy)
    b = eight.generate(prompts, 1, greedy)
    assert all(s[0].text for s in a)
    assert [s[0].text for s in a] == [s[0].text for s in b]
    assert one.stats.peak_in_flight == 1 and eight.stats.peak_in_flight > 1
    assert eight.stats.requests == 8 and eight.stats.connections <= 8


@pytest.mark.models
def test_expand_through_the_served_model_at_concurrency_4(smollm2_server, tmp_path, monkeypatch):
    made: list[OpenAIGenerator] = []
    init = OpenAIGenerator.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(OpenAIGenerator, "__init__", record)
    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [r for r in rows if r["label"] == "cardiac"][:4])
    out = tmp_path / "o"
    args = [
        "expand", seeds, "-o", out, "--methods", "self_instruct", "--n-per-seed", "2",
        "--max-new-tokens", "24", "--batch-size", "4", "--recipe", "off", "--embedder", "hashing",
        "--backend", "openai", "--model", "smollm2", "--base-url", smollm2_server,
        "--concurrency", "4", "--no-cache",
    ]  # fmt: skip
    result = invoke(args)
    assert result.exit_code == 0, (result.output, result.exception)
    written = read_jsonl(out / "augmented.jsonl") + read_jsonl(out / "rejected.jsonl")
    generated = [r for r in written if r["origin"] != "seed"]
    assert generated and all(r["backend"] == "openai" and r["model"] == "smollm2" for r in generated)
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert m["config"]["generator"]["concurrency"] == 4 and m["generation"]["self_instruct"]["calls"] == 4
    (gen,) = made
    assert gen.concurrency == 4 and 1 < gen.stats.peak_in_flight <= 4  # the batch's 4 prompts at once
