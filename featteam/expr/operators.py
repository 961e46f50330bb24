"""The operator registry: the single source of every operator fact.

Each operator carries its arity, its text token, a protected numpy
implementation (defined for every finite real input, never producing inf or
NaN), whether it is stateful (fitted on training rows, re-applied to new
rows) and how it renders in infix.  Prompts, the grammar, the decoder
vocabulary and rendering all read :data:`OPERATORS`; adding an operator is
one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: Every intermediate value is clipped into [-BOUND, BOUND] so that no
#: composition of operators can overflow to inf (square of square of ...).
BOUND = 1e15
#: Smallest magnitude used as a divisor or a log argument.
EPS = 1e-12
#: Largest number of quantiles a fitted ``quan_trans`` keeps.
N_QUANTILES = 1000


def clip_finite(values: np.ndarray) -> np.ndarray:
    """Map NaN to 0 and clip everything into [-BOUND, BOUND]."""
    values = np.asarray(values, dtype=np.float64)
    return np.clip(np.nan_to_num(values, nan=0.0, posinf=BOUND, neginf=-BOUND), -BOUND, BOUND)


def _away_from_zero(x: np.ndarray) -> np.ndarray:
    """Replace values closer to 0 than EPS by +-EPS (keeping their sign, + for 0)."""
    return np.where(np.abs(x) < EPS, np.where(x < 0, -EPS, EPS), x)


# Stateless protected implementations -------------------------------------------------

def _sqrt(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.abs(x))


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.abs(x), EPS))


def _reciprocal(x: np.ndarray) -> np.ndarray:
    return 1.0 / _away_from_zero(x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Written with exp(-|x|) so that it never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a / _away_from_zero(b)


# Stateful operators: fit returns a JSON-able dict, apply uses it ----------------------

def _fit_standard(x: np.ndarray) -> dict[str, Any]:
    std = float(np.std(x))
    return {"mean": float(np.mean(x)), "std": std if std > 0 else 1.0}


def _apply_standard(x: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    return (x - state["mean"]) / state["std"]


def _fit_minmax(x: np.ndarray) -> dict[str, Any]:
    return {"min": float(np.min(x)), "max": float(np.max(x))}


def _apply_minmax(x: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    span = state["max"] - state["min"]
    if span <= 0:
        return np.zeros_like(x)
    return (x - state["min"]) / span * 2.0 - 1.0  # range -1..1, as in MOAT


def _fit_quantile(x: np.ndarray) -> dict[str, Any]:
    n_quantiles = int(max(2, min(N_QUANTILES, x.size)))
    references = np.linspace(0.0, 1.0, n_quantiles)
    quantiles = np.quantile(x, references)
    return {"quantiles": quantiles.tolist()}


def _apply_quantile(x: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    quantiles = np.asarray(state["quantiles"], dtype=np.float64)
    references = np.linspace(0.0, 1.0, quantiles.size)
    # Interpolating both ways and averaging handles repeated quantiles
    # the way scikit-learn's QuantileTransformer does.
    forward = np.interp(x, quantiles, references)
    backward = -np.interp(-x, -quantiles[::-1], -references[::-1])
    return 0.5 * (forward + backward)


@dataclass(frozen=True)
class Operator:
    """One operator of the expression language.

    Parameters
    ----------
    token : str
        The text token, used in postfix sequences, prompts and the vocabulary.
    arity : int
        1 (unary) or 2 (binary).
    function : callable
        Protected numpy implementation for stateless operators.
    infix : str
        Format of the rendered infix text, ``{0}`` (and ``{1}``) for operands.
    fit, apply : callable, optional
        For stateful operators: ``fit(train_values) -> state`` and
        ``apply(values, state) -> values``.
    domain : str
        The protection used, in words (for documentation and prompts).
    ordered : bool
        For a binary operator: whether swapping its operands makes another feature to a
        tree model.  ``a + b`` and ``a * b`` commute, and ``b - a`` is ``-(a - b)``, the same
        splits; ``a / b`` and ``b / a`` differ.
    """

    token: str
    arity: int
    infix: str
    domain: str
    ordered: bool = True
    function: Callable[..., np.ndarray] | None = None
    fit: Callable[[np.ndarray], dict[str, Any]] | None = None
    apply: Callable[[np.ndarray, dict[str, Any]], np.ndarray] | None = None

    @property
    def stateful(self) -> bool:
        return self.fit is not None

    def render(self, *operands: str) -> str:
        return self.infix.format(*operands)


def _unary(token: str, function: Callable[[np.ndarray], np.ndarray], domain: str = "all reals") -> Operator:
    return Operator(token=token, arity=1, infix=token + "({0})", function=function, domain=domain)


def _stateful(token: str, fit: Callable, apply: Callable, domain: str) -> Operator:
    return Operator(token=token, arity=1, infix=token + "({0})", domain=domain, fit=fit, apply=apply)


def _binary(token: str, function: Callable[[np.ndarray, np.ndarray], np.ndarray], domain: str = "all reals",
            ordered: bool = True) -> Operator:
    return Operator(token=token, arity=2, infix="({0} " + token + " {1})", function=function, domain=domain,
                    ordered=ordered)


_ALL = [
    _unary("sqrt", _sqrt, "sqrt(|x|)"),
    _unary("square", np.square),
    _unary("sin", np.sin),
    _unary("cos", np.cos),
    _unary("tanh", np.tanh),
    _stateful("stand_scaler", _fit_standard, _apply_standard, "(x - mean) / std, fitted on training rows"),
    _stateful("minmax_scaler", _fit_minmax, _apply_minmax, "to -1..1 by training min and max"),
    _stateful("quan_trans", _fit_quantile, _apply_quantile, "training-row quantile rank in 0..1"),
    _unary("sigmoid", _sigmoid),
    _unary("log", _log, "log(max(|x|, 1e-12))"),
    _unary("reciprocal", _reciprocal, "1 / x, with |x| floored at 1e-12"),
    _unary("cube", lambda x: x * x * x),
    _binary("+", np.add, ordered=False),
    _binary("-", np.subtract, ordered=False),
    _binary("*", np.multiply, ordered=False),
    _binary("/", _divide, "a / b, with |b| floored at 1e-12"),
]

#: token -> Operator, in the canonical order (12 unary, then 4 binary).
OPERATORS: dict[str, Operator] = {op.token: op for op in _ALL}
UNARY: tuple[str, ...] = tuple(t for t, op in OPERATORS.items() if op.arity == 1)
BINARY: tuple[str, ...] = tuple(t for t, op in OPERATORS.items() if op.arity == 2)


def apply_stateless(op: Operator, *operands: np.ndarray) -> np.ndarray:
    """Apply a stateless operator with overflow guarded; the result is finite."""
    with np.errstate(all="ignore"):
        return clip_finite(op.function(*operands))


def fit_apply_stateful(op: Operator, values: np.ndarray, state: dict[str, Any] | None,
                       fit_rows: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply a stateful operator, fitting its state first when ``state`` is None.

    ``fit_rows`` (a boolean or index mask) selects the rows the state is
    fitted on; by default all of ``values``.
    """
    if state is None:
        train = values if fit_rows is None else values[fit_rows]
        if train.size == 0:
            raise ValueError(f"cannot fit {op.token} on zero rows")
        with np.errstate(all="ignore"):
            state = op.fit(train)
    with np.errstate(all="ignore"):
        return clip_finite(op.apply(values, state)), state
