"""Fixtures shared by the test modules (no test module imports another).

`server`: a real chat-completions server on 127.0.0.1 (`http.server` in a thread)
with a scripted queue of replies; the real `openai` client talks to it over HTTP.
`llm_config(script, tmp_path)` points the LLM proposer at it; `completion(text)` is
a reply body. Nothing reaches the
internet.

`tiny_model`: the path of a tiny random Llama (2 layers of 4 heads, built locally);
`tiny_library`: a library `headcode explain` wrote for it (12 training, 4 validation,
4 test sequences of the shipped stories); `tiny_report`: the report `headcode report`
wrote of it (every head, 2 examples each). All are made once per test session and
must not be changed by a test (copy the library first).
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from headcode.cli import main
from headcode.synth.llm import LLMConfig


def completion(content: str) -> dict:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


class Script:
    """Replies to serve in order, and the requests received.

    Each reply is (status, body) with body a dict (sent as JSON) or raw bytes, or
    ("sleep", seconds) to stall before answering, or ("drip", seconds) to send the
    body one byte at a time, `seconds` apart.
    """

    def __init__(self):
        self.replies: list = []
        self.requests: list[dict] = []
        self.release = threading.Event()  # set at teardown so stalled handlers end

    def say(self, *contents: str) -> None:
        self.replies += [(200, completion(c)) for c in contents]


class _Handler(http.server.BaseHTTPRequestHandler):
    script: Script

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        script = self.server.script
        script.requests.append({"path": self.path, "json": json.loads(body)})
        status, payload = script.replies.pop(0) if script.replies else (500, {"error": {"message": "no script"}})
        drip = None
        if status == "sleep":
            script.release.wait(payload)
            status, payload = 200, completion("prev(1)")
        elif status == "drip":  # headers at once, then the body a byte every `payload` seconds
            status, drip, payload = 200, payload, completion("prev(1)")
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if drip is None:
                self.wfile.write(data)
            for k in range(len(data) if drip is not None else 0):
                if script.release.wait(drip):
                    break
                self.wfile.write(data[k:k + 1])
                self.wfile.flush()
        except OSError:
            pass  # the client gave up (timeout test)

    def log_message(self, *args):
        pass


@pytest.fixture
def completion_body():
    """`completion_body(text)`: a chat-completion reply carrying `text`."""
    return completion


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.script = Script()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.script.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield httpd.script
    httpd.script.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def llm_config():
    """`llm_config(script, tmp_path, **settings)`: an LLMConfig for the scripted server."""
    return _llm_config


def _llm_config(script: Script, tmp_path: Path, **kw) -> LLMConfig:
    kw.setdefault("cache_dir", tmp_path / "cache")
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("base_url", script.url)
    return LLMConfig(model="test-model", api_key="test-key", **kw)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from headcode.loaders.models import build_tiny_model

    return str(build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="session")
def tiny_library(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("libs") / "tiny.lib"
    code = main(["explain", "--model", tiny_model, "--max-seqs", "12", "--validation-seqs", "4", "--test-seqs", "4",
                 "--out", str(out), "--quiet", "--json"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def tiny_report(tiny_library, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "tiny-report"
    assert main(["report", str(tiny_library), "--out", str(out), "--quiet"]) == 0
    return out
