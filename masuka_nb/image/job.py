"""One unit of local work as one object: `GenerationJob` carries what a call asked for (the loose arguments,
kept for validation), what the run pipeline decides (model spec, validated request, seeds, LoRAs, memory
plan, recipe) and what the run produces along the way (timings, warnings, the plan it ended on), instead of a
dozen loose arguments threaded through each layer. Every local task uses it: text-to-image, batch and grid
items, edits, fills, tile refines and local video (`masuka_nb.image.pipeline` runs it).

This module sits under the pipeline and the tasks and imports none of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from masuka_nb.image.request import GenerationRequest
    from masuka_nb.memory import MemoryPlan
    from masuka_nb.progress import CancelToken, ProgressCallback

__all__ = ["GenerationJob", "PromptCache"]


class PromptCache:
    """Prompt embeddings kept across the items of a batch or grid: a prompt that repeats is encoded once.

    Keyed by everything the encoding depends on (model, prompt, negative prompt, images per prompt).
    Tensors stay on the device the text encoders ran on; `hits` counts reuses (tests read it).
    """

    def __init__(self, *, limit: int = 64) -> None:
        self.limit = limit
        self.hits = 0
        self._store: dict[tuple, dict[str, Any]] = {}

    def get(self, key: tuple) -> dict[str, Any] | None:
        found = self._store.get(key)
        if found is not None:
            self.hits += 1
        return found

    def put(self, key: tuple, embeds: dict[str, Any]) -> None:
        if len(self._store) >= self.limit:  # oldest first: a batch walks its prompts in order
            self._store.pop(next(iter(self._store)))
        self._store[key] = embeds

    def clear(self) -> None:
        self._store.clear()


@dataclass
class GenerationJob:
    """Everything one call needs and records. Filled by `pipeline.prepare`, run by `pipeline.execute`."""

    engine: Any
    prompt: Any
    args: dict[str, Any] = field(default_factory=dict)  # the call's own arguments, checked by the task
    model_arg: Any = None  # the `model` argument as given (None: the task's default)
    plan_arg: Any = None  # the `plan` argument as given (a MemoryPlan, a dict of choices, or None)
    recipe_extra: dict[str, Any] | None = None  # carried into the recipe (a batch's id, presets, an upscale)
    task: Any = None  # the pipeline.Task running it
    note: str | None = None  # why the model was chosen for the user ("model auto: ...")
    model: str = ""  # the resolved model id once known (failures are recorded under it)
    spec: Any = None
    request: GenerationRequest | None = None
    seeds: list[int] = field(default_factory=list)
    loras: list[Any] = field(default_factory=list)  # resolved LoRAs (image.lora.ResolvedLora)
    plan: MemoryPlan | None = None
    plan_overrides: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    progress: ProgressCallback | bool | None = None
    cancel: CancelToken | None = None
    previews: bool = False
    save: bool = True
    use_cache: bool = True
    prompt_cache: PromptCache | None = None  # shared by the items of a batch; None: encode inside the pipeline
    record: bool = True  # False: the caller (a grid, a tiled upscale) records one entry for the whole of it
    stage: str = ""  # the progress stage name ("": the task's own; a batch reports one stage over all items)
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
