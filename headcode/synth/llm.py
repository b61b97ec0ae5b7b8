"""The optional LLM proposer: candidate programs for one head from any OpenAI-compatible server.

A conversation per head: the prompt (`headcode.synth.prompt`) asks for N programs;
the reply is only ever *parsed as DSL text*. If it holds no valid program, the
checker's messages go back as the next user turn, at most `config.retries` times.

Failure policy (a choice, documented in docs/llm.md): `propose` never raises for
anything the server does (unreachable, timeout, HTTP errors, malformed bodies,
empty choices). It returns what it has, with the reason in `error` and in
`rejected`, so a search over 270 heads survives a flaky server and the caller
decides how loudly to warn (one line per run is enough). Configuration mistakes
(no server, a malformed or empty URL, no model, no key) are `UserError`s from
`LLMConfig`, before any call; there is no default server.

Every well-formed reply is cached on disk under the SHA-256 of the request
(model and messages; not the base URL, so the same model behind another address
reuses it). Replies whose programs did not check are cached too: the follow-up
turn depends on them, and replaying the whole conversation is what makes a rerun
reproducible. Server errors are never cached. The cache is bounded
(`LLMConfig.cache_limit`, 256 MiB): after a write, the least recently used entries
(a hit refreshes an entry's time) are removed until it fits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from headcode import dsl, fileio
from headcode.errors import UserError
from headcode.synth.prompt import HeadSummary, build_messages, feedback, read_reply

__all__ = ["HeadSummary", "LLMConfig", "ProposalResult", "build_messages", "propose", "request_key"]

MAX_REPLY = 1 << 20  # bytes of one reply at most (a few programs are a few KB)
CACHE_FORMAT = 1  # bump when the cached file's layout changes; old files are then misses
MAX_CACHE = 256 << 20  # bytes of the whole cache at most; a reply is at most MAX_REPLY


@dataclass(frozen=True)
class LLMConfig:
    base_url: str  # the server, always named by the user (`server_url` checks it)
    model: str
    api_key: str | None
    timeout_s: float = 60.0  # per request, in all (a server that drips its reply is cut off too)
    retries: int = 2  # follow-up rounds after a reply with no valid program
    candidates: int = 3  # programs asked for per head
    cache_dir: Path | None = None  # None: no cache
    cache_limit: int = MAX_CACHE  # bytes; least recently used entries go first

    def __post_init__(self) -> None:
        server_url(self.base_url, "base_url")  # fail when made, not at the first request

    @classmethod
    def from_env(cls, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 **kw) -> LLMConfig:
        """Flags win, then OPENAI_BASE_URL / OPENAI_API_KEY / HEADCODE_LLM_MODEL (then OPENAI_MODEL)."""
        env = os.environ
        if base_url is None and "OPENAI_BASE_URL" in env:
            base_url, what = env["OPENAI_BASE_URL"], "OPENAI_BASE_URL"
        else:
            what = "--llm-base-url"
        model = model or env.get("HEADCODE_LLM_MODEL") or env.get("OPENAI_MODEL")
        api_key = api_key or env.get("OPENAI_API_KEY")
        if not model:
            raise UserError("the LLM proposer needs a model: pass --llm-model or set HEADCODE_LLM_MODEL")
        if not api_key:
            # Local servers usually accept any key; the client insists on one.
            raise UserError("the LLM proposer needs an API key: pass --llm-api-key or set OPENAI_API_KEY "
                            "(any text for a local server that ignores it)")
        if base_url is None:
            # Never a default: the prompt and the key go only where the user said.
            raise UserError("the LLM proposer needs a server: pass --llm-base-url or set OPENAI_BASE_URL "
                            "(for instance http://127.0.0.1:8080/v1)")
        base_url = server_url(base_url, what)
        if kw.get("cache_dir") is None:
            kw["cache_dir"] = default_cache_dir()
        return cls(base_url=base_url, model=model, api_key=api_key, **kw)


def server_url(url: str, what: str = "--llm-base-url") -> str:
    """`url` if it names an http(s) server, else a one-line UserError (an empty value
    is an error, not "the default server")."""
    shown = url if len(url) <= 80 else url[:77] + "..."
    if not url.strip():
        raise UserError(f"{what} is empty; name the server, for instance http://127.0.0.1:8080/v1")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as err:
        raise UserError(f"{what}: {shown!r} is not a URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{what}: {shown!r} is not an http:// or https:// URL with a host")
    import openai

    try:  # the client's own rules too (length, characters), so no request can fail on them
        openai.OpenAI(base_url=url, api_key="unused", max_retries=0).close()
    except Exception as err:  # noqa: BLE001 - whatever the client refuses, said in one line
        raise UserError(f"{what}: {shown!r} is not a URL the client accepts ({str(err)[:80]})") from None
    return url


def default_cache_dir() -> Path:
    """$HEADCODE_CACHE/llm, else the user's cache directory /headcode/llm."""
    root = os.environ.get("HEADCODE_CACHE")
    if root:
        return Path(root).expanduser() / "llm"
    import platformdirs

    return Path(platformdirs.user_cache_dir("headcode")) / "llm"


@dataclass
class ProposalResult:
    programs: list[dsl.Program] = field(default_factory=list)  # unique
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (candidate text, reason)
    calls: int = 0  # HTTP requests made (cache hits excluded)
    cached: bool = False  # every reply came from the cache
    error: str | None = None  # one line when the server failed; the caller warns with it


