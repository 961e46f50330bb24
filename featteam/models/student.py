"""Step 3 of the method: the student LLM, distilled from the teacher's golden examples.

Vocabulary alignment: the student gets one new token per expression token - a
trainable input embedding and a row of a trainable output head over the LM's
last hidden state - so its next-token distribution over the expression
vocabulary is exact and costs one small matrix product.  Both are initialised
from the base model's embeddings of the token's text (`` sqrt``, `` f3``), so the
untrained student already means something.  The base LM is adapted with LoRA
(peft) by default, or fully fine-tuned.

Each expression token's input also carries the shape of the prefix after it
(:class:`PrefixShape`) - the stack depth, the length of the feature so far, the number of
features already closed, whether the two values on top of the stack are the same expression
and whether the feature so far repeats an earlier one (learned embeddings, zero at first):
the student sees the structure it writes, as a transformer sees positions, and learns postfix
arity far faster.  The same shape also adds a learned bias to the next token's logits
(:meth:`Student._logits`).  Both are learned from examples, in the one-time pre-training
(:mod:`featteam.models.pretrain`) and the fine-tuning: input and prior, not a mask, so
unmasked sampling is still free to write invalid sequences.

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
from ..errors import FeatteamError
from ..expr import Grammar, Vocabulary, next_depth, token_text
from ..llm.local import DEFAULT_MODEL, load_causal_lm
from ..llm.torch_utils import cache_keyword, output_cache, quiet_transformers, repeat_cache
from ..records import from_dict, to_json_value
from ..report import FinetuneMetrics
from .latent import seeded

logger = logging.getLogger(__name__)

#: Deepest stack the depth embedding distinguishes (deeper is clamped).
MAX_DEPTH = 16
#: Longest feature the feature-length embedding distinguishes (longer is clamped).
MAX_FEATURE_POSITION = 16
#: Most closed features the feature-count embedding distinguishes (more are clamped).
MAX_FEATURE_COUNT = 8
#: The layout of a saved student (``student.json``); 2: the prefix-shape tables and bias.
STUDENT_SCHEMA = 2
#: The student's structure embeddings, one per entry of :class:`PrefixShape` (in its order).
STRUCTURE_TABLES = ("depth_embeddings", "length_embeddings", "count_embeddings", "pair_embeddings",
                    "repeat_embeddings")
#: Every table the student adds to its LM, by attribute name (saved beside the adapter).
EXPRESSION_TABLES = ("token_embeddings", "head", *STRUCTURE_TABLES, "shape_bias")
#: The fine-tuning learning rate of a student that starts from its pre-training: the fresh
#: adapter's 3e-3 undoes what the pre-training taught in five steps (measured on the demo
#: table: 5 of 16 unmasked samples valid after fine-tuning at 3e-3, 8-12 at 1e-3; 48 samples
#: at 1e-3: 35 valid against 39 before fine-tuning).
PRETRAINED_FINETUNE_LR = 1e-3
#: The attention projections LoRA adapts.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


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


class PrefixShape:
    """The shape of a prefix of expression tokens, pushed one token at a time: what the student's
    input carries beside each token (:data:`WIDTH` small integers, each clamped to what its
    embedding distinguishes).

    ``[stack depth, tokens of the current feature, features closed, top two values equal,
    current feature repeats an earlier one]``: the depth by :func:`featteam.expr.next_depth`; the
    last two let the student see what makes ``f3 f3 -`` constant and a repeated feature a
    duplicate, as a transformer sees positions.  Input only, never a mask.
    """

    #: Distinct values of each entry (the rows of its embedding table).
    SIZES = (MAX_DEPTH + 1, MAX_FEATURE_POSITION + 1, MAX_FEATURE_COUNT + 1, 2, 2)
    WIDTH = len(SIZES)

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.depth = 0
        self.stack: list[tuple[int, ...]] = []   # each value's expression (its token ids)
        self.current: list[int] = []
        self.closed: list[tuple[int, ...]] = []

    def copy(self) -> "PrefixShape":
        other = PrefixShape(self.vocab)
        other.depth, other.stack, other.current, other.closed = (self.depth, list(self.stack), list(self.current),
                                                                 list(self.closed))
        return other

    def push(self, token_id: int) -> tuple[int, int, int, int, int]:
        """The shape after ``token_id``."""
        vocab = self.vocab
        if token_id == vocab.sep_id:
            self.closed.append(tuple(self.current))
            self.depth, self.stack, self.current = 0, [], []
        elif token_id not in (vocab.eos_id, vocab.pad_id, vocab.sos_id):
            arity = int(vocab.arity[token_id])
            self.depth = next_depth(self.depth, arity, 0)
            operands = self.stack[len(self.stack) - min(arity, len(self.stack)):]
            del self.stack[len(self.stack) - len(operands):]
            self.stack.append(sum(operands, ()) + (token_id,))
            self.current.append(token_id)
        pair = int(len(self.stack) >= 2 and self.stack[-1] == self.stack[-2])
        repeat = int(bool(self.current) and tuple(self.current) in self.closed)
        return (min(max(self.depth, 0), MAX_DEPTH), min(len(self.current), MAX_FEATURE_POSITION),
                min(len(self.closed), MAX_FEATURE_COUNT), pair, repeat)


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
        init = self.text_rows(vocab.tokens)
        self.token_embeddings = nn.Parameter(init.clone())
        self.head = nn.Parameter(init.clone())  # the LM's output head is tied to its embeddings
        for name, size in zip(STRUCTURE_TABLES, PrefixShape.SIZES):
            setattr(self, name, nn.Parameter(torch.zeros(size, init.shape[1])))
        n_fixed = len(vocab) - vocab.n_features
        self.shape_bias = nn.Parameter(torch.zeros(sum(PrefixShape.SIZES), n_fixed + 1))
        self._shape_offsets = torch.tensor(np.cumsum((0,) + PrefixShape.SIZES[:-1]), dtype=torch.long)
        self.prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        self._prompt_cache = None
        # <pad> and <sos> are no expression a model may write: never predicted.
        self._never = torch.zeros(len(vocab), dtype=torch.bool)
        self._never[[vocab.pad_id, vocab.sos_id]] = True

    def text_rows(self, tokens: Sequence[str]) -> torch.Tensor:
        """The base model's mean input embedding of each token's text (`` sqrt``, `` f3``): where an
        expression token's rows start before any training."""
        embeddings = self.base.get_input_embeddings().weight.detach()
        return torch.stack([embeddings[self.tokenizer.encode(token_text(t), add_special_tokens=False)].mean(0)
                            for t in tokens])

    def attach_lora(self) -> None:
        """Wrap the base LM in a fresh LoRA adapter (the config's rank and alpha) for training."""
        from peft import LoraConfig, get_peft_model

        c = self.config
        with quiet_transformers():
            self.lm = get_peft_model(self.base, LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=0.0,
                                                           target_modules=list(LORA_TARGETS)))
        self._prompt_cache = None

    def start_from(self, directory: str | Path) -> None:
        """Start from a pre-trained state (:mod:`featteam.models.pretrain`): its LoRA adapter (merged
        into the weights when this student is fully fine-tuned), structure embeddings and
        expression-token rows.  Feature tokens past the ones it trained start from their text's row plus the mean
        shift its trained feature rows took from theirs."""
        from peft import PeftModel
        from safetensors.torch import load_file

        directory = Path(directory)
        tensors = load_file(str(directory / "expression_tokens.safetensors"))
        n_fixed = len(self.vocab.tokens) - self.vocab.n_features
        n_trained = tensors["token_embeddings"].shape[0] - n_fixed
        trained_text = self.text_rows(Vocabulary(n_trained).tokens)
        own_text = self.text_rows(self.vocab.tokens)
        keep = min(len(self.vocab), tensors["token_embeddings"].shape[0])
        for name in ("token_embeddings", "head"):
            table = tensors[name]
            own = own_text + (table[n_fixed:] - trained_text[n_fixed:]).mean(0)
            own[:keep] = table[:keep]
            tensors[name] = own
        self._set_tables(tensors)
        with quiet_transformers():
            lm = PeftModel.from_pretrained(self.base, directory / "adapter", is_trainable=self.config.lora)
        # The adapter's record names the base model by the folder it was trained on, which a shipped
        # state names without the machine's path: this student's base is the one it goes on from.
        for adapter in lm.peft_config.values():
            adapter.base_model_name_or_path = self.base.name_or_path
        self.lm = lm if self.config.lora else lm.merge_and_unload()
        self.lm.eval()
        self._prompt_cache = None

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

    def _logits(self, hidden: torch.Tensor, structure: torch.Tensor, n_tokens: int | None = None) -> torch.Tensor:
        """Scores over the first ``n_tokens`` expression tokens (all by default: the vocabulary of
        a table with fewer features is a prefix of this one - specials, operators, f0, f1, ...),
        given the last hidden states and the shapes of the prefixes they end
        (:meth:`PrefixShape.push`, last axis).

        The head's scores plus a learned bias per shape entry and value over the specials, the
        operators and "a column" (one bias shared by every feature token, so it carries over to
        any table width).  Learned from examples like every other weight - in the pre-training,
        where the shapes say most about what may follow - it is a prior, not a mask."""
        n_tokens = n_tokens or len(self.vocab)
        n_fixed = len(self.vocab) - self.vocab.n_features
        bias = self.shape_bias[structure + self._shape_offsets].sum(-2)  # ... x (n_fixed + 1)
        bias = torch.cat([bias[..., :n_fixed], bias[..., n_fixed:].expand(*bias.shape[:-1], n_tokens - n_fixed)], -1)
        return (hidden @ self.head[:n_tokens].T + bias).masked_fill(self._never[:n_tokens], float("-inf"))

    def _prompt_embeds(self, prompt_ids: Sequence[int] | None = None) -> torch.Tensor:
        ids = torch.tensor(self.prompt_ids if prompt_ids is None else list(prompt_ids))
        return self.lm.get_input_embeddings()(ids)

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.lm.parameters() if p.requires_grad] + [getattr(self, name)
                                                                        for name in EXPRESSION_TABLES]

    def structure_tables(self) -> list[nn.Parameter]:
        """The embeddings of the prefix's shape, in :class:`PrefixShape`'s order."""
        return [getattr(self, name) for name in STRUCTURE_TABLES]

    def expression_tensors(self) -> dict[str, torch.Tensor]:
        """What the student adds to its LM, by name: the expression-token rows (input and head) and
        the structure embeddings (saved beside the adapter)."""
        return {name: getattr(self, name).detach().contiguous() for name in EXPRESSION_TABLES}

    def _set_tables(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take every table of :data:`EXPRESSION_TABLES` from ``tensors`` (as trainable copies)."""
        for name in EXPRESSION_TABLES:
            setattr(self, name, nn.Parameter(tensors[name].clone()))

    def embed_tokens(self, token_ids: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        """A token's input: its row plus the embeddings of the prefix's shape after it
        (:meth:`PrefixShape.features`, last axis)."""
        embeds = self.token_embeddings[token_ids]
        for i, table in enumerate(self.structure_tables()):
            embeds = embeds + table[structure[..., i]]
        return embeds

    def _structures(self, token_ids: list[int]) -> torch.Tensor:
        shape, out = PrefixShape(self.vocab), []
        for t in token_ids:
            out.append(shape.push(t))
        return torch.tensor(out, dtype=torch.long).reshape(len(out), PrefixShape.WIDTH)

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
            if not hasattr(self.lm, "peft_config"):  # a pre-trained adapter (start_from) goes on training
                self.attach_lora()
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
                    logger.warning("the student's fine-tuning hit its %g s safety stop after %d steps: this run "
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

    def _batch_loss(self, sequences: Sequence[Sequence[str]], weights: torch.Tensor,
                    prompt_ids: Sequence[int] | None = None, n_tokens: int | None = None) -> tuple[torch.Tensor, int]:
        """Weighted mean cross-entropy of ``sequences`` (each ended by the end token) after one
        prompt (the student's own by default), over the first ``n_tokens`` expression tokens.

        The prompt is the same for every row of a batch, so it runs once and its KV cache is
        repeated for the rows (with gradients through it): the batch costs the prompt once plus its
        expression tokens, not rows x (prompt + tokens)."""
        prompt_ids = self.prompt_ids if prompt_ids is None else list(prompt_ids)
        n_prompt = len(prompt_ids)
        targets = [self.vocab.encode(list(s)) + [self.vocab.eos_id] for s in sequences]
        rows, width = len(targets), max(len(t) for t in targets)
        prompt_hidden, cache = self._hidden(self._prompt_embeds(prompt_ids).unsqueeze(0))
        # The prompt's last position predicts the first token; inputs are the targets but the last.
        first = prompt_hidden[:, -1:].expand(rows, 1, -1)
        labels = torch.full((rows, width), -100, dtype=torch.long)
        # The shape each position's prediction sees: the empty prefix's, then each input's.
        shapes = torch.zeros(rows, width, PrefixShape.WIDTH, dtype=torch.long)
        for i, t in enumerate(targets):
            labels[i, : len(t)] = torch.tensor(t)
            shapes[i, 1: len(t)] = self._structures(t[:-1])
        if width > 1:
            inputs, mask = [], torch.ones(rows, n_prompt + width - 1, dtype=torch.long)
            for i, t in enumerate(targets):
                ids = torch.tensor(t[:-1], dtype=torch.long)
                embeds = (self.embed_tokens(ids, shapes[i, 1: len(t)]) if len(t) > 1
                          else first.new_zeros(0, first.shape[2]))
                inputs.append(torch.cat([embeds, first.new_zeros(width - len(t), first.shape[2])]))
                mask[i, n_prompt + len(t) - 1:] = 0
            hidden, _ = self._hidden(torch.stack(inputs), mask, repeat_cache(cache, rows))
            hidden = torch.cat([first, hidden], dim=1)
        else:
            hidden = first
        logits = self._logits(hidden, shapes, n_tokens)
        per_token = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                ignore_index=-100, reduction="none").view(rows, width)
        valid = (labels != -100).float()
        per_example = (per_token * valid).sum(1) / valid.sum(1)
        loss = (per_example * weights.float()).sum() / weights.float().sum()
        return loss, int(n_prompt + sum(len(t) for t in targets))

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
        save_file(self.expression_tensors(), str(directory / "expression_tokens.safetensors"))
        self.tokenizer.save_pretrained(directory / "tokenizer")
        (directory / "student.json").write_text(json.dumps({
            "schema_version": STUDENT_SCHEMA, "n_features": self.vocab.n_features, "prompt": self.prompt,
            "config": asdict(self.config), "metrics": to_json_value(self.metrics), "loss_curve": self.loss_curve},
            indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "Student":
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / "student.json").read_text())
        if meta.get("schema_version") != STUDENT_SCHEMA:
            raise FeatteamError(f"the student in {directory} was saved by another featteam version (schema "
                                f"{meta.get('schema_version')}, this one reads {STUDENT_SCHEMA}): run its student "
                                "step again (delete the folder, or fit into a new run directory)")
        config = StudentConfig(**meta["config"])
        if not config.lora:
            config.base_model = str(directory / "model")
        student = cls(Vocabulary(meta["n_features"]), meta["prompt"], config)
        if config.lora:
            from peft import PeftModel

            with quiet_transformers():
                student.lm = PeftModel.from_pretrained(student.base, directory / "adapter")
        tensors = load_file(str(directory / "expression_tokens.safetensors"))
        student._set_tables(tensors)
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
                "shapes": [PrefixShape(self.student.vocab) for _ in range(rows)]}

    def step(self, state, last_tokens: np.ndarray):
        student = self.student
        with torch.no_grad():
            if state["first"]:  # the prompt's last position predicts the first token
                hidden = state["hidden"]
                structure = torch.zeros(len(hidden), PrefixShape.WIDTH, dtype=torch.long)
                state = {**state, "first": False}
            else:
                ids = torch.tensor(np.asarray(last_tokens), dtype=torch.long)
                structure = torch.tensor([shape.push(int(t)) for shape, t in zip(state["shapes"], last_tokens)],
                                         dtype=torch.long)
                out, cache = student._hidden(student.embed_tokens(ids, structure).unsqueeze(1), None, state["cache"])
                hidden = out[:, -1]
                state = {**state, "cache": cache}
            logp = torch.log_softmax(student._logits(hidden, structure), dim=-1).numpy().astype(np.float64)
        return logp, state

    def reorder(self, state, rows: np.ndarray):
        cache = state["cache"]
        cache.reorder_cache(torch.tensor(rows, dtype=torch.long))
        index = torch.tensor(rows, dtype=torch.long)
        hidden = state["hidden"][index] if state["first"] else state["hidden"]
        return {**state, "cache": cache, "hidden": hidden, "shapes": [state["shapes"][r].copy() for r in rows]}
