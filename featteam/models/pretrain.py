"""The student's one-time pre-training on the expression language.

A student fine-tuned on one table's golden set (30 to 100 examples, a few optimizer steps) has
barely learnt to end a sequence, let alone postfix arity. So, once per base model, the student's
LoRA adapter, structure embeddings, shape bias and expression-token rows are trained on
sequences drawn from the grammar (:class:`featteam.explore.Explorer`'s random transformations,
mutations and crossovers, and a quarter of them given one more feature that starts as an
earlier one and goes on; each checked valid on a random table) over generic tables - ``f0..f{d-1}``
for widths d from 2 to :data:`PRETRAIN_FEATURES`, classification and regression, a few target
names - with the same prompt the student gets on a real table. Every per-table fine-tuning then
starts from it (:meth:`featteam.models.student.Student.start_from`) and only has to learn what
is good for *its* table.

For the embedded model and the default student the state ships in the package
(:data:`SHIPPED_STATES`). Otherwise the result is cached under
``cache_dir()/students/<base model>-<key>`` (the key hashes the pre-training's settings, its
schema and the base model's identity, :func:`model_identity`, so a change to any of them
trains a new one; a change to what the code computes must bump :data:`PRETRAIN_SCHEMA`).
It is written to a ``.partial`` folder renamed when complete, under a file lock, so a run killed
mid-way leaves nothing a later run trusts (the next one starts over), and two fits that need it
at once train it once. ``featteam prepare`` runs it ahead of time; otherwise the first fit that
needs it does, with a progress bar.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FeatteamError
from ..expr import OPERATORS
from ..expr.sequence import DEFAULT_MAX_FEATURE_LENGTH, DEFAULT_MAX_FEATURES, DEFAULT_MAX_LENGTH
from ..report import PretrainMetrics
from ..settings import cache_dir, cache_lock

if TYPE_CHECKING:
    from .student import StudentConfig

logger = logging.getLogger(__name__)

#: Bump when what the pre-training computes changes: older caches are then not used.
PRETRAIN_SCHEMA = 7
#: Feature tokens with a trained row of their own; a wider table's further features start
#: from their text's row plus the mean shift the trained ones took.
PRETRAIN_FEATURES = 64
#: Target names the pre-training's prompts use (the prompt names the table's target).
TARGET_NAMES = ("label", "target", "y", "class", "price", "outcome", "value", "default")
TASKS = ("classification", "regression")
#: The file whose presence marks a complete pre-trained state.
COMPLETE_MARKER = "pretrain.json"
#: Pre-trained states shipped in the package, named as the cache names them
#: (:func:`state_name`): the embedded model's, for the default student, so a fresh install does
#: not pay the one-time pre-training.  Each is what ``featteam prepare --ship`` trained afresh
#: and copied here (:func:`train_and_ship`; docs/architecture.md, "The student's pre-training
#: (shipped)").  A test fails when the code's name for it - the GGUF's content, the schema and
#: every setting - no longer matches; a change to what the pre-training computes must bump
#: :data:`PRETRAIN_SCHEMA` for that test to see it.
SHIPPED_STATES = Path(__file__).parent / "pretrained"


@dataclass(frozen=True)
class PretrainConfig:
    """What the one-time pre-training computes (every field is part of the cache key).

    Parameters
    ----------
    steps : int
        Optimizer steps; each is one batch of sequences for one generic table.
    batch_size : int
        Sequences per step (they share the prompt, which runs once per step).
    lr : float
        AdamW learning rate.
    bias_lr : float
        Learning rate of the student's shape bias (:meth:`~featteam.models.student.Student._logits`).
    lora_r, lora_alpha : int
        The LoRA adapter's rank and scale (a table's fine-tuning goes on with the same adapter).
    min_features, max_features : int
        Widths of the generic tables, drawn log-uniformly.
    seed : int
    """

    steps: int = 64
    batch_size: int = 8
    lr: float = 3e-3
    bias_lr: float = 0.6
    lora_r: int = 8
    lora_alpha: int = 16
    min_features: int = 2
    max_features: int = PRETRAIN_FEATURES
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "lora_r", "lora_alpha", "min_features"):
            if getattr(self, name) < 1:
                raise FeatteamError(f"pre-training {name} must be at least 1, not {getattr(self, name)}")
        if not self.min_features <= self.max_features <= PRETRAIN_FEATURES:
            raise FeatteamError(f"pre-training widths must satisfy 1 <= min_features <= max_features <= "
                                f"{PRETRAIN_FEATURES}")
        for name in ("lr", "bias_lr"):
            if not 0 < getattr(self, name) < 1:
                raise FeatteamError(f"pre-training {name} must be in (0, 1), not {getattr(self, name)}")

    @classmethod
    def for_student(cls, student: "StudentConfig") -> "PretrainConfig":
        """The pre-training a student with this configuration starts from (its adapter's shape)."""
        return cls(lora_r=student.lora_r, lora_alpha=student.lora_alpha)

    def key(self, base_model: str) -> str:
        # The operators are the expression tokens it trains rows for: a change to the registry
        # makes another state without a schema bump.
        data = {"schema": PRETRAIN_SCHEMA, "base_model": base_model, "operators": list(OPERATORS),
                **asdict(self)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def model_identity(model_dir: Path) -> str:
    """What names a base model for the cache.  A conversion of a GGUF file is named by the GGUF's
    content (:func:`featteam.llm.local.is_conversion`), so its name is enough: the same on every
    machine, which is what lets a shipped pre-trained state be found.  Any other folder is named by
    its resolved path and the size and time of each of its files (two folders of the same name, or
    a model overwritten in place, differ).  A conversion is trusted by its name: the conversion
    wrote it and nothing in featteam writes there again."""
    from ..llm.local import is_conversion

    folder = model_dir.resolve()
    if is_conversion(folder):
        return folder.name
    stats = [(p.name, p.stat()) for p in sorted(folder.iterdir()) if p.is_file()]
    return f"{folder}|" + "|".join(f"{name}:{stat.st_size}:{int(stat.st_mtime)}" for name, stat in stats)


def state_name(model_dir: Path, config: PretrainConfig) -> str:
    """The folder name of the pre-trained state of the base model in ``model_dir`` (cached or shipped)."""
    return f"{model_dir.name}-{config.key(model_identity(model_dir))}"


def pretrained_dir(model_dir: Path, config: PretrainConfig) -> Path:
    """Where the pre-trained state of the base model in ``model_dir`` is cached (nothing is created)."""
    return cache_dir() / "students" / state_name(model_dir, config)


def shipped_dir(model_dir: Path, config: PretrainConfig) -> Path:
    """Where featteam would ship the pre-trained state of the base model in ``model_dir`` (it ships
    one for the embedded model and the default student: :data:`SHIPPED_STATES`)."""
    return SHIPPED_STATES / state_name(model_dir, config)


def read_metrics(directory: Path, shipped: bool = False) -> PretrainMetrics:
    """The metrics a complete state in ``directory`` recorded when it was trained, marked as read
    (not trained now) and, when ``shipped``, as the package's own."""
    from ..records import from_dict

    meta = json.loads((directory / COMPLETE_MARKER).read_text())
    return from_dict(PretrainMetrics, {**meta["metrics"], "directory": str(directory), "loaded_from_cache": True,
                                       "shipped": shipped})


def ensure_pretrained(base_model: str | None = None, config: PretrainConfig | None = None,
                      progress: bool = False, use_shipped: bool = True) -> PretrainMetrics:
    """The pre-trained student state of ``base_model`` (the embedded model by default): the one
    shipped with featteam where there is one, else read from the cache, or trained once and cached.

    Parameters
    ----------
    base_model : str, optional
        A model directory or GGUF file (None: the embedded model).
    config : PretrainConfig, optional
        What the pre-training computes (default: :class:`PretrainConfig`'s defaults).
    progress : bool
        Show a progress bar while it trains.
    use_shipped : bool
        Use the state shipped with featteam when one matches; False trains (or reads the cache)
        as if none were shipped, which is how a shipped state is made and checked.

    Returns
    -------
    PretrainMetrics
        Its directory, whether it was shipped or came from the cache, and the one-time cost
        (seconds, steps, disk) of the run that trained it.
    """
    from ..llm.local import resolve_model_dir

    config = config or PretrainConfig()
    model_dir = resolve_model_dir(base_model)
    shipped = shipped_dir(model_dir, config)
    if use_shipped and (shipped / COMPLETE_MARKER).exists():
        return read_metrics(shipped, shipped=True)
    target = pretrained_dir(model_dir, config)
    if (target / COMPLETE_MARKER).exists():
        return read_metrics(target)
    with cache_lock(target.with_name(target.name + ".lock")):
        if (target / COMPLETE_MARKER).exists():  # another process finished it while we waited
            return read_metrics(target)
        partial = target.with_name(target.name + ".partial")
        if partial.exists():
            logger.warning("removing an unfinished pre-training in %s (its run was stopped)", partial)
            shutil.rmtree(partial)
        if target.exists():  # a folder without its marker: never trusted
            shutil.rmtree(target)
        logger.warning("pre-training the student on the expression language (once for %s; cached in %s)",
                       model_dir.name, target)
        metrics = pretrain(base_model, config, partial, progress=progress)
        partial.rename(target)  # atomic: a half-written state is never used
    return replace(metrics, directory=str(target))


#: What a shipped state holds (safetensors and JSON only), relative to its folder; the marker last.
SHIPPED_FILES = ("adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "expression_tokens.safetensors", COMPLETE_MARKER)


def ship(state: Path, model_dir: Path, into: Path | None = None) -> Path:
    """Copy the trained state in ``state`` into the package's shipped states, as the package ships
    it, and remove any other state shipped for the same base model.

    Parameters
    ----------
    state : Path
        A complete pre-trained state of the base model in ``model_dir`` (named by :func:`state_name`).
    model_dir : Path
        The base model: a conversion of a GGUF file (:func:`featteam.llm.local.is_conversion`),
        the only kind whose name is the same on every machine.
    into : Path, optional
        The folder of shipped states (default: :data:`SHIPPED_STATES`, the package's own: in a
        source checkout that is ``featteam/models/pretrained/``).

    Returns
    -------
    Path
        The shipped folder.  Only :data:`SHIPPED_FILES` are copied, the adapter's record naming
        the base model by its folder's name rather than the path of the machine that trained it;
        the copy is written to a ``.partial`` folder renamed when complete.
    """
    from ..llm.local import is_conversion

    state, into = Path(state), Path(into or SHIPPED_STATES)
    if not (state / COMPLETE_MARKER).exists():
        raise FeatteamError(f"{state} is not a complete pre-trained state (no {COMPLETE_MARKER})")
    if not is_conversion(model_dir.resolve()):
        raise FeatteamError(f"only a conversion of a GGUF file can be shipped: {model_dir} is named by its "
                            "path, which no other machine has")
    same_model = re.compile(rf"{re.escape(model_dir.name)}-[0-9a-f]{{12}}(\.partial)?")
    if not same_model.fullmatch(state.name):
        raise FeatteamError(f"{state} is not a pre-trained state of {model_dir.name}")
    target = into / state.name
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    for name in SHIPPED_FILES:
        (partial / name).parent.mkdir(parents=True, exist_ok=True)
        if name == "adapter/adapter_config.json":
            record = json.loads((state / name).read_text())
            record["base_model_name_or_path"] = model_dir.name
            (partial / name).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        else:
            shutil.copyfile(state / name, partial / name)
    for old in into.iterdir():
        if same_model.fullmatch(old.name) and old.name != partial.name:
            shutil.rmtree(old)
    partial.rename(target)
    return target


def train_and_ship(base_model: str | None, config: PretrainConfig, progress: bool = False,
                   into: Path | None = None) -> tuple[PretrainMetrics, Path]:
    """Train the pre-training afresh in a temporary folder (never a cached state, which an older
    code may have made under the same name) and :func:`ship` it (``featteam prepare --ship``).

    Returns
    -------
    (PretrainMetrics, Path)
        The training's metrics and the shipped folder.
    """
    import tempfile

    from ..llm.local import resolve_model_dir

    model_dir = resolve_model_dir(base_model)
    with tempfile.TemporaryDirectory(prefix="featteam-pretrain-") as scratch:
        state = Path(scratch) / state_name(model_dir, config)
        metrics = pretrain(base_model, config, state, progress=progress)
        shipped = ship(state, model_dir, into)
    return replace(metrics, directory=str(shipped), shipped=True), shipped


#: Rows of the random table every pre-training sequence is computed on.
VALUE_CHECK_ROWS = 64
#: Draws per wanted sequence before a batch gives up (a bound, not a budget).
MAX_DRAWS_PER_SEQUENCE = 100


#: Share of generic tables whose sequences draw most features from a pool over a few favoured
#: columns, as a real golden set draws from the screen's best features: columns repeat, within
#: a feature and across features, so the student learns what a repeat may and may not do
#: (``f3 f3 *`` is valid, ``f3 f3 -`` is constant, the same feature twice is a duplicate).
POOL_SHARE = 2 / 3
POOL_SIZE = 30
#: Share of sequences given one more feature that copies an earlier one and then goes on
#: (``A <sep> ... <sep> A sqrt``): where the feature being written equals an earlier one
#: (the prefix shape's repeat flag), a valid sequence never closes it.  Without these the
#: flag is almost never on in generic sequences, and the teaming decoder, led by an ML
#: decoder that loves one feature, closed it twice (issue 14: duplicate_feature).
REPEAT_SHARE = 1 / 4


def _explorer(width: int, seed: int, pool: list[list[str]] | None = None):
    """An :class:`~featteam.explore.Explorer` over ``width`` columns with the default limits."""
    from ..explore import Explorer

    return Explorer(width, DEFAULT_MAX_LENGTH, DEFAULT_MAX_FEATURES, DEFAULT_MAX_FEATURE_LENGTH,
                    random_state=seed, pool=pool or ())


def favoured_pool(rng: np.random.Generator, width: int) -> list[list[str]]:
    """A pool of random features over 1 to 5 favoured columns of a ``width``-column table (empty
    for :data:`POOL_SHARE` of the calls' complement: the columns are then drawn uniformly)."""
    from ..expr.vocab import feature_index, feature_token

    if rng.random() >= POOL_SHARE:
        return []
    favoured = rng.choice(width, size=int(rng.integers(1, min(width, 5) + 1)), replace=False)
    sub = _explorer(len(favoured), int(rng.integers(2**31)))
    pool = []
    for _ in range(POOL_SIZE):
        feature = sub.random_feature()
        pool.append([t if feature_index(t) is None else feature_token(int(favoured[feature_index(t)]))
                     for t in feature])
    return pool


def generic_batch(rng: np.random.Generator, config: PretrainConfig) -> tuple[str, str, int, list[list[str]]]:
    """One step's generic table (task, target name, width) and its ``batch_size`` sequences:
    random transformations, mutations and crossovers (in equal shares, as the golden set's
    exploration makes them; :data:`REPEAT_SHARE` of the draws given a feature that starts as an
    earlier one and goes on, kept where the longer sequence fits the limits), each one valid on a
    random table of that width (so none is constant, duplicate or non-finite, as
    ``f3 f3 -`` would be: the student learns what a valid run keeps)."""
    from ..expr import InvalidSequence, check_values, evaluate, join_features, split_features

    width = int(np.exp(rng.uniform(np.log(config.min_features), np.log(config.max_features + 1))))
    width = min(max(width, config.min_features), config.max_features)
    task = TASKS[int(rng.integers(len(TASKS)))]
    target = TARGET_NAMES[int(rng.integers(len(TARGET_NAMES)))]
    explorer = _explorer(width, int(rng.integers(2**31)), favoured_pool(rng, width))  # the seed is drawn first
    table = rng.lognormal(0.0, 1.0, size=(VALUE_CHECK_ROWS, width)) * rng.choice([-1.0, 1.0], size=width)
    sequences: list[list[str]] = []
    for _ in range(MAX_DRAWS_PER_SEQUENCE * config.batch_size):
        if len(sequences) == config.batch_size:
            break
        kind, tokens = rng.random(), explorer.random()
        if kind < 1 / 3:
            tokens = explorer.mutate(tokens)
        elif kind < 2 / 3:
            tokens = explorer.crossover(tokens, explorer.random())
        if rng.random() < REPEAT_SHARE:
            features = split_features(tokens)
            features.append(explorer.extended(features[int(rng.integers(len(features)))]))
            tokens = join_features(features)
            try:
                explorer.check(tokens)
            except InvalidSequence:
                continue
        try:
            with np.errstate(all="ignore"):
                check_values(evaluate(tokens, table)[0], table)
        except InvalidSequence:
            continue
        sequences.append(tokens)
    if len(sequences) < config.batch_size:  # never seen: most random transformations are valid
        raise FeatteamError(f"no valid generic transformations of width {width} in "
                            f"{MAX_DRAWS_PER_SEQUENCE * config.batch_size} draws")
    return task, target, width, sequences


def pretrain(base_model: str | None, config: PretrainConfig, directory: Path,
             progress: bool = False) -> PretrainMetrics:
    """Train the student's adapter, structure embeddings and expression-token rows on generic tables
    and write them to ``directory`` (:data:`COMPLETE_MARKER` last)."""
    import torch
    from safetensors.torch import save_file
    from torch import nn
    from tqdm.auto import tqdm

    from ..expr import Vocabulary
    from ..llm.local import DEFAULT_MODEL
    from ..llm.torch_utils import torch_threads
    from .latent import seeded
    from .student import Student, StudentConfig, student_prompt

    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    vocab = Vocabulary(PRETRAIN_FEATURES)
    n_fixed = len(vocab) - vocab.n_features
    losses: list[float] = []
    # On one thread, like every step of a fit (FitConfig.torch_threads): a state trained by
    # `featteam prepare` is then the one a fit would train, whatever the machine's cores or load.
    with seeded(config.seed), torch_threads(1):
        student = Student(vocab, "", StudentConfig(base_model=base_model or DEFAULT_MODEL, lora_r=config.lora_r,
                                                   lora_alpha=config.lora_alpha, lr=config.lr, seed=config.seed))
        student.attach_lora()
        # The shape bias is a logit (a few units where a rule holds): at the adapter's learning rate
        # it would move a fraction of one in these steps.
        others = [p for p in student.parameters() if p is not student.shape_bias]
        optimizer = torch.optim.AdamW([{"params": others}, {"params": [student.shape_bias], "lr": config.bias_lr}],
                                      lr=config.lr, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / 10) * max(0.1, 1 - step / config.steps))
        student.lm.train()
        bar = tqdm(total=config.steps, desc="student pre-training (once)", disable=not progress, leave=False)
        for _ in range(config.steps):
            task, target, width, sequences = generic_batch(rng, config)
            prompt_ids = student.tokenizer.encode(student_prompt(task, target, width), add_special_tokens=False)
            loss, _ = student._batch_loss(sequences, torch.ones(len(sequences)), prompt_ids, n_fixed + width)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
    student.lm.eval()
    directory.mkdir(parents=True, exist_ok=True)
    student.lm.save_pretrained(directory / "adapter")
    save_file(student.expression_tensors(), str(directory / "expression_tokens.safetensors"))
    seconds = time.perf_counter() - start
    disk = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    metrics = PretrainMetrics(directory=str(directory), loaded_from_cache=False, steps=config.steps,
                              seconds=round(seconds, 1), disk_bytes=disk, first_loss=losses[0],
                              last_loss=float(np.mean(losses[-10:])))
    (directory / COMPLETE_MARKER).write_text(json.dumps({
        "schema": PRETRAIN_SCHEMA, "config": asdict(config),
        # where it lies and whether it was loaded or shipped are said by whoever reads it (read_metrics)
        "metrics": {k: v for k, v in asdict(metrics).items()
                    if k not in ("directory", "loaded_from_cache", "shipped")},
        "loss_curve": losses},
        indent=2))
    return metrics
