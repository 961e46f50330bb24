"""Teacher backend for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM,
llama.cpp server, Ollama).  The API key is used for requests only: never logged,
never written.  A user name and password in the URL (``http://user:secret@host/v1``) are
sent as HTTP basic authentication and likewise never written: the URL is recorded, logged
and put in error messages without them (:func:`~featteam.llm.base.redact_url`).

What an endpoint answers is data.  Timeouts, refused connections, HTTP 429 and 5xx are
retried (``max_retries``); anything else that is not a chat completion - another HTTP
error, a body that is not JSON, not text in its charset or not a completion - is an
:class:`LLMError` at once, naming the endpoint, the HTTP status and the start of the body.
A base URL that is no http(s) URL with a host is a :class:`FeatteamError` before any request
(:func:`check_base_url`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import FeatteamError
from ..settings import env
from .base import LLMBackend, LLMError, Usage, redact_url, with_retries
from .cache import ResponseCache, cache_key

logger = logging.getLogger(__name__)

#: Characters of a bad body quoted in an error message.
EXCERPT = 200
#: The largest answer read (a completion of max_tokens is a few kilobytes): more is refused.
MAX_ANSWER_BYTES = 1 << 20
#: The endpoint when no base URL is given (the openai client's own default).
OPENAI_API = "https://api.openai.com/v1"


def excerpt(text: object, limit: int = EXCERPT) -> str:
    """The start of ``text`` for an error message: one line, at most ``limit`` characters, quoted."""
    text = str(text)
    short = text[:limit]
    return repr(short) + ("..." if len(text) > limit else "")


def _split_credentials(url: str | None) -> tuple[str | None, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and that user and password (or None)."""
    if url is None:
        return None, None
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None  # the client will refuse it with its own message
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), (unquote(user), unquote(password))


#: The URL schemes an endpoint is reached with.
URL_SCHEMES = ("http", "https")


def _url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as an endpoint's base URL, in words; None when nothing does."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "it holds a space or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number in 0-65535
    except ValueError as exc:  # a broken IPv6 host ("http://[::1"), a bad port
        return f"it cannot be read ({exc})"
    if parts.scheme.lower() not in URL_SCHEMES:
        return "it does not start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if parts.hostname.isascii():  # (the HTTP library checks a name in other letters itself)
        try:
            # What the connection does with it: an empty label or one over 63 characters fails there.
            parts.hostname.encode("idna")
        except UnicodeError as exc:
            return f"its host is no name a connection can use ({exc})"
    return None


def _bad_url(url: str, problem: str) -> FeatteamError:
    """The error for an unusable base URL, which names it without credentials (a password in it
    must not reach a log or a terminal)."""
    return FeatteamError(f"the teacher's base URL {redact_url(url)!r} is not usable: {problem}; give --base-url "
                         "(or FEATTEAM_BASE_URL) as http(s)://HOST[:PORT][/PATH], e.g. http://127.0.0.1:8000/v1")


def check_base_url(url: str) -> None:
    """Check that ``url`` can be an endpoint's base URL: an http or https URL with a host and, if
    any, a port that is a number, without spaces or control characters.

    Checked before the client is made: the client's HTTP library refuses some bad URLs with an
    exception of its own (not an error meant for the user) and takes others, such as one without
    a scheme, only to fail on every request, each failure retried.

    Parameters
    ----------
    url : str
        The base URL as given (it may hold credentials: they are not shown).

    Raises
    ------
    FeatteamError
        Naming the URL (without credentials) and what is wrong with it.
    """
    problem = _url_problem(url)
    if problem is not None:
        raise _bad_url(url, problem)


def _text_charset(response: Any) -> None:
    """Response hook of the HTTP client: a charset that names no text encoding (``rot13``,
    ``base64``: codecs from text to text or bytes to bytes) is read as UTF-8, as the HTTP
    library reads one it does not know.  Otherwise the client, reading an error's body to make
    its message, fails inside the codec with a TypeError that says nothing of the endpoint."""
    charset = response.charset_encoding
    if charset is None:
        return
    try:
        b"x".decode(charset)  # (empty bytes decode under any name)
    except LookupError:  # unknown, or no text encoding
        response.encoding = "utf-8"
    except UnicodeError:  # a text encoding that refuses these bytes: the body's readers report it
        pass