class ServerError(Exception):
    """Anything wrong with the server's answer, as one line."""


def request_key(model: str, messages: list[dict]) -> str:
    """The cache key: SHA-256 of the canonical JSON of the request."""
    blob = json.dumps({"model": model, "messages": messages}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _cache_get(config: LLMConfig, key: str) -> str | None:
    if config.cache_dir is None:
        return None
    try:
        entry = json.loads(fileio.read_text(config.cache_dir / f"{key}.json"))
    except (OSError, ValueError, RecursionError):
        return None  # absent or damaged: ask the server again
    if isinstance(entry, dict) and entry.get("format") == CACHE_FORMAT and isinstance(entry.get("content"), str):
        if _text_problem(entry["content"]) is None:
            with contextlib.suppress(OSError):
                os.utime(config.cache_dir / f"{key}.json")  # recently used: trimmed last
            return entry["content"]
    return None  # a damaged or poisoned entry is a miss


def _cache_put(config: LLMConfig, key: str, messages: list[dict], content: str) -> None:
    if config.cache_dir is None:
        return
    entry = {"format": CACHE_FORMAT, "model": config.model, "messages": messages, "content": content}
    try:
        fileio.write_text(config.cache_dir / f"{key}.json", json.dumps(entry, ensure_ascii=False, indent=1))
        _trim_cache(config.cache_dir, config.cache_limit)
    except OSError:
        pass  # a read-only cache costs reruns, not correctness


def _trim_cache(directory: Path, limit: int) -> None:
    """Remove the least recently used entries of `directory` until it holds at most
    `limit` bytes (only `*.json` entries count and go; the newest always stays)."""
    entries = []
    for path in directory.glob("*.json"):
        with contextlib.suppress(OSError):
            info = path.stat()
            entries.append((info.st_mtime_ns, info.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries)[:-1]:
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            total -= size


def _content(body: str) -> str:
    """The assistant text of a chat-completion body, validated by hand.

    The client's own parsing is lenient (a non-JSON body comes back as a string,
    a JSON error as a bare ValueError), so we read the raw body ourselves.
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise ServerError(f"reply is not JSON: {body[:80]!r}") from None
    except RecursionError:
        raise ServerError("reply is JSON nested too deeply to read") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise ServerError("reply has no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise ServerError("reply has no message content")
    if (problem := _text_problem(content)) is not None:
        raise ServerError(problem)
    return content


def _text_problem(content: str) -> str | None:
    """Why a reply's text cannot be used (None when it can): text that is not valid
    Unicode (a lone surrogate escape such as \\ud800) can be neither cached nor sent back."""
    try:
        content.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"reply text is not valid Unicode (a lone surrogate at character {err.start})"
    return None


def _ask(client, config: LLMConfig, messages: list[dict]) -> str:
    import openai

    deadline = time.monotonic() + config.timeout_s
    try:
        # Streamed, so that the deadline holds for the whole reply: the client's own
        # timeout is per read, and a server that sends a byte now and then never hits it.
        with client.chat.completions.with_streaming_response.create(model=config.model, messages=messages) as raw:
            chunks, size = [], 0
            for chunk in raw.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY:
                    raise ServerError(f"reply is over {MAX_REPLY:,} bytes")
                if time.monotonic() > deadline:
                    raise ServerError(f"no reply within {config.timeout_s:g} s")
        return _content(b"".join(chunks).decode("utf-8", errors="replace"))
    except openai.APITimeoutError:
        raise ServerError(f"no reply within {config.timeout_s:g} s") from None
    except openai.APIConnectionError as err:
        raise ServerError(f"cannot reach {config.base_url}: {err}") from None
    except openai.APIStatusError as err:
        raise ServerError(f"HTTP {err.status_code}: {str(err)[:160]}") from None
    except openai.OpenAIError as err:
        raise ServerError(f"{type(err).__name__}: {str(err)[:160]}") from None


def _client(config: LLMConfig):
    import openai  # imported here: the offline search path never needs it

    # max_retries=0: our retries are conversational (checker feedback); a dead
    # server should cost one timeout per head, not three.
    return openai.OpenAI(base_url=config.base_url, api_key=config.api_key, timeout=config.timeout_s,
                         max_retries=0)


def propose(summary: HeadSummary, config: LLMConfig) -> ProposalResult:
    """Candidate programs for one head; never raises for server failures (see the module doc)."""
    messages = build_messages(summary, config.candidates)
    result = ProposalResult()
    seen: set[str] = set()
    client = None
    try:
        for _ in range(1 + max(config.retries, 0)):
            key = request_key(config.model, messages)
            content = _cache_get(config, key)
            if content is None:
                client = client or _client(config)
                result.calls += 1
                try:
                    content = _ask(client, config, messages)
                except ServerError as err:
                    result.error = str(err)
                    result.rejected.append(("", f"server: {err}"))
                    break
                _cache_put(config, key, messages, content)
            # Read a bounded number of candidates: a runaway reply cannot make us parse forever.
            reading = read_reply(content, limit=4 * max(config.candidates, 1))
            result.rejected += reading.rejected
            for program in reading.programs:
                if program not in seen:
                    seen.add(program)
                    result.programs.append(program)
            if reading.programs:
                break
            messages = [*messages, {"role": "assistant", "content": content},
                        {"role": "user", "content": feedback(reading, config.candidates)}]
    finally:
        if client is not None:
            client.close()
    result.cached = result.calls == 0 and result.error is None
    return result

