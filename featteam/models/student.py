"""Step 3 of the method: the student LLM, distilled from the teacher's golden examples.

Vocabulary alignment: the student gets one new token per expression token - a
trainable input embedding and a row of a trainable output head over the LM's
last hidden state - so its next-token distribution over the expression
vocabulary is exact and costs one small matrix product.  Both are initialised
from the base model's embeddings of the token's text (`` sqrt``, `` f3``), so the
untrained student already means something.  The base LM is adapted with LoRA
(peft) by default, or fully fine-tuned.

Each expression token's input also carries the stack depth after it (a learned
embedding, zero at first): the student sees the structure it writes, as a
transformer sees positions, and learns postfix arity far faster.  This is input,
not a mask: unmasked sampling is still free to write invalid sequences.

Examples are weighted by the rank of their score (weights 0.5 to 1.5), so the
student learns the language from every golden example and leans to the good ones.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..decoding import Draw, GrammarConstraint, Sampled, sample
from ..expr import Grammar, Vocabulary, next_depth, token_text
from ..llm.local import DEFAULT_MODEL, load_causal_lm
from ..llm.torch_utils import cache_keyword, output_cache, quiet_transformers, repeat_cache
from ..records import from_dict, to_json_value
from ..report import FinetuneMetrics
from .latent import seeded

logger = logging.getLogger(__name__)

#: Deepest stack the depth embedding distinguishes (deeper is clamped).
MAX_DEPTH = 16


@dataclass
class StudentConfig:
    base_model: str = DEFAULT_MODEL
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lr: float = 3e-3
    batch_size: int = 8
    max_epochs: int = 4
    #: most optimizer steps (None: the epochs decide)
    max_steps: int | None = None
    #: a safety stop only (the budget is epochs and steps); a fine-tuning it stops says so
    max_seconds: float = 3600.0
    temperature: float = 0.7
    weighting: str = "rank"  # rank | none
    seed: int = 0


def student_prompt(task: str, target: str, n_features: int) -> str:
    """The student's short prompt: its cost is paid on every training token."""
    return (f"Write a feature transformation for {task} of {target!r} from columns f0..f{n_features - 1}, "
            f"in postfix:")


def torch_draw(generator: torch.Generator, temperature: float) -> Draw:
    """A ``draw`` for :func:`featteam.decoding.sample` from a torch generator: one batched
    multinomial over every row (finished rows draw a filler from a flat distribution)."""

    def draw(scores: np.ndarray, mask: np.ndarray | None, done: np.ndarray) -> np.ndarray:
        logits = torch.tensor(scores) / max(temperature, 1e-5)
        if mask is not None:
            logits = logits.masked_fill(~torch.tensor(mask), float("-inf"))
        logits[torch.tensor(done)] = 0.0
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1).numpy()

    return draw


