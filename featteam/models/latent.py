"""Step 2 of the method: encoder-evaluator-decoder and gradient search in its latent space.

A bidirectional GRU encodes a sequence into an embedding z; a two-layer MLP
predicts the (min-max normalised) score from z; an LSTM decoder, whose
initial state and every input carry z, reconstructs the sequence.  Loss:
``score_weight * MSE + (1 - score_weight) * cross-entropy`` (MOAT: 0.05 / 0.95).
Searching moves the embeddings of the best golden examples along the
evaluator's gradient; :class:`LatentDecoderSource` decodes them through the
shared beam search (:mod:`featteam.decoding`).

Randomness (initial weights, shuffling) comes from the configuration's seed, drawn
inside :func:`seeded` so that torch's global generator is left as it was found.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..expr import Vocabulary, join_features, split_features
from ..llm.torch_utils import torch_threads
from ..records import from_dict, to_json_value
from ..report import LatentMetrics

logger = logging.getLogger(__name__)


@contextmanager
def seeded(seed: int):
    """torch's global generator seeded for a block, and restored after it (no global state leaks)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def single_threaded():
    """torch on one thread for a block, whatever the fit's ``torch_threads``.

    The encoder-evaluator-decoder is small: more threads only wait on each other (4 epochs took
    48 s on two threads against 0.4 s on one while another process used a core), and threads that
    sum a gradient in parts sum it in an order that depends on the load (weights that differed in
    the 7th digit between two identical runs).  On one thread its training and search give the
    same numbers on any machine under any load, and as fast as it can."""
    return torch_threads(1)


@dataclass
class SearchPoint:
    """An embedding found by the gradient search, and where it came from."""

    seed: list[str]          # the golden example it started from
    seed_index: int
    step_size: float
    z: np.ndarray
    predicted_seed: float    # the evaluator's prediction at the seed
    predicted: float = float("nan")  # ... and at the point


@dataclass
class LatentConfig:
    """Sizes and training settings (defaults as MOAT where it says)."""

    embedding_dim: int = 64
    hidden_dim: int = 64
    latent_dim: int = 64
    evaluator_hidden: int = 200
    score_weight: float = 0.05
    lr: float = 1e-3
    clip: float = 5.0
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 15
    permutations: int = 10
    validation_fraction: float = 0.15
    #: a safety stop only: the budget is ``max_epochs`` (and early stopping), so that a seed gives
    #: the same model however loaded the machine is; a fit this limit stops says so
    max_seconds: float = 3600.0
    attention: bool = True
    seed: int = 0


class EncoderEvaluatorDecoder(nn.Module):
    """The three networks of step 2 over one vocabulary."""

    def __init__(self, vocab_size: int, config: LatentConfig) -> None:
        super().__init__()
        c = config
        self.embedding = nn.Embedding(vocab_size, c.embedding_dim, padding_idx=0)
        self.encoder = nn.GRU(c.embedding_dim, c.hidden_dim, batch_first=True, bidirectional=True)
        self.to_latent = nn.Linear(4 * c.hidden_dim, c.latent_dim)  # mean and last states of both directions
        self.evaluator = nn.Sequential(nn.Linear(c.latent_dim, c.evaluator_hidden), nn.ReLU(),
                                       nn.Linear(c.evaluator_hidden, c.evaluator_hidden), nn.ReLU(),
                                       nn.Linear(c.evaluator_hidden, 1))
        self.init_h = nn.Linear(c.latent_dim, c.hidden_dim)
        self.init_c = nn.Linear(c.latent_dim, c.hidden_dim)
        self.decoder = nn.LSTM(c.embedding_dim + c.latent_dim, c.hidden_dim, batch_first=True)
        self.attention = c.attention
        # Built before the classifier, as always, so the classifier's initial weights do not move.
        self.attend = nn.Linear(c.hidden_dim, 2 * c.hidden_dim, bias=False) if c.attention else None
        context = 2 * c.hidden_dim if c.attention else 0
        self.classifier = nn.Linear(c.hidden_dim + c.latent_dim + context, vocab_size)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encode_with_memory(ids, lengths)[0]

    def encode_with_memory(self, ids: torch.Tensor, lengths: torch.Tensor):
        """(z, memory, memory mask): the embedding and the encoder states the decoder attends to."""
        embedded = self.embedding(ids)
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, last = self.encoder(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, total_length=ids.shape[1])
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).float().unsqueeze(-1)
        mean = (outputs * mask).sum(1) / lengths[:, None].float()
        z = self.to_latent(torch.cat([mean, last[0], last[1]], dim=-1))
        return z, outputs, mask.squeeze(-1) > 0

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return self.evaluator(z).squeeze(-1)

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(self.init_h(z)).unsqueeze(0), torch.tanh(self.init_c(z)).unsqueeze(0)

    def decode_step(self, z: torch.Tensor, inputs: torch.Tensor, state, memory=None,
                    memory_mask=None) -> tuple[torch.Tensor, Any]:
        """Logits for the next tokens after ``inputs`` (batch x time) given z (and the
        encoder states of the sequence being reconstructed, or of a search's seed)."""
        embedded = self.embedding(inputs)
        z_t = z.unsqueeze(1).expand(-1, inputs.shape[1], -1)
        output, state = self.decoder(torch.cat([embedded, z_t], dim=-1), state)
        parts = [output, z_t]
        if self.attention:
            weights = torch.einsum("btd,bsd->bts", self.attend(output), memory)
            weights = weights.masked_fill(~memory_mask[:, None, :], float("-inf")).softmax(-1)
            parts.append(torch.einsum("bts,bsd->btd", weights, memory))
        return self.classifier(torch.cat(parts, dim=-1)), state


