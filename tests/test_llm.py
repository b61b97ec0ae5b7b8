"""The LLM proposer against a real chat-completions server on 127.0.0.1.

The server is `http.server` in a thread with a scripted queue of replies; the real
`openai` client talks to it over HTTP. Nothing here reaches the internet.
"""

from __future__ import annotations

import socket
import time

import pytest

from headcode import dsl
from headcode.errors import UserError
from headcode.synth import prompt
from headcode.synth.llm import LLMConfig, propose, request_key
from headcode.synth.prompt import HeadSummary, build_messages, extract_candidates

SUMMARY = HeadSummary(
    layer=3, head=1,
    profile={"entropy": 1.2, "first_mass": 0.55, "prev_mass": 0.3, "self_mass": 0.05},
    top_pairs=(("dog", "The", 0.41), (".", "The", 0.38)),
    examples=("query 'dog' -> 'The'(0.41) 'big'(0.22)",),
)


def texts(result) -> list[str]:
    return [p.text for p in result.programs]


def canon(*programs: str) -> list[str]:
    return [dsl.Program.of(p).text for p in programs]


# --- the prompt ------------------------------------------------------------------------


def test_prompt_examples_parse():
    for text, _ in prompt.EXAMPLES:
        dsl.Program.of(text)


def test_prompt_holds_grammar_vocabulary_and_summary():
    system, user = build_messages(SUMMARY, 4)
    assert system["role"] == "system" and user["role"] == "user"
    assert "else_chain" in system["content"]  # the grammar itself
    for name in ("bos", "prev(count)", "induction", "last(class)", "softmax(terms)", "sent_end", "log_dist"):
        assert name in system["content"]
    assert "layer 3, head 1" in user["content"] and "first_mass: 0.550" in user["content"]
    assert "'dog' -> 'The': 0.410" in user["content"] and "Write 4 different" in user["content"]


def test_extract_candidates():
    reply = "Here:\n```dsl\nsink = bos\n```\ntext\n```\n0.7*prev(1) +\n  0.3*bos\n```\n"
    assert extract_candidates(reply) == ["bos", "0.7*prev(1) +\n  0.3*bos"]
    assert extract_candidates("```\na = bos\nb = prev(1)\n```") == ["bos", "prev(1)"]
    assert extract_candidates("```\nbos\nprev(1)  # one per line\n```") == ["bos", "prev(1)  # one per line"]
    assert extract_candidates("```\nbos\nbogus(\n```") == ["bos\nbogus("]  # not all lines parse: whole
    assert extract_candidates("```prev(1)```") == ["prev(1)"]  # inline fence
    assert extract_candidates("```\nprev(1)") == ["prev(1)"]  # reply cut off inside a block
    # No fences: lines made only of DSL words are candidates, prose lines are not.
    prose = "I think the head attends to the first token.\n1. `last(punct) else bos`\n- key.pos == query.pos - 1"
    assert extract_candidates(prose) == ["last(punct) else bos", "key.pos == query.pos - 1"]


# --- the server conversation -----------------------------------------------------------


def test_good_programs_in_fenced_blocks(server, tmp_path, llm_config):
    server.say("```\n0.3*bos + 0.7*prev(1)\n```\n```hc\nlast(punct) else bos\n```\n```\nprev(1)*0.7 + bos*0.3\n```")
    result = propose(SUMMARY, llm_config(server, tmp_path))
    # The third is the first written differently: deduplicated by canonical id.
    assert texts(result) == canon("0.7*prev(1) + 0.3*bos", "last(punct) else bos")
    assert result.calls == 1 and not result.cached and result.error is None
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["json"]["model"] == "test-model"
    assert [m["role"] for m in request["json"]["messages"]] == ["system", "user"]


def test_prose_around_code(server, tmp_path, llm_config):
    server.say("Looking at the profile, this is a sink head.\n\nsoftmax(4*bos - 0.5*log_dist)\n\nHope it helps!")
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert texts(result) == canon("softmax(4*bos - 0.5*log_dist)") and result.rejected == []


def test_valid_and_invalid_mixed_needs_no_follow_up(server, tmp_path, llm_config):
    server.say("```\nprev(1)\n```\n```\nlast(nonsense)\n```")
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert texts(result) == canon("prev(1)") and len(server.requests) == 1
    assert [text for text, _ in result.rejected] == ["last(nonsense)"]
    assert result.rejected[0][1].startswith("candidate2:1:")


def test_malformed_json_is_a_rejection(server, tmp_path, llm_config):
    server.replies.append((200, b'{"choices": [ not json'))
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert result.programs == [] and "not JSON" in result.error and result.calls == 1
    assert list((tmp_path / "cache").glob("*.json")) == []  # failures are never cached


@pytest.mark.parametrize("body", [{"id": "x", "object": "chat.completion", "choices": []}, "empty content"])
def test_empty_choices_or_content(server, tmp_path, body, completion_body, llm_config):
    server.replies.append((200, completion_body("") if body == "empty content" else body))
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert result.programs == [] and result.error.startswith("reply has no")


