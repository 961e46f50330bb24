"""The configuration of a fit: one typed record that validates itself, and the presets.

Every setting is a field with its type and help text; :class:`FitConfig` refuses a bad
value when it is built, so a typo fails before step 1 starts, not inside step 4.  The
CLI's ``fit`` options are made from the fields marked ``cli`` (``featteam.cli``), and each
step names the fields its result depends on (``featteam.steps``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import FeatteamError
from .evaluation import DEFAULT_MAX_TREE_ROWS
from .expr.sequence import DEFAULT_MAX_FEATURE_LENGTH, DEFAULT_MAX_FEATURES, DEFAULT_MAX_LENGTH

Preset = Literal["demo", "quick", "default", "paper"]
ProtocolName = Literal["honest", "paper"]
TeacherName = Literal["local", "openai", "none"]
DownstreamModel = Literal["rf", "et"]
StudentWeighting = Literal["rank", "none"]
TeamingRule = Literal["product", "linear"]

#: The teaming rule and weight by default.  Measured on openml_586 (benchmarks/teaming_lambda.py,
#: 300 golden examples, 100 searched points): unmasked error rates 0.00 / 0.00 / 0.02 at lambda
#: 0.25 / 0.5 / 0.75 against the ML decoder's 0.42, with 9 / 14 / 17 distinct candidates (the
#: student does not see z and pulls every point towards the same sequences).  0.75 failed with the
#: weaker student of a 100-example golden set (default preset: 0.36 against ml's 0.48).  The linear
#: mixture at 0.5 then still made 0.08 against ml's 0.10 on pima_indian (seed 0, arity errors: a
#: linear mixture keeps half of the ML decoder's mass on a token the student rules out); the
#: log-linear product at 0.5 made 0.00 there and 0.00 on seed 1 (linear 0.25: 0.00 too, but 1
#: distinct masked candidate instead of 3 on seed 1), so the default is the product at 0.5.
#: With the pre-trained student (issue 14) the weight moved to 0.3: on the demo table (15 searched
#: points, unmasked top beams) the ML decoder alone wrote 15 of 15 invalid (too_long: it repeats
#: a feature without end), teaming at 0.5 / 0.4 / 0.3 / 0.2 wrote 11 / 8 / 0 / 0 invalid (all
#: duplicate features: the ML decoder's repeats outweigh the student at 0.5); masked, 9 / 11 / 6
#: distinct candidates at 0.5 / 0.4 / 0.3.
DEFAULT_TEAMING_RULE: TeamingRule = "product"
DEFAULT_TEAMING_LAMBDA = 0.3

#: Preset sizes.  ``quick`` is about 2 minutes and ``default`` at most 10 on a 1000 x 25 table
#: on 2 cores; ``paper`` runs the literature's search (MOAT: from the top 20 sequences with step
#: sizes 1..5, beam 5): 150 golden examples, then 100 searched points for the ML decoder, 100
#: for teaming and 40 student samples, 240 decoded candidates (the screen in front of their
#: scores), and a local search of 64 transformations around the best finalist
#: (``refine_candidates``); with candidates scored on every row of the test split, a median of
#: about 6 minutes per table of the suite on one core (higgs's 10,000 rows: about 55), about 110
#: minutes for its 22 tables two at a time (BENCHMARKS.md, ``paper46``).
#: Training budgets are counted in epochs and steps, so the same seed and data give the same
#: result however loaded the machine is.  They were set to what the former wall-clock limits
#: gave on an idle 2-core machine (quick: 20 s of latent training, about 40 epochs of a
#: 30-example golden set, and one student epoch; default: 90 s, about 60 epochs, and 150 s of
#: the student, about 40 steps); ``paper``'s (40 epochs, at most 40 student steps) were sized
#: for the suite's time instead.  ``paper`` also lets the output hold up to 48 new features (24
#: elsewhere): MOAT's published transformations hold 7-75 new columns (median 38), and on the
#: Friedman-type tables of the suite the forest's order of a bank of 192 features, cut at 8-32,
#: scored higher on paper34's runs than any finalist of at most 12 (BENCHMARKS.md, "Larger
#: transformations under the paper protocol"); under the honest protocol the bank with the pairs
#: of the most important columns, cut at 16 or 24, did (BENCHMARKS.md, "The bank with the pairs
#: of the most important columns").
#: The ``*_max_seconds`` limits are only safety stops, far above the budgets: a run one of them
#: stops is reported as not reproducible.  On a large table the search scores candidates on a
#: stratified sample (``max_search_rows``: 2000 rows for demo and quick, as the benchmarks run
#: them, 5000 for default; paper: every row, as the literature); the reported score uses every row.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"n_golden": 40, "search_trees": 50, "max_search_rows": 2000, "teacher_share": 0.2,
             "max_teacher_rounds": 1, "search_top_k": 5,
             "step_sizes": (1.0, 3.0, 5.0), "beam": 3, "latent_epochs": 45, "latent_max_seconds": 600.0,
             "student_epochs": 1, "student_max_seconds": 900.0, "student_samples": 16},
    "quick": {"n_golden": 30, "search_trees": 50, "max_search_rows": 2000, "teacher_share": 0.25,
              "max_teacher_rounds": 1, "search_top_k": 4,
              "step_sizes": (1.0, 3.0, 5.0), "beam": 3, "latent_epochs": 40, "latent_max_seconds": 600.0,
              "student_epochs": 1, "student_max_seconds": 900.0, "student_samples": 12},
    "default": {"n_golden": 100, "max_search_rows": 5000, "teacher_share": 0.2, "max_teacher_rounds": 3,
                "search_top_k": 10,
                "step_sizes": (1.0, 2.0, 3.0, 4.0, 5.0), "beam": 5, "latent_epochs": 60,
                "latent_max_seconds": 1200.0, "student_epochs": 10, "student_max_steps": 40,
                "student_max_seconds": 1800.0, "student_samples": 32},
    "paper": {"n_golden": 150, "teacher_share": 0.2, "max_teacher_rounds": 6, "search_top_k": 20,
              "step_sizes": (1.0, 2.0, 3.0, 4.0, 5.0), "beam": 5, "latent_epochs": 40, "latent_max_seconds": 2400.0,
              "student_epochs": 4, "student_max_steps": 40, "student_max_seconds": 3600.0, "student_samples": 40,
              "max_selected_features": 48, "refine_candidates": 64},
}


def setting(default: Any, help: str, cli: bool = False, **kwargs: Any) -> Any:
    """A field of :class:`FitConfig` with its help text; ``cli`` makes it a ``featteam fit`` option."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, "cli": cli, **kwargs})
    return field(default=default, metadata={"help": help, "cli": cli, **kwargs})


