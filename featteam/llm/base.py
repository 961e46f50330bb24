"""What every LLM client shares: usage counts, a budget, bounded retries, and URLs written
without their credentials (:func:`redact_url`)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import FeatteamError

if TYPE_CHECKING:
    from .cache import ResponseCache

logger = logging.getLogger(__name__)
T = TypeVar("T")


class LLMError(FeatteamError):
    """An LLM backend failed for good (after its retries).

    ``detail`` says what happened; ``endpoint``, when known, is where (a URL without
    credentials, or a model's name): the message reads "the teacher at <endpoint>: <detail>".
    """

    def __init__(self, detail: str, endpoint: str | None = None) -> None:
        self.detail = detail
        self.endpoint = endpoint
        super().__init__(f"the teacher at {endpoint}: {detail}" if endpoint else detail)


class BudgetExhausted(FeatteamError):
    """The call or token budget is spent; generation stops cleanly."""


@dataclass
class Usage:
    """Calls, tokens and cache hits of one backend, with an optional budget."""

    max_calls: int | None = None
    max_tokens: int | None = None
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    #: what the answers served from the response cache cost when they were made (calls, tokens):
    #: the budget counts them as if made now, so that it ends a run at the same answer whatever
    #: the cache holds (a warm cache, a resumed run)
    cached_calls: int = 0
    cached_tokens: int = 0

    def spent(self) -> tuple[int, int]:
        """The calls and tokens the budget counts: those made and those served from the cache."""
        return self.calls + self.cached_calls, self.prompt_tokens + self.completion_tokens + self.cached_tokens

    def check(self) -> None:
        """Raise BudgetExhausted if another call would exceed the budget."""
        calls, tokens = self.spent()
        if self.max_calls is not None and calls >= self.max_calls:
            raise BudgetExhausted(f"call budget of {self.max_calls} spent")
        if self.max_tokens is not None and tokens >= self.max_tokens:
            raise BudgetExhausted(f"token budget of {self.max_tokens} spent")

    def serve_cached(self, cost: tuple[int, int]) -> None:
        """Count an answer served from the cache, whose making cost ``cost`` (calls, tokens)."""
        self.cache_hits += 1
        self.cached_calls += int(cost[0])
        self.cached_tokens += int(cost[1])

    def record(self, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        self.calls += 1
        self.prompt_tokens += int(prompt_tokens)
        self.completion_tokens += int(completion_tokens)
        self.seconds += seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cached_answer(value: Any, kind: type, default_calls: int) -> tuple[Any, tuple[int, int]] | None:
    """A response cache's value as (answer, cost): ``{"answer": ..., "cost": [calls, tokens]}``, or
    an answer stored bare by an older featteam (its cost unknown: ``default_calls`` calls, no
    tokens).  None for a value that is neither (a miss)."""
    if isinstance(value, dict):
        answer, cost = value.get("answer"), value.get("cost")
        if (isinstance(answer, kind) and isinstance(cost, list) and len(cost) == 2
                and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cost)):
            return answer, (cost[0], cost[1])
        return None
    return (value, (default_calls, 0)) if isinstance(value, kind) else None


#: Query parameters whose values are credentials (matched anywhere in the name, any case).
_SECRET_QUERY = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session", re.IGNORECASE)
#: ``scheme://user:password@`` in text that urlsplit cannot read.
_USERINFO = re.compile(r"(//)[^/?#@\s]*@")
REDACTED = "REDACTED"


def redact_url(url: str | None) -> str | None:
    """``url`` as it may be written anywhere (reports, logs, error messages): without the
    user name and password, and with the values of query parameters named like a key,
    token, secret or password replaced by ``REDACTED``.  A URL with nothing to hide is
    returned unchanged (character for character)."""
    if url is None:
        return None
    url = str(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # unreadable (a broken IPv6 host, say): still drop anything like user:password@
        return _USERINFO.sub(r"\1", url)
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, eq, value = pair.partition("=")
            pairs.append(f"{name}={REDACTED}" if eq and value and _SECRET_QUERY.search(name) else pair)
        query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def with_retries(call: Callable[[], T], retryable: tuple[type[BaseException], ...], usage: Usage,
                 max_retries: int = 3, backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``call``; on a retryable error wait ``backoff * 2**k`` seconds and try again, at most
    ``max_retries`` times."""
    for attempt in range(max_retries + 1):
        try:
            return call()
        except retryable as exc:
            name = type(exc).__name__
            usage.errors[name] = usage.errors.get(name, 0) + 1
            if attempt == max_retries:
                usage.failures += 1
                tries = "1 attempt" if max_retries == 0 else f"{max_retries + 1} attempts"
                raise LLMError(f"no answer after {tries}: {name}: {exc}") from None
            usage.retries += 1
            delay = backoff * 2 ** attempt
            logger.info("LLM call failed (%s), retrying in %.1f s", name, delay)
            sleep(delay)
    raise AssertionError("unreachable")


class LLMBackend:
    """Interface of the teacher's backends.

    ``propose(messages, n, seed)`` returns ``n`` raw texts, each meant to hold
    one or more transformations in the postfix text form.
    """

    name: str = "llm"
    usage: Usage
    cache: "ResponseCache"

    def propose(self, messages: list[dict[str, str]], n: int, seed: int) -> list[str]:
        raise NotImplementedError

    def _answer(self, key: str, kind: type, default_calls: int, make: Callable[[], Any]) -> Any:
        """The answer ``cache`` holds under ``key``, else ``make()``'s, stored with its cost.

        Either way it counts against the budget as it did when made (:func:`cached_answer`), so
        that a budget ends a run at the same answer whatever the cache holds (a warm cache, a
        resumed run); a spent budget raises :class:`BudgetExhausted` before either."""
        self.usage.check()
        cached = cached_answer(self.cache.get(key), kind, default_calls)
        if cached is not None:
            answer, cost = cached
            self.usage.serve_cached(cost)
            return answer
        before = self.usage.spent()
        answer = make()
        after = self.usage.spent()
        self.cache.put(key, {"answer": answer, "cost": [after[0] - before[0], after[1] - before[1]]})
        return answer

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}
