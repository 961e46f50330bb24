"""featteam: generative feature transformation by LLM-ML teaming.

Applying a saved transformation needs numpy, pandas and scikit-learn only;
torch, transformers and openai are imported by the steps that use them.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from .data import Dataset, load_dataset, load_table, prepare
from .errors import DataError, FeatteamError
from .expr import Transformation, TransformationError
from .transformer import FeatureTransformer

try:
    __version__ = _version("featteam")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = [
    "DataError", "Dataset", "FeatteamError", "FeatureTransformer", "Transformation", "TransformationError",
    "__version__", "load_dataset", "load_table", "prepare",
]
