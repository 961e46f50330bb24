"""The LLM response cache where its file cannot be made: like a damaged one, it warns once and
then misses every lookup and skips every write; the endpoint's answer is never lost to it."""

from __future__ import annotations

import logging

from featteam.llm.cache import CACHE_FILE, ResponseCache
from featteam.llm.openai_backend import OpenAIChat

from .fake_openai import FakeChatServer


def _blocked(tmp_path):
    """A cache path whose folder cannot be created: a file stands where the folder would be."""
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path / "afile" / CACHE_FILE


def test_a_cache_whose_folder_cannot_be_made_warns_once_and_misses(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="featteam.llm.cache")
    cache = ResponseCache(_blocked(tmp_path))
    assert cache.get("k") is None
    cache.put("k", "answer")  # no OSError
    cache.put("k2", ["x"])
    assert cache.get("k") is None and cache.get("k2") is None and len(cache) == 0
    (warning,) = [r for r in caplog.records if r.name == "featteam.llm.cache"]
    assert "cannot be created or opened" in warning.getMessage() and "running without it" in warning.getMessage()
    assert (tmp_path / "afile").read_text() == "not a folder"  # left as it was


def test_an_answer_is_kept_when_the_cache_cannot_store_it(tmp_path, caplog):
    with FakeChatServer([(200, "[f0 f1 +]"), (200, "[f0 sqrt]")]) as server:
        backend = OpenAIChat(model="m", base_url=server.url, max_retries=0, timeout=5,
                             cache=ResponseCache(_blocked(tmp_path)))
        assert backend.propose([{"role": "user", "content": "hi"}], n=1, seed=0) == ["[f0 f1 +]"]
        # asked again: a miss, so the endpoint answers (nothing was stored, nothing fails)
        assert backend.propose([{"role": "user", "content": "hi"}], n=1, seed=0) == ["[f0 sqrt]"]
        assert len(server.requests) == 2
    assert backend.usage.calls == 2 and backend.usage.cache_hits == 0
    assert caplog.text.count("cannot be created or opened") == 1


def test_the_local_teachers_answers_are_kept_per_grammar(tmp_path, monkeypatch):
    """The local teacher samples under the grammar: answers sampled with one longest feature are
    not answers for another (they were served from the cache for every max_feature_length)."""
    from featteam.expr import Grammar, Vocabulary
    from featteam.llm.cache import ResponseCache
    from featteam.llm.local import LocalLM

    teacher = LocalLM(cache=ResponseCache(tmp_path / "cache.sqlite"))
    sampled: list[int] = []
    monkeypatch.setattr(teacher, "_load", lambda: None)
    monkeypatch.setattr(teacher, "_sample", lambda messages, n, seed, grammar: sampled.append(n) or ["[f0 f1 +]"] * n)
    messages = [{"role": "user", "content": "write features"}]
    for longest in (4, 4, 9):
        teacher.propose(messages, 2, seed=0, grammar=Grammar(Vocabulary(3), max_feature_length=longest))
    assert sampled == [2, 2] and teacher.usage.cache_hits == 1


def test_a_budget_ends_at_the_same_answer_whatever_the_cache_holds(tmp_path):
    """Answers served from the cache count against --max-calls and --max-tokens as when they were
    made: a warm cache (or a resumed run) gave a call budget of 2 four rounds of answers."""
    from featteam.llm.base import BudgetExhausted, Usage

    def rounds(max_calls=None, max_tokens=None):
        backend = OpenAIChat(model="m", base_url="http://127.0.0.1:9/v1", api_key="x",
                             cache=ResponseCache(tmp_path / "c.sqlite"),
                             usage=Usage(max_calls=max_calls, max_tokens=max_tokens))

        def answer(messages, seed):
            backend.usage.record(30, 10, 0.0)
            return f"[f0 f1 +] seed {seed}"

        backend._call = answer
        got = []
        for r in range(4):
            try:
                got += backend.propose([{"role": "user", "content": "x"}], n=1, seed=r)
            except BudgetExhausted:
                break
        return got, backend.usage

    cold, usage = rounds(max_calls=2)
    assert len(cold) == 2 and usage.calls == 2 and usage.cache_hits == 0
    rounds()  # the other rounds' answers made and cached
    warm, usage = rounds(max_calls=2)
    assert warm == cold and usage.calls == 0 and usage.cache_hits == 2 and usage.cached_calls == 2
    assert rounds(max_tokens=80)[0] == cold  # 40 tokens an answer, counted from the cache too


def test_cached_answers_of_older_featteams_are_still_served():
    from featteam.llm.base import cached_answer

    assert cached_answer("[f0 sqrt]", str, 1) == ("[f0 sqrt]", (1, 0))  # stored bare: its cost unknown
    assert cached_answer(["a", "b"], list, 2) == (["a", "b"], (2, 0))
    assert cached_answer({"answer": "[f0 sqrt]", "cost": [1, 40]}, str, 1) == ("[f0 sqrt]", (1, 40))
    for damaged in ({"answer": 3, "cost": [1, 2]}, {"answer": "x", "cost": [1]}, {"answer": "x", "cost": [-1, 2]},
                    {"answer": "x", "cost": [True, 2]}, 7, None):
        assert cached_answer(damaged, str, 1) is None  # a miss: asked again