@dataclass(frozen=True)
class FitConfig:
    """Everything that decides what a fit computes (the API key is not part of it).

    Build it with :meth:`from_preset`; every field is checked when the record is made.
    """

    preset: Preset = setting("default", "the sizes of the search this configuration started from")
    protocol: ProtocolName = setting(
        "honest", "honest: search on the training split, score the test split once (default); paper: the "
                  "literature's protocol (search and report on the test split; optimistic)", cli=True)
    # step 1: the golden set
    teacher: TeacherName = setting("local", "teacher LLM: local (embedded, no key), openai (any OpenAI-compatible "
                                            "endpoint) or none (exploration only)", cli=True)
    teacher_model: str | None = setting(None, "teacher model: a local model directory or GGUF file, or the "
                                              "endpoint's model name", cli=True, aliases=("--model",))
    base_url: str | None = setting(None, "OpenAI-compatible endpoint (default: FEATTEAM_BASE_URL, OPENAI_BASE_URL)",
                                   cli=True)
    n_golden: int = setting(150, "distinct valid golden examples wanted", cli=True)
    teacher_share: float = setting(0.2, "share of the golden set asked of the teacher (exploration fills the rest)")
    answers_per_call: int = setting(8, "transformations asked of the teacher per call")
    max_teacher_rounds: int = setting(6, "most rounds of teacher calls")
    max_calls: int | None = setting(None, "budget: most teacher calls", cli=True)
    max_tokens: int | None = setting(None, "budget: most teacher tokens", cli=True)
    anonymous: bool = setting(False, "show the teacher f0..fn instead of the column names", cli=True)
    temperature: float = setting(0.9, "the teacher's sampling temperature")
    teacher_timeout: float = setting(60.0, "seconds per teacher request (openai teacher)", cli=True)
    teacher_retries: int = setting(3, "retries of a teacher request that timed out, could not connect or got "
                                      "HTTP 429/5xx (openai teacher)", cli=True)
    teacher_fallback: Literal["fail", "explore"] = setting(
        "fail", "when the teacher fails for good: fail the run (default), or explore: go on with exploration "
                "(the golden step then counts as incomplete and the next run asks the teacher again)", cli=True)
    downstream_model: DownstreamModel = setting("rf", "downstream model: rf (RandomForest, the literature's) or et",
                                                cli=True, aliases=("--model-downstream",))
    max_search_rows: int | None = setting(None, "score candidates on a stratified sample of this many rows (large "
                                                "tables; 0: every row; the presets set it); the reported score uses "
                                                "every row", cli=True)
    search_trees: int | None = setting(None, "honest protocol: trees of the forest the search's cross-validation "
                                             "fits (None: the downstream model's 100; fewer is cheaper and noisier); "
                                             "the reported score always uses the full model", cli=True)
    max_tree_rows: int = setting(DEFAULT_MAX_TREE_ROWS, "rows each tree of the downstream forest draws (a bootstrap "
                                                        "sample) when it is fitted on more: bounds the time and "
                                                        "memory of the reported scores on large tables (0: no bound)",
                                 cli=True)
    max_length: int = setting(DEFAULT_MAX_LENGTH, "most tokens in a transformation")
    max_features: int = setting(DEFAULT_MAX_FEATURES, "most new features in a transformation")
    max_feature_length: int = setting(DEFAULT_MAX_FEATURE_LENGTH, "most tokens in one new feature")
    seed: int = setting(0, "random seed: the same seed and data give the same result", cli=True)
    split_seed: int = setting(0, "honest protocol: seed of the train/test split (and of the folds and validation "
                                 "rows drawn in the training split); 0 is the literature's split. Another seed "
                                 "gives another test split, to check a result on rows the first one did not "
                                 "hold (the paper protocol always uses 0)", cli=True)
    torch_threads: int = setting(1, "threads torch uses in the fit's steps (the local teacher, the latent model, "
                                    "the student, teaming): 1 gives the same numbers under any load and does not "
                                    "slow down when other work shares the cores; more can be faster on an idle "
                                    "machine (the latent model always uses 1)", cli=True)
    # the feature screen and the choice (featteam.screen, featteam.selection)
    screen: bool = setting(True, "screen thousands of single features cheaply (what each adds to a model of the "
                                 "original columns): exploration draws from the best, every mode's candidates are "
                                 "screened before they are scored, and the output is assembled from the best "
                                 "features of every mode", cli=True)
    screen_pool: int = setting(40, "screened features exploration draws from")
    max_selected_features: int = setting(24, "most new features in the chosen transformation (how many is "
                                             "decided by measurement, none included)", cli=True)
    validation_size: float = setting(0.2, "honest protocol: share of the training split held out of the search; "
                                          "the output is chosen on these rows alone, predicted out of fold (0, or a "
                                          "table too small to hold out 20 rows: on the search rows)",
                                     cli=True)
    choice_margin: float = setting(1.5, "honest protocol: standard errors by which the chosen transformation's "
                                        "gain over the original features must exceed zero on the rows the output "
                                        "is chosen on, else nothing is added (1.5 by default: on a few dozen "
                                        "validation rows a gain below that was as often a loss on new rows; 0: any "
                                        "positive gain, which adds features more often and hurts more often)",
                                   cli=True)
    refine_candidates: int = setting(0, "transformations a local search scores around the best finalist (drop "
                                        "one of its features or add one of the feature bank's, keep what raises "
                                        "the search score; its result joins the finalists); 0: none.  The paper "
                                        "preset scores 64 (on the test split, like every candidate there)",
                                     cli=True)
    # step 2: the latent model and its search
    search_top_k: int = setting(20, "golden examples the gradient search starts from")
    step_sizes: tuple[float, ...] = setting((1.0, 2.0, 3.0, 4.0, 5.0), "step sizes of the gradient search")
    beam: int = setting(5, "beam width of the decoders")
    latent_epochs: int = setting(200, "most training epochs of the latent model (early stopping may end it sooner)")
    latent_max_seconds: float = setting(3600.0, "safety stop: wall-clock limit of the latent model's training (a run "
                                                "it stops is reported as not reproducible)")
    # step 3: the student
    student_model: str | None = setting(None, "the student's base model (default: the embedded SmolLM2-135M)")
    student_lora: bool = setting(True, "fine-tune the student with LoRA (else fully)")
    student_pretraining: bool = setting(True, "start the student from its one-time pre-training on the expression "
                                              "language (trained once per base model and cached; `featteam prepare` "
                                              "runs it ahead of time)", cli=True)
    student_epochs: int = setting(4, "the student's fine-tuning epochs")
    student_max_steps: int | None = setting(None, "most optimizer steps of the student's fine-tuning (None: the "
                                                  "epochs decide)")
    student_max_seconds: float = setting(3600.0, "safety stop: wall-clock limit of the student's fine-tuning (a run "
                                                 "it stops is reported as not reproducible)")
    student_weighting: StudentWeighting = setting("rank", "weight golden examples by score rank (0.5-1.5) or not")
    student_samples: int = setting(64, "sequences sampled from the student")
    # step 4: teaming
    teaming_lambda: float = setting(DEFAULT_TEAMING_LAMBDA, "the ML decoder's weight in the teaming decoder")
    teaming_rule: TeamingRule = setting(DEFAULT_TEAMING_RULE, "product: p_ML^lambda * p_student^(1-lambda), "
                                                              "renormalised; linear: the mixture")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "step_sizes" and isinstance(value, list):
                object.__setattr__(self, "step_sizes", tuple(value))
                value = self.step_sizes
            _check_type(f.name, hints[f.name], value)
        positive = ("n_golden", "answers_per_call", "max_length", "max_features", "max_feature_length",
                    "search_top_k", "beam", "latent_epochs", "student_epochs", "student_samples", "screen_pool",
                    "max_selected_features", "torch_threads")
        for name in positive:
            if getattr(self, name) < 1:
                raise FeatteamError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("max_teacher_rounds", "refine_candidates"):
            if getattr(self, name) < 0:
                raise FeatteamError(f"{name} must not be negative")
        if not 0.0 < self.teacher_timeout < float("inf"):
            raise FeatteamError(f"teacher_timeout must be a positive number of seconds, not {self.teacher_timeout}")
        if self.teacher_retries < 0:
            raise FeatteamError(f"teacher_retries must not be negative, not {self.teacher_retries}")
        if self.max_search_rows is not None and self.max_search_rows < 0:
            raise FeatteamError("max_search_rows must be 0 (every row) or a number of rows")
        if self.max_tree_rows < 0:
            raise FeatteamError("max_tree_rows must be 0 (no bound) or a number of rows")
        for name in ("max_calls", "max_tokens", "student_max_steps", "search_trees"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise FeatteamError(f"{name} must be at least 1 when given")
        if not 0.0 <= self.choice_margin <= 10.0:
            raise FeatteamError(f"choice_margin must be between 0 and 10 standard errors, not {self.choice_margin}")
        if not 0.0 <= self.validation_size < 0.9:
            raise FeatteamError(f"validation_size must be at least 0 and below 0.9, not {self.validation_size}")
        for name in ("teacher_share", "teaming_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FeatteamError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if not self.step_sizes or any(s <= 0 for s in self.step_sizes):
            raise FeatteamError("step_sizes must be one or more positive numbers")
        for name in ("latent_max_seconds", "student_max_seconds"):
            if getattr(self, name) <= 0:
                raise FeatteamError(f"{name} must be positive")
        if self.temperature < 0:
            raise FeatteamError("temperature must not be negative")
        if self.max_length < 2 or self.max_feature_length < 2:
            raise FeatteamError("max_length and max_feature_length must be at least 2 (a column and an operator)")
        if not 0 <= self.seed < 2**32:  # numpy's and torch's seeds
            raise FeatteamError(f"seed must be an integer from 0 to 2**32 - 1, not {self.seed}")
        if not 0 <= self.split_seed < 2**32:
            raise FeatteamError(f"split_seed must be an integer from 0 to 2**32 - 1, not {self.split_seed}")
        if self.protocol == "paper" and self.split_seed != 0:
            raise FeatteamError("the paper protocol uses the literature's split (split_seed 0), "
                                f"not split_seed {self.split_seed}")

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides: Any) -> "FitConfig":
        """The preset's sizes with ``overrides`` on top (None values are ignored)."""
        if preset not in PRESETS:
            raise FeatteamError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise FeatteamError(f"unknown setting(s) {sorted(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{**values, "preset": preset})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FitConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self, *fields_: str) -> str:
        """A hash of the given settings (all when none are named)."""
        data = self.to_dict()
        if fields_:
            data = {k: data[k] for k in fields_}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_type(name: str, hint: Any, value: Any) -> None:
    """Refuse a value that does not fit the field's type (Literal choices included)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise FeatteamError(f"{name} must be one of {', '.join(map(repr, args))}, not {value!r}")
        return
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                _check_type(name, option, value)
                return
            except FeatteamError as exc:
                errors.append(str(exc))
        raise FeatteamError(errors[0] if errors else f"{name}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, tuple) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in value):
            raise FeatteamError(f"{name} must be a sequence of numbers, not {value!r}")
        return
    expected = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}.get(hint)
    if expected is None:
        return
    if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
        raise FeatteamError(f"{name} must be a {hint.__name__}, not {value!r}")