def read_completion(body: str, status: int, endpoint: str) -> tuple[str, int, int]:
    """The answer text and token counts of a chat-completions response body.

    Raises
    ------
    LLMError
        When the body is not JSON or not a chat completion (with the status and the body's start).
        A completion without text (``content`` null: a refusal, a content filter) is an empty answer.
    """
    def bad(what: str) -> LLMError:
        return LLMError(f"answered HTTP {status} with {what}: {excerpt(body)}", endpoint)

    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError; JSON nested too deep to read
        raise bad("a body that is not JSON") from None
    if not isinstance(data, dict):
        raise bad("JSON that is not a chat completion")
    if "error" in data and "choices" not in data:
        raise bad("an error")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise bad("JSON that is not a chat completion (no choices)")
    message = choices[0].get("message")
    if message is None:
        message = {}
    if not isinstance(message, dict):
        raise bad("JSON that is not a chat completion (the message is no object)")
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep their text
        content = "".join(part["text"] for part in content
                          if isinstance(part, dict) and isinstance(part.get("text"), str))
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise bad("JSON that is not a chat completion (the content is no text)")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 53 else 0

    return content, count("prompt_tokens"), count("completion_tokens")


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
        Seconds per attempt, from connecting to the answer's last byte (an answer still coming
        after that is a timeout, retried as one).
    max_retries : int
        Retries on timeouts, connection errors, 429 and 5xx.
    backoff : float
        Seconds before the first retry (doubled each time).
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
        url = base_url or env("BASE_URL", "OPENAI_BASE_URL")
        key = api_key or env("API_KEY", "OPENAI_API_KEY")
        if not key and url is None:
            raise FeatteamError("the openai teacher needs an API key: set FEATTEAM_API_KEY or OPENAI_API_KEY, "
                                "or give --base-url for a local server that needs none")
        if url is not None:
            check_base_url(url)
        #: the endpoint as recorded and shown: no credentials
        self.base_url = redact_url(url)
        self.endpoint = self.base_url or OPENAI_API
        self.temperature, self.max_tokens = temperature, max_tokens
        self.timeout, self.max_retries, self.backoff = float(timeout), int(max_retries), backoff
        self.cache = cache if cache is not None else ResponseCache(None)
        self.usage = usage if usage is not None else Usage()
        request_url, basic_auth = _split_credentials(url)
        # The URL given to the client has no user:password@ (the HTTP library logs the URLs it
        # requests); the pair is sent as basic authentication, as it would be from the URL.
        try:
            http_client = openai.DefaultHttpxClient(auth=basic_auth, timeout=self.timeout,
                                                    event_hooks={"response": [_text_charset]})
            self._client = openai.OpenAI(api_key=key or "not-needed", base_url=request_url, timeout=self.timeout,
                                         max_retries=0, http_client=http_client)
        except Exception as exc:
            # A URL the checks above let through and the HTTP library still refuses: its InvalidURL
            # (matched by name: the library is httpx or a renamed copy, by the client's version).
            # The URL given to the client holds no credentials, so its message may be shown.
            if url is None or type(exc).__name__ != "InvalidURL":
                raise
            raise _bad_url(url, f"the HTTP client refuses it ({str(exc)[:EXCERPT]})") from None
        self._retryable = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                           openai.InternalServerError)
        self._openai = openai

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "base_url": self.base_url,
                "temperature": self.temperature}

    def propose(self, messages: list[dict[str, str]], n: int, seed: int, grammar=None) -> list[str]:
        texts = []
        for i in range(n):
            # The endpoint without credentials: a new password keeps the cached answers.
            key = cache_key(backend=self.name, model=self.model, base_url=self.base_url, messages=messages,
                            temperature=self.temperature, max_tokens=self.max_tokens, seed=seed, index=i)
            texts.append(self._answer(key, str, 1, lambda i=i: self._call(messages, seed + i)))
        return texts

    def _call(self, messages: list[dict[str, str]], seed: int) -> str:
        """One answer's text; LLMError (naming the endpoint) when there is none."""
        openai = self._openai
        start = time.perf_counter()

        def request() -> tuple[int, bytes, str | None]:
            # Streamed, so that the attempt has a deadline as a whole: the HTTP client's timeout
            # bounds each wait for the next bytes, and an endpoint that sends a byte now and then
            # (or an endless body) would otherwise hold the fit for ever.
            attempt_start = time.perf_counter()
            with self._client.chat.completions.with_streaming_response.create(
                    model=self.model, messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                    seed=seed) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise LLMError(f"answered more than {MAX_ANSWER_BYTES} bytes: not a completion")
                    if time.perf_counter() - attempt_start > self.timeout:
                        raise openai.APITimeoutError(request=response.http_request)
                return response.status_code, bytes(body), response.http_response.encoding
        try:
            status, data, encoding = with_retries(request, self._retryable, self.usage, self.max_retries,
                                                  self.backoff)
        except LLMError as exc:
            raise LLMError(exc.detail, self.endpoint) from None
        except UnicodeEncodeError:  # the request's own text, not the endpoint's answer
            raise
        except UnicodeError as exc:
            # The client reads an error status's body as text to make its error; a body its charset
            # cannot decode (``undefined``; ``utf-32`` without its byte order mark) fails there.
            self.usage.failures += 1
            raise LLMError(f"answered an error with an unreadable body: {type(exc).__name__}: {excerpt(exc)}",
                           self.endpoint) from None
        except openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
            self.usage.failures += 1
            body = exc.response.text if exc.response is not None else exc.body
            raise LLMError(f"refused the request: HTTP {exc.status_code}: {excerpt(body)}", self.endpoint) from None
        except openai.OpenAIError as exc:  # anything else the client could not make sense of
            self.usage.failures += 1
            raise LLMError(f"{type(exc).__name__}: {excerpt(exc)}", self.endpoint) from None
        try:
            body = data.decode(encoding or "utf-8")
        except (LookupError, UnicodeError) as exc:  # no such codec, or bytes the codec refuses
            # UnicodeError, not only UnicodeDecodeError: some codecs a Content-Type may name
            # (``undefined``, ``punycode``) raise the parent class.
            self.usage.failures += 1
            raise LLMError(f"answered HTTP {status} with an unreadable body: {type(exc).__name__}",
                           self.endpoint) from None
        try:
            content, prompt_tokens, completion_tokens = read_completion(body, status, self.endpoint)
        except LLMError:
            # Not retried: the endpoint did answer (a retry may be billed again), and a body that is
            # no completion comes from a wrong URL or a proxy's page far more often than from chance.
            self.usage.failures += 1
            raise
        self.usage.record(prompt_tokens, completion_tokens, time.perf_counter() - start)
        return content