class Student:
    """A causal LM with an aligned expression vocabulary.

    Parameters
    ----------
    vocab : Vocabulary
    prompt : str
    config : StudentConfig
    """

    def __init__(self, vocab: Vocabulary, prompt: str, config: StudentConfig | None = None) -> None:
        self.vocab = vocab
        self.prompt = prompt
        self.config = config or StudentConfig()
        with seeded(self.config.seed):
            lm, self.tokenizer, self.model_dir = load_causal_lm(None if self.config.base_model == DEFAULT_MODEL
                                                                else self.config.base_model)
        self.base = lm
        self.lm = lm
        self.metrics: FinetuneMetrics | None = None
        self.loss_curve: list[float] = []
        embeddings = lm.get_input_embeddings().weight.detach()
        rows = []
        for token in vocab.tokens:
            ids = self.tokenizer.encode(token_text(token), add_special_tokens=False)
            rows.append(embeddings[ids].mean(0))
        init = torch.stack(rows)
        self.token_embeddings = nn.Parameter(init.clone())
        self.head = nn.Parameter(init.clone())  # the LM's output head is tied to its embeddings
        self.depth_embeddings = nn.Parameter(torch.zeros(MAX_DEPTH + 1, init.shape[1]))
        self._arity = torch.as_tensor(vocab.arity, dtype=torch.long)
        self.prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        self._prompt_cache = None
        # <pad> and <sos> are no expression a model may write: never predicted.
        self._never = torch.zeros(len(vocab), dtype=torch.bool)
        self._never[[vocab.pad_id, vocab.sos_id]] = True

    # -- the network --------------------------------------------------------------

    def _backbone(self):
        """The decoder stack that returns normalised hidden states (under LoRA if any)."""
        model = self.lm
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        return model.model

    def _hidden(self, embeds: torch.Tensor, attention_mask: torch.Tensor | None = None, cache=None):
        out = self._backbone()(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=cache is not None
                               or attention_mask is None, **({cache_keyword(): cache} if cache is not None else {}))
        return out.last_hidden_state, output_cache(out)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return (hidden @ self.head.T).masked_fill(self._never, float("-inf"))

    def _prompt_embeds(self) -> torch.Tensor:
        ids = torch.tensor(self.prompt_ids)
        return self.lm.get_input_embeddings()(ids)

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.lm.parameters() if p.requires_grad] + [self.token_embeddings, self.head,
                                                                        self.depth_embeddings]

    def next_depth(self, depth: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """Stack depth after each token (:func:`featteam.expr.next_depth`), clamped to the
        depths the embedding distinguishes."""
        separator = (token_ids == self.vocab.sep_id).long()
        return next_depth(depth, self._arity[token_ids], separator).clamp(0, MAX_DEPTH)

    def embed_tokens(self, token_ids: torch.Tensor, depth_after: torch.Tensor) -> torch.Tensor:
        return self.token_embeddings[token_ids] + self.depth_embeddings[depth_after]

    def _depths(self, token_ids: list[int]) -> torch.Tensor:
        depth, out = torch.zeros((), dtype=torch.long), []
        for t in token_ids:
            depth = self.next_depth(depth, torch.tensor(t))
            out.append(depth)
        return torch.stack(out) if out else torch.zeros(0, dtype=torch.long)

    # -- fine-tuning --------------------------------------------------------------

    def finetune(self, sequences: Sequence[Sequence[str]], scores: Sequence[float], progress: bool = False) -> "Student":
        """Fine-tune on golden (prompt -> sequence) pairs for ``max_epochs`` epochs (at most
        ``max_steps`` steps); ``max_seconds`` is a safety stop, reported in the metrics."""
        with seeded(self.config.seed):
            return self._finetune(sequences, scores, progress)

    def _finetune(self, sequences: Sequence[Sequence[str]], scores: Sequence[float], progress: bool) -> "Student":
        from tqdm.auto import tqdm

        c = self.config
        rng = np.random.default_rng(c.seed)
        if c.lora:
            from peft import LoraConfig, get_peft_model

            with quiet_transformers():
                self.lm = get_peft_model(self.base, LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha,
                                                               lora_dropout=0.0,
                                                               target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
        else:
            for p in self.lm.parameters():
                p.requires_grad_(True)
        self._prompt_cache = None
        scores = np.asarray(scores, dtype=float)
        if c.weighting == "rank":
            ranks = scores.argsort().argsort() / max(1, len(scores) - 1)
            weights = 0.5 + ranks
        else:
            weights = np.ones(len(scores))
        optimizer = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=0.0)
        self.lm.train()
        start = time.perf_counter()
        steps, n_tokens = 0, 0
        total_steps = c.max_epochs * int(np.ceil(len(sequences) / c.batch_size))
        if c.max_steps is not None:
            total_steps = min(total_steps, c.max_steps)
        bar = tqdm(total=total_steps, desc="student fine-tuning", disable=not progress, leave=False)
        stop = False
        for _ in range(c.max_epochs):
            order = rng.permutation(len(sequences))
            for b in range(0, len(order), c.batch_size):
                idx = order[b: b + c.batch_size]
                loss, tokens = self._batch_loss([sequences[i] for i in idx], torch.tensor(weights[idx]))
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.parameters(), 1.0)
                optimizer.step()
                self.loss_curve.append(loss.item())
                steps += 1
                n_tokens += tokens
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if steps >= total_steps:
                    break
                if time.perf_counter() - start > c.max_seconds:
                    stop = True
                    logger.warning("the student's fine-tuning hit its %.0f s safety stop after %d steps: this run "
                                   "is not reproducible", c.max_seconds, steps)
                    break
            if stop or steps >= total_steps:
                break
        bar.close()
        self.lm.eval()
        self._prompt_cache = None
        seconds = time.perf_counter() - start
        self.metrics = FinetuneMetrics(
            steps=steps, epochs_run=float(steps / max(1, np.ceil(len(sequences) / c.batch_size))),
            examples=len(sequences), seconds=round(seconds, 2), seconds_per_step=round(seconds / max(1, steps), 3),
            training_tokens_per_second=round(n_tokens / max(seconds, 1e-9), 1),
            first_loss=self.loss_curve[0] if self.loss_curve else None,
            last_loss=float(np.mean(self.loss_curve[-5:])) if self.loss_curve else None,
            time_limited=stop, weighting=c.weighting, lora=c.lora)
        return self

    def _batch_loss(self, sequences: Sequence[Sequence[str]], weights: torch.Tensor) -> tuple[torch.Tensor, int]:
        n_prompt = len(self.prompt_ids)
        targets = [self.vocab.encode(list(s)) + [self.vocab.eos_id] for s in sequences]
        width = max(len(t) for t in targets)
        prompt = self._prompt_embeds()
        embeds, mask, labels = [], [], torch.full((len(targets), width), -100, dtype=torch.long)
        for i, t in enumerate(targets):
            ids = torch.tensor(t[:-1], dtype=torch.long)
            inputs = self.embed_tokens(ids, self._depths(t[:-1])) if len(t) > 1 else torch.zeros(0, prompt.shape[1])
            pad = torch.zeros(width - len(t), prompt.shape[1])
            embeds.append(torch.cat([prompt, inputs, pad]))
            mask.append(torch.tensor([1] * (n_prompt + len(t) - 1) + [0] * (width - len(t))))
            labels[i, : len(t)] = torch.tensor(t)
        hidden, _ = self._hidden(torch.stack(embeds), torch.stack(mask))
        logits = self._logits(hidden[:, n_prompt - 1: n_prompt - 1 + width])
        per_token = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                ignore_index=-100, reduction="none").view(len(targets), width)
        valid = (labels != -100).float()
        per_example = (per_token * valid).sum(1) / valid.sum(1)
        loss = (per_example * weights.float()).sum() / weights.float().sum()
        return loss, int(sum(n_prompt + len(t) for t in targets))

    # -- generation ---------------------------------------------------------------

    def _prompt_state(self):
        """Last hidden state and KV cache of the prompt, computed once."""
        if self._prompt_cache is None:
            with torch.no_grad():
                hidden, cache = self._hidden(self._prompt_embeds().unsqueeze(0))
            self._prompt_cache = (hidden[:, -1], cache)
        return self._prompt_cache

    def source(self) -> "StudentSource":
        return StudentSource(self)

    def sample(self, n: int, grammar: Grammar, masked: bool = True, temperature: float | None = None,
               seed: int = 0) -> list[Sampled]:
        """``n`` sampled sequences (token ids, the end token included when reached), batched with
        a KV cache through :func:`featteam.decoding.sample`; ``temperature`` defaults to the config's."""
        temperature = self.config.temperature if temperature is None else temperature
        draw = torch_draw(torch.Generator().manual_seed(seed), temperature)
        return sample(self.source(), n, GrammarConstraint(grammar, masked), draw, self.vocab.sos_id,
                      grammar.max_length + 1)

    # -- persistence --------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.config.lora and hasattr(self.lm, "save_pretrained"):
            self.lm.save_pretrained(directory / "adapter")
        elif not self.config.lora:
            self.lm.save_pretrained(directory / "model")
        save_file({"token_embeddings": self.token_embeddings.detach().contiguous(),
                   "head": self.head.detach().contiguous(),
                   "depth_embeddings": self.depth_embeddings.detach().contiguous()},
                  str(directory / "expression_tokens.safetensors"))
        self.tokenizer.save_pretrained(directory / "tokenizer")
        (directory / "student.json").write_text(json.dumps({
            "schema_version": 1, "n_features": self.vocab.n_features, "prompt": self.prompt,
            "config": asdict(self.config), "metrics": to_json_value(self.metrics), "loss_curve": self.loss_curve},
            indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "Student":
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / "student.json").read_text())
        config = StudentConfig(**meta["config"])
        if not config.lora:
            config.base_model = str(directory / "model")
        student = cls(Vocabulary(meta["n_features"]), meta["prompt"], config)
        if config.lora:
            from peft import PeftModel

            with quiet_transformers():
                student.lm = PeftModel.from_pretrained(student.base, directory / "adapter")
        tensors = load_file(str(directory / "expression_tokens.safetensors"))
        student.token_embeddings = nn.Parameter(tensors["token_embeddings"])
        student.head = nn.Parameter(tensors["head"])
        student.depth_embeddings = nn.Parameter(tensors["depth_embeddings"])
        student.metrics = from_dict(FinetuneMetrics, meta["metrics"]) if meta.get("metrics") else None
        student.loss_curve = meta.get("loss_curve", [])
        student.lm.eval()
        return student


