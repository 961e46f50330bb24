"""Small torch helpers: over transformers' causal LMs (shared by the local teacher and the
student), and torch's thread count for a block (every step of a fit)."""

from __future__ import annotations

from contextlib import contextmanager


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
    return output.logits[:, -1, :].float(), output_cache(output)


def output_cache(output):
    """The KV cache of a model output, read under the name this transformers uses (reading the
    old name in transformers 5 logs a deprecation warning in every fit)."""
    return getattr(output, cache_keyword(), None)


@contextmanager
def quiet_transformers():
    """transformers' progress bars ("Loading weights") and its warnings off inside the block, and
    put back as they were after it: they are not the user's business, and nothing global stays
    switched."""
    import warnings

    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            # peft asks transformers for is_gradient_checkpointing, deprecated in transformers 5.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def repeat_cache(cache, n: int):
    """The cache of one prompt repeated for a batch of ``n`` (the prompt is computed once)."""
    if n > 1:
        cache.batch_repeat_interleave(n)
    return cache


@contextmanager
def torch_threads(n: int):
    """torch on ``n`` threads for a block, and its thread count put back after it (nothing global
    stays switched).

    A fit runs its steps on ``FitConfig.torch_threads`` (1 by default): threads that sum in parts
    sum in an order that can depend on the load, and on a machine whose cores are busy with other
    work, threads wait on each other - a demo fit on this 2-core machine took 285 s on two threads
    against 69 s on one while the test suite ran beside it (46 s against 56 s idle)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
