"""The image engine: FLUX.1 / SD3.5 generation with memory plans, pipeline reuse, LoRAs and recipes.

    from masuka_nb.image import generate, reproduce, ImageEngine, GenerationResult

Light on import: the names below load their modules (and torch/diffusers) on first use.
Modules: request (validation), engine (pipelines kept between calls), generation, denoise, lora, metadata
(PNG parameters + JSON recipe), cache (result cache), grid, upscaling, shapes (layer shapes for LoRA checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from masuka_nb._lazy import attach

__all__ = ["GenerationResult", "ImageEngine", "LoraInfo", "LoraSpec", "default_engine", "generate", "make_grid",
           "reproduce", "upscale", "validate_lora"]

_LAZY = {
    "GenerationResult": "masuka_nb.image.generation",
    "generate": "masuka_nb.image.generation",
    "reproduce": "masuka_nb.image.replay",
    "ImageEngine": "masuka_nb.image.engine",
    "default_engine": "masuka_nb.image.engine",
    "make_grid": "masuka_nb.image.grid",
    "upscale": "masuka_nb.image.upscaling",
    "LoraInfo": "masuka_nb.image.lora",
    "LoraSpec": "masuka_nb.image.lora",
    "validate_lora": "masuka_nb.image.lora",
}


__getattr__, __dir__ = attach(globals(), _LAZY)



if TYPE_CHECKING:
    from masuka_nb.image.engine import ImageEngine, default_engine
    from masuka_nb.image.generation import GenerationResult, generate
    from masuka_nb.image.grid import make_grid
    from masuka_nb.image.lora import LoraInfo, LoraSpec, validate_lora
    from masuka_nb.image.replay import reproduce
    from masuka_nb.image.upscaling import upscale
