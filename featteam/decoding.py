"""Decoding over expression tokens: beam search and sampling, shared by every decoder.

A next-token source (the ML decoder, the student LLM, or a mixture of them)
implements :class:`NextTokenSource`; :func:`beam_search` and :func:`sample` run any
of them, batched - one ``step`` call per decoding step for all rows - and masked by
the grammar automaton or unmasked.  Step 4 (teaming) combines sources token by token
through :class:`MixtureSource` without touching the search itself.

:func:`sample` is the one sampling loop: what is allowed at each step comes from a
:class:`Constraint` (the grammar over expression tokens, or the local teacher's
subword trie over an LLM's own vocabulary), and how a token is drawn from a
``draw`` function, so every sampler runs the same loop with its own random source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Protocol, Sequence, TypeVar

import numpy as np

from .config import DEFAULT_TEAMING_RULE, TeamingRule
from .expr import Grammar, GrammarState

S = TypeVar("S")


class NextTokenSource(Protocol):
    """What a decoder must offer: log-probabilities over the expression vocabulary."""

    def start(self, n_inputs: int, beam: int) -> Any:
        """Opaque state for ``n_inputs * beam`` rows (input i owns rows i*beam .. i*beam+beam-1)."""

    def step(self, state: Any, last_tokens: np.ndarray) -> tuple[np.ndarray, Any]:
        """Log-probabilities (rows x vocab) of the next token given the previous tokens' ids."""

    def reorder(self, state: Any, rows: np.ndarray) -> Any:
        """The state with its rows picked (and repeated) by ``rows``."""


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class MixtureSource:
    """Combine sources' next-token distributions over the same vocabulary.

    Parameters
    ----------
    sources : sequence of NextTokenSource
    weights : sequence of float
        Mixture weights (normalised).
    rule : {"product", "linear"}
        ``product`` (the default, :data:`featteam.config.DEFAULT_TEAMING_RULE`): the
        renormalised weighted geometric mean, log-linear pooling; ``linear``:
        log(sum_k w_k p_k).
    """

    def __init__(self, sources: Sequence[NextTokenSource], weights: Sequence[float],
                 rule: TeamingRule = DEFAULT_TEAMING_RULE) -> None:
        if rule not in ("linear", "product"):
            raise ValueError("rule must be 'linear' or 'product'")
        weights = np.asarray(weights, dtype=float)
        if weights.min() < 0 or weights.sum() <= 0:
            raise ValueError("mixture weights must be non-negative with a positive sum")
        keep = weights > 0
        self.sources = [s for s, k in zip(sources, keep) if k]
        self.weights = weights[keep] / weights[keep].sum()
        self.rule = rule

    def start(self, n_inputs: int, beam: int) -> list:
        return [s.start(n_inputs, beam) for s in self.sources]

    def step(self, state: list, last_tokens: np.ndarray) -> tuple[np.ndarray, list]:
        logps, states = [], []
        for source, sub in zip(self.sources, state):
            logp, sub = source.step(sub, last_tokens)
            logps.append(logp)
            states.append(sub)
        stacked = np.stack(logps)  # sources x rows x vocab
        log_w = np.log(self.weights)[:, None, None]
        if self.rule == "linear":
            combined = np.logaddexp.reduce(stacked + log_w, axis=0)
        else:
            combined = _log_softmax((stacked * self.weights[:, None, None]).sum(axis=0))
        return combined, states

    def reorder(self, state: list, rows: np.ndarray) -> list:
        return [s.reorder(sub, rows) for s, sub in zip(self.sources, state)]


def _repeats_a_feature(token_ids: list[int], sep: int) -> bool:
    """Whether the feature being written equals an earlier one of the sequence."""
    if sep not in token_ids:
        return False
    cut = len(token_ids) - 1 - token_ids[::-1].index(sep)
    current = token_ids[cut + 1:]
    start, earlier = 0, []
    for i, t in enumerate(token_ids[: cut + 1]):
        if t == sep:
            earlier.append(token_ids[start:i])
            start = i + 1
    return current in earlier


@dataclass
class Beam:
    token_ids: list[int]
    log_prob: float
    finished: bool


