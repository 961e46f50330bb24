"""``featteam bench``: featteam's modes against the original features, OpenFE, autofeat and MOAT's
published scores, on the field's suite, each configuration in its own process with a time limit."""

from .methods import FEATTEAM_MODES, METHODS, QUICK_DATASETS
from .runner import BenchConfig, run_bench

__all__ = ["BenchConfig", "FEATTEAM_MODES", "METHODS", "QUICK_DATASETS", "run_bench"]
