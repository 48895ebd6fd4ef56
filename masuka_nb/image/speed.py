"""Speed mode: what `plan(..., speed="fast")` turns on, applied to a loaded pipeline in one place.

A first-block cache (`diffusers.hooks.apply_first_block_cache`): each step runs the transformer's first
block, and when its output changed less than the threshold since the step before, the remaining blocks
are skipped and their cached residual reused. Regional compilation (`compile_repeated_blocks`) where the
plan says the GPU gains from it. Both are recorded in the plan (and so in every recipe).

`count_full_passes(pipe)` counts the transformer passes that ran every block: what the benchmark and
the tests read to see how many the cache saved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from masuka_nb.log import get_logger

__all__ = ["PassCount", "apply_speed", "count_full_passes", "denoisers"]

log = get_logger(__name__)


def denoisers(pipe: Any) -> list[Any]:
    """The pipeline's denoising transformers (Wan 2.2 A14B has two)."""
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def apply_speed(pipe: Any, plan: Any) -> None:
    """Apply the plan's speed choices to a loaded pipeline (nothing when speed is off)."""
    if plan.first_block_cache:
        from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache

        wrap = not _pipeline_sets_cache_context(pipe)
        for model in denoisers(pipe):
            if _block_count(model) < 2:  # the cache needs a first block and at least one to skip (tiny-sd3)
                log.warning("speed.first_block_cache_skipped", model=type(model).__name__, reason="one block")
                continue
            apply_first_block_cache(model, FirstBlockCacheConfig(threshold=float(plan.first_block_cache)))
            if wrap:
                _in_cache_context(model)
        log.info("speed.first_block_cache", threshold=plan.first_block_cache, wrapped=wrap)
    if plan.compile:
        for model in denoisers(pipe):
            model.compile_repeated_blocks(fullgraph=True)
        log.info("speed.regional_compile")


def _block_count(model: Any) -> int:
    return sum(len(getattr(model, n, None) or ()) for n in ("transformer_blocks", "single_transformer_blocks", "blocks"))


def _pipeline_sets_cache_context(pipe: Any) -> bool:
    """Whether the pipeline names each denoiser call (`transformer.cache_context("cond")`), as the cache
    hooks need. FluxPipeline, Flux2KleinPipeline and the Wan pipelines do; Kontext, Fill and SD3 do not."""
    import inspect

    try:
        return "cache_context" in inspect.getsource(type(pipe).__call__)
    except (OSError, TypeError):
        return False


def _in_cache_context(model: Any) -> None:
    """Run each call of `model` inside `cache_context("cond")`: these pipelines make one denoiser call per
    step (CFG, when any, is batched into it), which is exactly the "cond" branch of the pipelines that do."""
    forward = model.forward

    def forward_in_context(*args: Any, **kwargs: Any) -> Any:
        with model.cache_context("cond"):
            return forward(*args, **kwargs)

    model.forward = forward_in_context


@dataclass
class PassCount:
    calls: int = 0  # transformer forward calls (one per step, per CFG branch)
    full: int = 0  # of which ran every block

    @property
    def saved(self) -> int:
        return self.calls - self.full


def _inside_last_block(model: Any) -> Any:
    """A submodule of the last transformer block. The cache hook stands in for the block's `forward`,
    so the block itself is still *called* when skipped; its children run only when it really computes."""
    for name in ("single_transformer_blocks", "transformer_blocks", "blocks"):
        blocks = getattr(model, name, None)
        if blocks is not None and len(blocks):
            return next(blocks[-1].children())
    raise ValueError(f"{type(model).__name__} has no transformer blocks to count")


@contextlib.contextmanager
def count_full_passes(pipe: Any) -> Iterator[PassCount]:
    """Count transformer calls and the calls that reached the last block (the cache skips it)."""
    count = PassCount()
    handles = []
    for model in denoisers(pipe):
        def on_call(module, args, kwargs, _c=count):
            _c.calls += 1

        def on_last(module, args, _c=count):
            _c.full += 1

        handles.append(model.register_forward_pre_hook(on_call, with_kwargs=True))
        handles.append(_inside_last_block(model).register_forward_pre_hook(on_last))
    try:
        yield count
    finally:
        for h in handles:
            h.remove()
