"""Credentials never reach what a run writes (issue 12): user-info in ``--base-url`` is sent as HTTP
basic auth and redacted wherever the URL is recorded; an API key is sent as a bearer token and found
in no output, manifest, log or cache. A real HTTP server on loopback plays the OpenAI-compatible API
and records what it was sent; every file the run wrote is searched."""

from __future__ import annotations

import base64
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import EN_CLINIC, invoke, read_jsonl, write_jsonl

from augment.generators import OpenAIGenerator, redact_url, redact_urls, split_credentials

PASSWORD = "SECRET-pw-9f3a"
KEY = "sk-fake-key-do-not-leak-77"
ANSWER = "1. Crushing chest pain spreading to the left arm\n2. Chest tightness when climbing stairs"


class FakeOpenAI(http.server.BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        prompt = json.dumps(body.get("messages"), ensure_ascii=False)
        if "dermatolog" in prompt.lower():  # one label's requests fail: their rows record the error
            self.send_response(400)
            self.end_headers()
            return
        out = {
            "choices": [{"message": {"content": ANSWER}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 9},
        }
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(out).encode())

    def log_message(self, *a):
        pass


@pytest.fixture()
def server():
    FakeOpenAI.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_port
    srv.shutdown()


@pytest.fixture()
def seeds(tmp_path):
    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")
    picked = [r for r in rows if r["label"] == "cardiac"][:3] + [
        r for r in rows if r["label"] == "dermatological"
    ][:3]
    return write_jsonl(tmp_path / "seeds.jsonl", picked)


def _written(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for folder in folders for p in folder.rglob("*") if p.is_file()}


def _args(seeds, out, port, url_auth: str, *extra) -> list[str]:
    url = f"http://{url_auth}127.0.0.1:{port}/v1"
    return [
        "-v", "expand", str(seeds), "-o", str(out), "--methods", "self_instruct", "--n-per-seed", "2",
        "--recipe", "off", "--backend", "openai", "--model", "fake-model", "--base-url", url, *extra,
    ]  # fmt: skip


def test_helpers():
    assert redact_url("http://user:pw@host:8/v1") == "http://user:***@host:8/v1"
    assert redact_url("https://token@host/v1") == "https://***@host/v1"
    assert redact_url("http://host/v1") == "http://host/v1" and redact_url(None) is None
    assert (
        redact_urls("--base-url=http://a:b@h/v1 and http://c:d@e")
        == "--base-url=http://a:***@h/v1 and http://c:***@e"
    )
    assert split_credentials("http://u%40x:p%3Aw@h:1/v1") == (
        "http://h:1/v1",
        "Basic " + base64.b64encode(b"u@x:p:w").decode(),
    )
    assert split_credentials("http://h/v1") == ("http://h/v1", None)
    gen = OpenAIGenerator("m", f"http://user:{PASSWORD}@127.0.0.1:9/v1")
    assert gen.base_url == "http://127.0.0.1:9/v1"  # what messages and the response cache's key see


def test_password_in_base_url_is_sent_as_basic_auth_and_never_written(seeds, server, tmp_path, offline_env):
    out = tmp_path / "out"
    # a real process, so that its command line (recorded in the manifest) holds the URL
    augment = Path(sys.executable).with_name("augment")
    args = [str(augment), *_args(seeds, out, server, f"user:{PASSWORD}@", "--no-cache")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    # the server got basic auth, and a URL without the user-info
    expected = "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    assert FakeOpenAI.seen and all(s["headers"]["Authorization"] == expected for s in FakeOpenAI.seen)
    assert all(s["path"] == "/v1/chat/completions" for s in FakeOpenAI.seen)
    assert all("@" not in s["headers"]["Host"] for s in FakeOpenAI.seen)
    # rows came back, and the failed label's rows record the error with the URL redacted
    rows = read_jsonl(out / "augmented.jsonl") + read_jsonl(out / "rejected.jsonl")
    assert any(r["origin"] == "augmented" and r["method"] == "self_instruct" for r in rows)
    errors = [r["reason_detail"] for r in rows if r.get("reason") == "backend_error"]
    assert errors and all(f"http://127.0.0.1:{server}/v1/chat/completions: HTTP 400" in e for e in errors)
    # the manifest records the URL with the password hidden, in the config and in the command
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert m["config"]["generator"]["base_url"] == f"http://user:***@127.0.0.1:{server}/v1"
    assert f"http://user:***@127.0.0.1:{server}/v1" in m["command"]
    # and the password is in no file the run wrote (outputs, caches) nor in anything it printed
    for path, data in _written(out, offline_env).items():
        assert PASSWORD.encode() not in data, path
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr


def test_api_key_is_sent_as_bearer_and_never_written(seeds, server, tmp_path, offline_env, monkeypatch):
    monkeypatch.setenv("AUGMENT_FAKE_KEY", KEY)
    cache = tmp_path / "cache"
    monkeypatch.setenv("AUGMENT_CACHE_DIR", str(cache))  # the response cache is on: it must not hold the key
    out = tmp_path / "out"
    result = invoke(
        _args(seeds, out, server, "", "--api-key-env", "AUGMENT_FAKE_KEY", "--embedder", "hashing")
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert FakeOpenAI.seen and all(s["headers"]["Authorization"] == f"Bearer {KEY}" for s in FakeOpenAI.seen)
    assert (cache / "responses.sqlite").exists()
    for path, data in _written(out, cache).items():
        assert KEY.encode() not in data, path
    assert KEY not in result.output and KEY not in (result.stderr or "")