def permuted(tokens: Sequence[str], rng: np.random.Generator, n: int) -> list[list[str]]:
    """Up to ``n`` distinct orders of the sequence's features (the order carries no meaning)."""
    features = split_features(tokens)
    out, seen = [list(tokens)], {tuple(tokens)}
    for _ in range(4 * n):
        if len(out) >= n:
            break
        order = rng.permutation(len(features))
        candidate = join_features([features[i] for i in order])
        if tuple(candidate) not in seen:
            seen.add(tuple(candidate))
            out.append(candidate)
    return out


class LatentModel:
    """Train, save, load, search and decode the encoder-evaluator-decoder.

    Parameters
    ----------
    vocab : Vocabulary
    config : LatentConfig
    """

    def __init__(self, vocab: Vocabulary, config: LatentConfig | None = None) -> None:
        self.vocab = vocab
        self.config = config or LatentConfig()
        with seeded(self.config.seed):
            self.net = EncoderEvaluatorDecoder(len(vocab), self.config)
        self.score_min, self.score_max = 0.0, 1.0
        self.history: list[dict[str, float]] = []
        self.metrics: LatentMetrics | None = None

    # -- tensors -------------------------------------------------------------------

    def _batch(self, sequences: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder ids, lengths, and decoder targets (tokens + <eos>), padded with 0."""
        ids = [self.vocab.encode(list(s)) for s in sequences]
        width = max(len(s) for s in ids) + 1
        enc = torch.zeros(len(ids), width, dtype=torch.long)
        target = torch.zeros(len(ids), width, dtype=torch.long)
        for i, s in enumerate(ids):
            enc[i, : len(s)] = torch.tensor(s)
            target[i, : len(s) + 1] = torch.tensor(s + [self.vocab.eos_id])
        lengths = torch.tensor([len(s) for s in ids])
        return enc, lengths, target

    def _decoder_inputs(self, target: torch.Tensor) -> torch.Tensor:
        sos = torch.full((target.shape[0], 1), self.vocab.sos_id, dtype=torch.long)
        return torch.cat([sos, target[:, :-1]], dim=1)

    def _normalise(self, scores: np.ndarray) -> np.ndarray:
        span = self.score_max - self.score_min
        return (scores - self.score_min) / (span if span > 0 else 1.0)

    def _losses(self, enc, lengths, target, scores):
        z, memory, memory_mask = self.net.encode_with_memory(enc, lengths)
        logits, _ = self.net.decode_step(z, self._decoder_inputs(target), self.net.initial_state(z), memory,
                                         memory_mask)
        ce = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=0)
        mse = nn.functional.mse_loss(self.net.predict(z), scores)
        return ce, mse, logits, z

    # -- training -----------------------------------------------------------------

    def fit(self, sequences: Sequence[Sequence[str]], scores: Sequence[float], progress: bool = False) -> "LatentModel":
        """Train on golden examples; a validation part (by example) drives early stopping."""
        with seeded(self.config.seed), single_threaded():
            return self._fit(sequences, scores, progress)

    def _fit(self, sequences: Sequence[Sequence[str]], scores: Sequence[float], progress: bool) -> "LatentModel":
        from scipy.stats import spearmanr
        from tqdm.auto import tqdm

        c = self.config
        rng = np.random.default_rng(c.seed)
        scores = np.asarray(scores, dtype=float)
        n = len(sequences)
        if n < 10:
            raise ValueError(f"the latent model needs at least 10 golden examples, got {n}")
        order = rng.permutation(n)
        n_val = max(2, int(round(c.validation_fraction * n)))
        val_idx, train_idx = order[:n_val], order[n_val:]
        self.score_min, self.score_max = float(scores[train_idx].min()), float(scores[train_idx].max())
        train_seqs, train_scores = [], []
        for i in train_idx:
            for p in permuted(sequences[i], rng, c.permutations):
                train_seqs.append(p)
                train_scores.append(scores[i])
        val_seqs = [list(sequences[i]) for i in val_idx]
        val_enc, val_len, val_target = self._batch(val_seqs)
        val_scores = torch.tensor(self._normalise(scores[val_idx]), dtype=torch.float32)
        train_scores_n = self._normalise(np.asarray(train_scores))
        optimizer = torch.optim.Adam(self.net.parameters(), lr=c.lr)
        best, best_state, stale = float("inf"), None, 0
        stopped_by = "epochs"
        start = time.perf_counter()
        bar = tqdm(range(c.max_epochs), desc="latent model", disable=not progress, leave=False)
        for epoch in bar:
            self.net.train()
            perm = rng.permutation(len(train_seqs))
            total = 0.0
            for b in range(0, len(perm), c.batch_size):
                idx = perm[b: b + c.batch_size]
                enc, lengths, target = self._batch([train_seqs[i] for i in idx])
                ce, mse, _, _ = self._losses(enc, lengths, target,
                                             torch.tensor(train_scores_n[idx], dtype=torch.float32))
                loss = (1 - c.score_weight) * ce + c.score_weight * mse
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), c.clip)
                optimizer.step()
                total += loss.item() * len(idx)
            self.net.eval()
            with torch.no_grad():
                ce, mse, _, _ = self._losses(val_enc, val_len, val_target, val_scores)
                val_loss = float((1 - c.score_weight) * ce + c.score_weight * mse)
            self.history.append({"epoch": epoch, "train_loss": total / len(perm), "val_loss": val_loss,
                                 "val_ce": float(ce), "val_mse": float(mse)})
            bar.set_postfix(val_loss=f"{val_loss:.3f}")
            if val_loss < best - 1e-4:
                best, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            else:
                stale += 1
            if stale >= c.patience:
                stopped_by = "early stopping"
                break
            # Only a stop before the budget's last epoch changes the model (a reproducible run that
            # crossed the limit in its last epoch was marked not reproducible).
            if epoch + 1 < c.max_epochs and time.perf_counter() - start > c.max_seconds:
                stopped_by = "time limit"
                logger.warning("the latent model's training hit its %g s safety stop after %d epochs: this run "
                               "is not reproducible", c.max_seconds, epoch + 1)
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()
        with torch.no_grad():
            _, _, logits, z = self._losses(val_enc, val_len, val_target, val_scores)
            predicted = self.net.predict(z).numpy()
        mask = val_target != 0
        token_accuracy = float((logits.argmax(-1)[mask] == val_target[mask]).float().mean())
        decoded = self.reconstruct(val_seqs)
        exact = float(np.mean([d == list(s) for d, s in zip(decoded, val_seqs)]))
        rho = spearmanr(predicted, val_scores.numpy())[0] if len(val_seqs) > 2 else float("nan")
        self.metrics = LatentMetrics(
            train_examples=len(train_idx), validation_examples=len(val_idx), training_sequences=len(train_seqs),
            epochs=len(self.history), train_seconds=round(time.perf_counter() - start, 2),
            validation_token_accuracy=token_accuracy, validation_exact_reconstruction=exact,
            validation_evaluator_spearman=float(rho) if np.isfinite(rho) else None, best_validation_loss=best,
            stopped_by=stopped_by, time_limited=stopped_by == "time limit")
        return self

    # -- embeddings and search -------------------------------------------------------

    def embed(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            enc, lengths, _ = self._batch(sequences)
            return self.net.encode(enc, lengths).numpy()

    def memory(self, sequences: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states (and their mask) of sequences, for the decoder's attention."""
        with torch.no_grad():
            enc, lengths, _ = self._batch(sequences)
            _, memory, mask = self.net.encode_with_memory(enc, lengths)
        return memory, mask

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Predicted scores (back on the original scale)."""
        with torch.no_grad():
            normalised = self.net.predict(torch.tensor(z, dtype=torch.float32)).numpy()
        return normalised * (self.score_max - self.score_min) + self.score_min

    def search(self, seeds: Sequence[Sequence[str]], step_sizes: Sequence[float] = (1, 2, 3, 4, 5),
               step_scale: float | None = None, min_distance: float = 1e-3) -> list[SearchPoint]:
        """Move each seed's embedding along the evaluator's gradient: z' = z + eta * alpha * g / |g|.

        ``alpha`` (``step_scale``) defaults to a tenth of the median embedding norm, so
        that the step sizes 1..5 of the literature mean moves of 10%..50% of a typical
        embedding whatever the gradient's raw magnitude.  Points closer than
        ``min_distance * alpha`` to an earlier one are dropped.
        """
        with single_threaded():
            return self._search(seeds, step_sizes, step_scale, min_distance)

    def _search(self, seeds: Sequence[Sequence[str]], step_sizes: Sequence[float], step_scale: float | None,
                min_distance: float) -> list[SearchPoint]:
        z = torch.tensor(self.embed(seeds), dtype=torch.float32, requires_grad=True)
        predicted = self.net.predict(z)
        (gradient,) = torch.autograd.grad(predicted.sum(), z)
        z0, g = z.detach().numpy(), gradient.numpy()
        alpha = step_scale if step_scale is not None else 0.1 * float(np.median(np.linalg.norm(z0, axis=1)))
        direction = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        base = self.predict(z0)
        points: list[SearchPoint] = []
        kept: list[np.ndarray] = []
        for i, seed in enumerate(seeds):
            for eta in step_sizes:
                moved = z0[i] + eta * alpha * direction[i]
                if any(np.linalg.norm(moved - k) < min_distance * alpha for k in kept):
                    continue
                kept.append(moved)
                points.append(SearchPoint(list(seed), i, float(eta), moved, float(base[i])))
        if points:
            predicted_new = self.predict(np.stack([p.z for p in points]))
            for p, value in zip(points, predicted_new):
                p.predicted = float(value)
        return points

    def source(self, points: Sequence[SearchPoint]) -> "LatentDecoderSource":
        """The ML decoder at searched points (attending to each point's seed)."""
        return LatentDecoderSource(self, np.stack([p.z for p in points]), [p.seed for p in points])

    def reconstruct(self, sequences: Sequence[Sequence[str]]) -> list[list[str]]:
        """Greedy unmasked decoding of each sequence's own embedding."""
        from ..decoding import beam_search
        from ..expr import Grammar

        grammar = Grammar(self.vocab, max_length=max(len(s) for s in sequences) + 2, max_features=64,
                          max_feature_length=64)
        beams = beam_search(LatentDecoderSource(self, self.embed(sequences), sequences), len(sequences), grammar,
                            beam=1, masked=False)
        return [self.vocab.decode(b[0].token_ids) for b in beams]

    # -- persistence --------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(directory / "latent.safetensors"))
        (directory / "latent.json").write_text(json.dumps({
            "schema_version": 1, "n_features": self.vocab.n_features, "config": asdict(self.config),
            "score_min": self.score_min, "score_max": self.score_max, "metrics": to_json_value(self.metrics),
            "history": self.history}, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "LatentModel":
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / "latent.json").read_text())
        model = cls(Vocabulary(meta["n_features"]), LatentConfig(**meta["config"]))
        model.net.load_state_dict(load_file(str(directory / "latent.safetensors")))
        model.net.eval()
        model.score_min, model.score_max = meta["score_min"], meta["score_max"]
        model.metrics = from_dict(LatentMetrics, meta["metrics"]) if meta.get("metrics") else None
        model.history = meta.get("history", [])
        return model


class LatentDecoderSource:
    """The ML decoder as a :class:`~featteam.decoding.NextTokenSource`.

    Conditioned on embeddings ``z`` and, for attention, on the encoder states of
    ``memory_sequences`` (the sequence itself when reconstructing, the seed when
    decoding a searched point).
    """

    def __init__(self, model: LatentModel, z: np.ndarray, memory_sequences: Sequence[Sequence[str]]) -> None:
        self.model = model
        self.z = torch.tensor(np.asarray(z), dtype=torch.float32)
        self.memory, self.memory_mask = model.memory(memory_sequences)

    def start(self, n_inputs: int, beam: int):
        z = self.z.repeat_interleave(beam, dim=0)
        return (z, self.model.net.initial_state(z), self.memory.repeat_interleave(beam, dim=0),
                self.memory_mask.repeat_interleave(beam, dim=0))

    def step(self, state, last_tokens: np.ndarray):
        z, hidden, memory, mask = state
        with torch.no_grad():
            logits, hidden = self.model.net.decode_step(z, torch.tensor(last_tokens).unsqueeze(1), hidden,
                                                        memory, mask)
            logp = torch.log_softmax(logits[:, -1, :], dim=-1).numpy()
        return logp.astype(np.float64), (z, hidden, memory, mask)

    def reorder(self, state, rows: np.ndarray):
        z, (h, c), memory, mask = state
        index = torch.tensor(rows, dtype=torch.long)
        return z[index], (h[:, index], c[:, index]), memory[index], mask[index]
