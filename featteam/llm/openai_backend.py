"""Teacher backend for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM,
llama.cpp server, Ollama).  The API key is used for requests only: never logged,
never written."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import FeatteamError
from ..settings import env
from .base import LLMBackend, Usage, with_retries
from .cache import ResponseCache, cache_key

logger = logging.getLogger(__name__)


class OpenAIChat(LLMBackend):
    """Chat completions through the ``openai`` client.

    Parameters
    ----------
    model, base_url, api_key : str, optional
        Default to ``FEATTEAM_MODEL`` / ``FEATTEAM_BASE_URL`` / ``FEATTEAM_API_KEY``,
        then ``OPENAI_MODEL`` / ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
    temperature : float
    max_tokens : int
        Completion tokens per answer.
    timeout : float
        Seconds per request.
    max_retries : int
        Retries on timeouts, connection errors, 429 and 5xx.
    cache : ResponseCache, optional
    usage : Usage, optional
        Shared counters and budget.
    """

    name = "openai"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 temperature: float = 0.8, max_tokens: int = 800, timeout: float = 60.0, max_retries: int = 3,
                 backoff: float = 0.5, cache: ResponseCache | None = None, usage: Usage | None = None) -> None:
        import openai

        self.model = model or env("MODEL", "OPENAI_MODEL") or "gpt-4o"
        self.base_url = base_url or env("BASE_URL", "OPENAI_BASE_URL")
        key = api_key or env("API_KEY", "OPENAI_API_KEY")
        if not key and self.base_url is None:
            raise FeatteamError("the openai teacher needs an API key: set FEATTEAM_API_KEY or OPENAI_API_KEY, "
                                "or give --base-url for a local server that needs none")
        self.temperature, self.max_tokens = temperature, max_tokens
        self.max_retries, self.backoff = max_retries, backoff
        self.cache = cache if cache is not None else ResponseCache(None)
        self.usage = usage if usage is not None else Usage()
        self._client = openai.OpenAI(api_key=key or "not-needed", base_url=self.base_url, timeout=timeout,
                                     max_retries=0)
        self._retryable = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                           openai.InternalServerError)
        self._openai = openai

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "base_url": self.base_url,
                "temperature": self.temperature}

    def propose(self, messages: list[dict[str, str]], n: int, seed: int, grammar=None) -> list[str]:
        texts = []
        for i in range(n):
            key = cache_key(backend=self.name, model=self.model, base_url=self.base_url, messages=messages,
                            temperature=self.temperature, max_tokens=self.max_tokens, seed=seed, index=i)
            cached = self.cache.get(key)
            if cached is not None:
                self.usage.cache_hits += 1
                texts.append(cached)
                continue
            self.usage.check()
            text = self._call(messages, seed + i)
            self.cache.put(key, text)
            texts.append(text)
        return texts

    def _call(self, messages: list[dict[str, str]], seed: int) -> str:
        start = time.perf_counter()

        def request():
            return self._client.chat.completions.create(model=self.model, messages=messages,
                                                        temperature=self.temperature, max_tokens=self.max_tokens,
                                                        seed=seed)
        try:
            response = with_retries(request, self._retryable, self.usage, self.max_retries, self.backoff)
        except self._openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
            self.usage.failures += 1
            raise FeatteamError(f"the teacher endpoint refused the request: HTTP {exc.status_code}") from None
        usage = getattr(response, "usage", None)
        self.usage.record(getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0,
                          time.perf_counter() - start)
        choices = getattr(response, "choices", None) or []
        content = choices[0].message.content if choices and choices[0].message else None
        return content if isinstance(content, str) else ""