def test_http_500(server, tmp_path, llm_config):
    server.replies.append((500, {"error": {"message": "overloaded"}}))
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert result.programs == [] and result.error.startswith("HTTP 500")
    assert result.rejected == [("", f"server: {result.error}")] and len(server.requests) == 1


def test_unreachable_server(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key="k", timeout_s=2.0, cache_dir=None)
    result = propose(SUMMARY, cfg)
    assert result.programs == [] and result.error.startswith("cannot reach") and result.calls == 1


def test_checker_message_goes_back_then_valid(server, tmp_path, llm_config):
    server.say("```\nprev(1) +* bos\n```", "```\nprev(1)\n```")
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert texts(result) == canon("prev(1)") and len(server.requests) == 2
    assert result.rejected and result.rejected[0][0] == "prev(1) +* bos"
    follow_up = server.requests[1]["json"]["messages"]
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]
    assert follow_up[2]["content"] == "```\nprev(1) +* bos\n```"
    assert "candidate1:1:" in follow_up[3]["content"] and "error:" in follow_up[3]["content"]


@pytest.mark.parametrize("retries", [0, 2])
def test_retries_are_bounded(server, tmp_path, retries, llm_config):
    server.say(*["```\nnot_a_pattern(3)\n```"] * 5)
    result = propose(SUMMARY, llm_config(server, tmp_path, retries=retries))
    assert result.programs == [] and result.error is None
    assert len(server.requests) == 1 + retries == result.calls
    assert len(result.rejected) == 1 + retries


def test_reply_without_any_program_gets_told(server, tmp_path, llm_config):
    server.say("I am not sure what this head does.", "```\nbos\n```")
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert texts(result) == canon("bos")
    assert "found no program" in server.requests[1]["json"]["messages"][-1]["content"]


def test_slow_reply_times_out(server, tmp_path, llm_config):
    server.replies.append(("sleep", 10.0))
    start = time.monotonic()
    result = propose(SUMMARY, llm_config(server, tmp_path, timeout_s=0.5))
    assert time.monotonic() - start < 3.0
    assert result.programs == [] and result.error == "no reply within 0.5 s"


def test_a_dripping_server_is_cut_off_at_the_deadline(server, tmp_path, llm_config):
    # Headers at once, then a byte every 0.2 s: the client's per-read timeout never fires.
    server.replies.append(("drip", 0.2))
    start = time.monotonic()
    result = propose(SUMMARY, llm_config(server, tmp_path, timeout_s=1.0))
    assert time.monotonic() - start < 3.0
    assert result.programs == [] and result.error == "no reply within 1 s"


def test_a_huge_reply_is_refused(server, tmp_path, llm_config):
    server.replies.append((200, b" " * (2 << 20)))
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert result.programs == [] and "over 1,048,576 bytes" in result.error
    assert list((tmp_path / "cache").glob("*.json")) == []


def test_explain_stops_asking_a_server_that_keeps_failing(server, tmp_path, llm_config):
    from headcode.heads import Head
    from headcode.synth.proposals import GIVE_UP_AFTER, llm_candidates
    from headcode.synth.data import Split
    from headcode.dsl.tokens import TokenTable
    import numpy as np

    split = Split("train", [TokenTable.from_words(["a", "b", "c"])], ["a b c"],
                  [np.full((1, 8, 3, 3), 1 / 3, dtype=np.float16)])
    server.replies += [(500, {"error": {"message": "down"}})] * 8
    notes: list[str] = []
    out = llm_candidates(split, [Head(0, h) for h in range(8)], llm_config(server, tmp_path, retries=0), notes, False)
    assert len(server.requests) == GIVE_UP_AFTER and all(v == [] for v in out.values())
    assert any("in a row; skipped the remaining heads" in n for n in notes)


def test_cache_hit_makes_no_request(server, tmp_path, llm_config):
    server.say("```\nprev(1) +* bos\n```", "```\nprev(2)\n```")
    first = propose(SUMMARY, llm_config(server, tmp_path))
    assert first.calls == 2 and not first.cached
    again = propose(SUMMARY, llm_config(server, tmp_path, base_url="http://127.0.0.1:9/v1"))  # base URL is not in the key
    assert texts(again) == texts(first) == canon("prev(2)") and again.rejected == first.rejected
    assert again.calls == 0 and again.cached and len(server.requests) == 2
    entries = sorted((tmp_path / "cache").glob("*.json"))
    assert len(entries) == 2
    key = request_key("test-model", build_messages(SUMMARY, 3))
    assert (tmp_path / "cache" / f"{key}.json").exists()


def test_damaged_cache_entry_is_a_miss(server, tmp_path, llm_config):
    key = request_key("test-model", build_messages(SUMMARY, 3))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"{key}.json").write_text("{half")
    server.say("```\nbos\n```")
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert texts(result) == canon("bos") and result.calls == 1