def beam_search(source: NextTokenSource, n_inputs: int, grammar: Grammar, beam: int = 5, masked: bool = True,
                max_steps: int | None = None) -> list[list[Beam]]:
    """Decode ``n_inputs`` inputs with ``beam`` beams each; returns each input's beams, best first.

    With ``masked`` every step keeps only tokens the grammar allows, and a feature
    may not be closed (by a separator or the end) while it repeats an earlier
    feature of the same sequence, so every finished beam is structurally valid.  Unmasked, the
    source decodes freely; a beam that never emits the end token stops after
    ``max_steps`` (default: the grammar's ``max_length + 1``) unfinished.
    """
    vocab = grammar.vocab
    eos, sep = vocab.eos_id, vocab.sep_id
    max_steps = max_steps or grammar.max_length + 1
    rows = n_inputs * beam
    state = source.start(n_inputs, beam)
    last = np.full(rows, vocab.sos_id, dtype=np.int64)
    scores = np.zeros(rows)
    scores[np.arange(rows) % beam != 0] = -np.inf  # at first only one beam per input is live
    tokens: list[list[int]] = [[] for _ in range(rows)]
    finished = np.zeros(rows, dtype=bool)
    gstates: list[GrammarState] = [grammar.initial_state() for _ in range(rows)]
    for _ in range(max_steps):
        logp, state = source.step(state, last)
        logp = np.where(np.isfinite(logp), logp, -1e30)
        if masked:
            mask = np.stack([grammar.allowed(g) for g in gstates])
            for r in range(rows):
                if (mask[r, eos] or mask[r, sep]) and _repeats_a_feature(tokens[r], sep):
                    mask[r, eos] = mask[r, sep] = False
            logp = np.where(mask, logp, -np.inf)
        # A finished beam carries its score forward with a single <eos> continuation.
        logp[finished] = -np.inf
        logp[finished, eos] = 0.0
        total = (scores[:, None] + logp).reshape(n_inputs, beam * len(vocab))
        order = np.argsort(-total, axis=1, kind="stable")[:, :beam]
        picked = np.take_along_axis(total, order, axis=1)
        parent = (order // len(vocab)) + (np.arange(n_inputs) * beam)[:, None]
        token = order % len(vocab)
        parent, token, picked = parent.ravel(), token.ravel(), picked.ravel()
        new_tokens, new_g, new_finished = [], [], np.zeros(rows, dtype=bool)
        for r in range(rows):
            p, t = int(parent[r]), int(token[r])
            if finished[p]:
                new_tokens.append(tokens[p])
                new_g.append(gstates[p])
                new_finished[r] = True
                continue
            new_tokens.append(tokens[p] + [t])
            new_finished[r] = t == eos
            new_g.append(grammar.step(gstates[p], t) if masked and np.isfinite(picked[r]) else gstates[p])
        state = source.reorder(state, parent)
        tokens, gstates, finished, scores, last = new_tokens, new_g, new_finished, picked, token.astype(np.int64)
        if finished[np.isfinite(scores)].all():
            break
    out = []
    for i in range(n_inputs):
        beams = [Beam(tokens[r], float(scores[r]), bool(finished[r])) for r in range(i * beam, (i + 1) * beam)
                 if np.isfinite(scores[r])]
        beams.sort(key=lambda b: (not b.finished, -b.log_prob))
        out.append(beams)
    return out


# -- sampling -------------------------------------------------------------------------


class Constraint(Protocol, Generic[S]):
    """What may come next in a sampled row, and when the row is done."""

    def initial(self) -> S:
        """The state of an empty row."""

    def mask(self, states: Sequence[S]) -> np.ndarray | None:
        """Allowed next tokens (rows x vocabulary, boolean), or None: anything goes."""

    def advance(self, state: S, token: int) -> S:
        """The state after ``token``."""

    def finished(self, state: S) -> bool:
        """Whether the row is complete."""


class GrammarConstraint:
    """Expression tokens under the grammar automaton (masked), or free (unmasked): a row
    ends with the end token either way."""

    def __init__(self, grammar: Grammar, masked: bool = True) -> None:
        self.grammar = grammar
        self.masked = masked

    def initial(self) -> GrammarState:
        return self.grammar.initial_state()

    def mask(self, states: Sequence[GrammarState]) -> np.ndarray | None:
        if not self.masked:
            return None
        return np.stack([self.grammar.allowed(g) for g in states])

    def advance(self, state: GrammarState, token: int) -> GrammarState:
        if token == self.grammar.vocab.eos_id:
            return state._replace(finished=True)
        return self.grammar.step(state, token) if self.masked else state

    def finished(self, state: GrammarState) -> bool:
        return state.finished


#: ``draw(scores, mask, done) -> tokens``: one token per row from the rows' scores (log-probabilities
#: up to a constant), restricted to ``mask`` where given; rows already ``done`` get a filler token.
Draw = Callable[[np.ndarray, "np.ndarray | None", np.ndarray], np.ndarray]


def numpy_draw(rng: np.random.Generator, temperature: float = 1.0) -> Draw:
    """A ``draw`` from numpy's generator: softmax of scores / temperature within the mask."""

    def draw(scores: np.ndarray, mask: np.ndarray | None, done: np.ndarray) -> np.ndarray:
        picks = np.zeros(len(scores), dtype=np.int64)
        for r in np.flatnonzero(~done):
            logits = np.asarray(scores[r], dtype=np.float64) / max(temperature, 1e-5)
            if mask is not None:
                logits = np.where(mask[r], logits, -np.inf)
            p = np.exp(logits - logits.max())
            picks[r] = int(rng.choice(len(p), p=p / p.sum()))
        return picks

    return draw


@dataclass
class Sampled:
    """One sampled row: its tokens (the end token included if reached), whether it ended, and
    the constraint's state after it."""

    tokens: list[int]
    finished: bool
    state: Any = None


def sample(source: NextTokenSource, n: int, constraint: Constraint, draw: Draw, start_token: int,
           max_steps: int) -> list[Sampled]:
    """Draw ``n`` rows from ``source`` under ``constraint``, one batched step at a time.

    Parameters
    ----------
    source : NextTokenSource
        Scores over the vocabulary for all rows at once.
    n : int
        Rows to sample.
    constraint : Constraint
        What may come next, and when a row is complete.
    draw : callable
        Picks a token per row (:data:`Draw`); it owns the random source and the temperature.
    start_token : int
        The id fed to the source before the first token.
    max_steps : int
        A row not finished after this many tokens is returned unfinished.
    """
    state = source.start(n, 1)
    states = [constraint.initial() for _ in range(n)]
    last = np.full(n, start_token, dtype=np.int64)
    out: list[list[int]] = [[] for _ in range(n)]
    done = np.zeros(n, dtype=bool)
    for _ in range(max_steps):
        scores, state = source.step(state, last)
        picks = np.asarray(draw(scores, constraint.mask(states), done), dtype=np.int64)
        for r in np.flatnonzero(~done):
            token = int(picks[r])
            out[r].append(token)
            states[r] = constraint.advance(states[r], token)
            done[r] = constraint.finished(states[r])
        last = picks
        if done.all():
            break
    return [Sampled(tokens, bool(finished), s) for tokens, finished, s in zip(out, done, states)]


class UniformSource:
    """Every token equally likely (or by fixed ``weights``): random sequences under a constraint."""

    def __init__(self, n_tokens: int, weights: np.ndarray | None = None) -> None:
        weights = np.ones(n_tokens) if weights is None else np.asarray(weights, dtype=float)
        with np.errstate(divide="ignore"):
            self.log_weights = np.log(weights)

    def start(self, n_inputs: int, beam: int) -> int:
        return n_inputs * beam

    def step(self, state: int, last_tokens: np.ndarray) -> tuple[np.ndarray, int]:
        return np.tile(self.log_weights, (state, 1)), state

    def reorder(self, state: int, rows: np.ndarray) -> int:
        return len(rows)


def random_sequences(grammar: Grammar, n: int, rng: np.random.Generator, eos_bias: float = 1.0) -> list[list[str]]:
    """``n`` structurally valid sequences drawn uniformly among the allowed tokens at each step;
    ``eos_bias`` scales the weight of closing tokens (longer or shorter sequences)."""
    vocab = grammar.vocab
    weights = np.ones(len(vocab))
    weights[[vocab.eos_id, vocab.sep_id]] *= eos_bias
    rows = sample(UniformSource(len(vocab), weights), n, GrammarConstraint(grammar), numpy_draw(rng),
                  vocab.sos_id, grammar.max_length + 1)
    return [vocab.decode(row.tokens) for row in rows]