class StudentSource:
    """The student as a :class:`~featteam.decoding.NextTokenSource` over the expression vocabulary."""

    def __init__(self, student: Student) -> None:
        self.student = student

    def start(self, n_inputs: int, beam: int):
        import copy

        hidden, cache = self.student._prompt_state()
        rows = n_inputs * beam
        cache = repeat_cache(copy.deepcopy(cache), rows)
        return {"cache": cache, "hidden": hidden.expand(rows, -1), "first": True,
                "depth": torch.zeros(rows, dtype=torch.long)}

    def step(self, state, last_tokens: np.ndarray):
        student = self.student
        with torch.no_grad():
            if state["first"]:  # the prompt's last position predicts the first token
                hidden = state["hidden"]
                state = {**state, "first": False}
            else:
                ids = torch.tensor(np.asarray(last_tokens), dtype=torch.long)
                depth = student.next_depth(state["depth"], ids)
                out, cache = student._hidden(student.embed_tokens(ids, depth).unsqueeze(1), None, state["cache"])
                hidden = out[:, -1]
                state = {**state, "cache": cache, "depth": depth}
            logp = torch.log_softmax(student._logits(hidden), dim=-1).numpy().astype(np.float64)
        return logp, state

    def reorder(self, state, rows: np.ndarray):
        cache = state["cache"]
        cache.reorder_cache(torch.tensor(rows, dtype=torch.long))
        index = torch.tensor(rows, dtype=torch.long)
        hidden = state["hidden"][index] if state["first"] else state["hidden"]
        return {**state, "cache": cache, "hidden": hidden, "depth": state["depth"][index]}
