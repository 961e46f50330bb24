"""LLM backends behind one interface, a response cache, usage accounting and prompts.

Nothing here imports torch, transformers or openai at module level: each
backend imports its library when it is built.
"""

from .base import BudgetExhausted, LLMBackend, LLMError, Usage
from .cache import ResponseCache

__all__ = ["BudgetExhausted", "LLMBackend", "LLMError", "ResponseCache", "Usage"]
