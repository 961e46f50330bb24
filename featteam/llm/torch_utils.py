"""Small helpers over transformers' causal LMs shared by the local teacher and the student."""

from __future__ import annotations


def cache_keyword() -> str:
    """The keyword transformers takes a KV cache by (renamed in transformers 5)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    # transformers 5 renamed past_key_values to cache.
    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def lm_step(lm, input_ids, cache=None, attention_mask=None):
    """One forward pass with a KV cache; returns (logits of the last position, cache)."""
    kwargs = {"input_ids": input_ids, "use_cache": True}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if cache is not None:
        kwargs[cache_keyword()] = cache
    output = lm(**kwargs)
    new_cache = getattr(output, "cache", None)
    if new_cache is None:
        new_cache = output.past_key_values
    return output.logits[:, -1, :].float(), new_cache


def repeat_cache(cache, n: int):
    """The cache of one prompt repeated for a batch of ``n`` (the prompt is computed once)."""
    if n > 1:
        cache.batch_repeat_interleave(n)
    return cache