@pytest.mark.parametrize("body, reason", [
    (b'{"choices": [{"message": {"content": "\\ud800 prev(1)"}}]}', "not valid Unicode"),  # a lone surrogate
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_replies_that_cannot_be_read_are_rejections_not_exceptions(server, tmp_path, llm_config, body, reason):
    server.replies.append((200, body))
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert result.programs == [] and reason in result.error
    assert list((tmp_path / "cache").glob("*.json")) == []


def test_the_cache_is_bounded_and_drops_the_least_recently_used_first(server, tmp_path, llm_config):
    import dataclasses

    heads = [dataclasses.replace(SUMMARY, head=h) for h in range(4)]
    cache = tmp_path / "cache"
    server.say("```\nbos\n```")
    propose(heads[0], llm_config(server, tmp_path))
    (entry,) = cache.glob("*.json")
    config = llm_config(server, tmp_path, cache_limit=int(2.5 * entry.stat().st_size))
    for summary in heads[1:3]:
        server.say("```\nbos\n```")
        propose(summary, config)
        time.sleep(0.01)  # distinct modification times
    assert len(list(cache.glob("*.json"))) == 2  # the oldest of three went
    assert sum(p.stat().st_size for p in cache.glob("*.json")) <= config.cache_limit
    assert propose(heads[1], config).calls == 0  # a hit, which makes it the most recent
    time.sleep(0.01)
    server.say("```\nbos\n```")
    propose(heads[3], config)
    assert propose(heads[1], config).calls == 0  # kept: heads[2] was the least recently used
    server.say("```\nbos\n```")
    assert propose(heads[2], config).calls == 1


@pytest.mark.parametrize("entry", [
    '{"format": %d, "model": "test-model", "messages": [], "content": "\\ud800"}',  # poisoned: a lone surrogate
    "[" * 100_000 + "]" * 100_000,  # nested beyond the parser's recursion
])
def test_a_poisoned_cache_entry_is_a_miss(server, tmp_path, llm_config, entry):
    from headcode.synth.llm import CACHE_FORMAT

    key = request_key("test-model", build_messages(SUMMARY, 3))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"{key}.json").write_text(entry.replace("%d", str(CACHE_FORMAT)) if "%d" in entry else entry)
    server.say("```\nbos\n```")
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert texts(result) == canon("bos") and result.calls == 1


def test_code_in_reply_is_never_run(server, tmp_path, monkeypatch, llm_config):
    marker = tmp_path / "pwned"
    server.say(f"```python\n__import__('pathlib').Path({str(marker)!r}).touch()\n```", "```\nbos\n```")
    result = propose(SUMMARY, llm_config(server, tmp_path))
    assert not marker.exists() and texts(result) == canon("bos")


# --- configuration ---------------------------------------------------------------------


def test_from_env_precedence(monkeypatch, tmp_path):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "HEADCODE_LLM_MODEL", "OPENAI_MODEL", "HEADCODE_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_MODEL", "openai-model")
    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path))
    cfg = LLMConfig.from_env()
    assert (cfg.base_url, cfg.model, cfg.api_key) == ("http://env/v1", "openai-model", "env-key")
    assert cfg.cache_dir == tmp_path / "llm"
    monkeypatch.setenv("HEADCODE_LLM_MODEL", "headcode-model")
    assert LLMConfig.from_env().model == "headcode-model"
    cfg = LLMConfig.from_env(base_url="http://flag/v1", model="flag-model", api_key="flag-key", retries=5,
                             cache_dir=tmp_path / "c")
    assert (cfg.base_url, cfg.model, cfg.api_key, cfg.retries) == ("http://flag/v1", "flag-model", "flag-key", 5)
    assert cfg.cache_dir == tmp_path / "c"


def test_from_env_missing_model_or_key(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "HEADCODE_LLM_MODEL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match="needs a model") as err:
        LLMConfig.from_env(api_key="k")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="needs an API key"):
        LLMConfig.from_env(model="m")


@pytest.mark.parametrize("flag, env, message", [
    (None, None, "needs a server"),  # never the public default
    ("", None, "is empty"),
    (None, "", "OPENAI_BASE_URL is empty"),
    ("http://[::1", None, "is not a URL"),
    ("ftp://host/v1", None, "not an http"),
    ("http://host:99999/v1", None, "is not a URL"),
    ("http://" + "a" * 70_000 + "/v1", None, "not a URL the client accepts"),  # the client's length limit
])
def test_the_server_is_always_named_and_well_formed(monkeypatch, flag, env, message):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    if env is not None:
        monkeypatch.setenv("OPENAI_BASE_URL", env)
    with pytest.raises(UserError, match=message) as err:
        LLMConfig.from_env(base_url=flag, model="m", api_key="k")
    assert "\n" not in str(err.value)
