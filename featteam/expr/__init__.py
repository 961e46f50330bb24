"""The expression core: numpy, pandas and scikit-learn only - what a deployed model needs."""

from .grammar import Grammar, GrammarState
from .imputation import fill_missing, fit_medians
from .operators import BINARY, OPERATORS, UNARY, Operator
from .program import check_values, evaluate
from .sequence import (
    DEFAULT_MAX_FEATURES,
    DEFAULT_MAX_LENGTH,
    MAX_NESTING,
    MAX_TEXT_LENGTH,
    ErrorKind,
    InvalidSequence,
    canonical_key,
    check_structure,
    join_features,
    next_depth,
    parse,
    parse_infix,
    parse_postfix,
    render,
    render_feature,
    split_features,
    stack_depths,
    to_postfix_text,
)
from .transformation import Transformation, TransformationError, output_names
from .vocab import EOS, PAD, SEP, SOS, Vocabulary, feature_index, feature_token, token_text

__all__ = [
    "BINARY", "DEFAULT_MAX_FEATURES", "DEFAULT_MAX_LENGTH", "EOS", "ErrorKind", "Grammar", "GrammarState",
    "InvalidSequence", "MAX_NESTING", "MAX_TEXT_LENGTH", "OPERATORS", "Operator", "PAD", "SEP", "SOS",
    "Transformation", "TransformationError", "UNARY", "Vocabulary", "canonical_key", "check_structure",
    "check_values", "evaluate", "feature_index", "feature_token", "fill_missing", "fit_medians", "join_features",
    "next_depth", "output_names", "parse", "parse_infix", "parse_postfix", "render", "render_feature",
    "split_features", "stack_depths", "to_postfix_text", "token_text",
]
