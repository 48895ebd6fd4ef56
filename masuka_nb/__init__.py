"""MASUKA: images, LoRAs and videos from a Colab notebook.

    import masuka_nb as mk
    mk.doctor()                                   # what this runtime can do
    result = mk.generate("a lighthouse at dawn")  # FLUX/SD3.5 on a GPU, tiny-flux on a CPU
    mk.app()                                      # the in-notebook app
    mk.read_recipe("found.png")                   # any image's recipe (A1111, ComfyUI, SwarmUI, Civitai…)

Importing this package loads no torch, diffusers, transformers or ipywidgets: every public name
below is resolved on first use (PEP 562), so the first cell of a notebook runs in milliseconds.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from masuka_nb._lazy import attach as _attach
from masuka_nb._version import __version__
from masuka_nb.quiet import hush_import_notices as _hush_import_notices

# Import-time notices of third-party libraries (bitsandbytes' CPU-kernel one) are printed by whichever
# MASUKA call first imports them: filtered from here on, and only those (masuka_nb.quiet says which).
_hush_import_notices()

# public name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "CancelToken": ("masuka_nb.progress", "CancelToken"),
    "CostEstimate": ("masuka_nb.video", "CostEstimate"),
    "GenerationResult": ("masuka_nb.image", "GenerationResult"),
    "ImageEngine": ("masuka_nb.image", "ImageEngine"),
    "MasukaError": ("masuka_nb.errors", "MasukaError"),
    "MemoryPlan": ("masuka_nb.memory", "MemoryPlan"),
    "ProgressEvent": ("masuka_nb.progress", "ProgressEvent"),
    "VideoGenerator": ("masuka_nb.video", "VideoGenerator"),
    "VideoJob": ("masuka_nb.video", "VideoJob"),
    "VideoResult": ("masuka_nb.video", "VideoResult"),
    "app": ("masuka_nb.ui", "app"),
    "batch": ("masuka_nb.creative.runner", "batch"),
    "configure": ("masuka_nb.config", "configure"),
    "doctor": ("masuka_nb.checkup", "doctor"),
    "edit": ("masuka_nb.image.edit", "edit"),
    "errors": ("masuka_nb.errors", None),
    "generate": ("masuka_nb.image", "generate"),
    "get_model": ("masuka_nb.models.registry", "get_model"),
    "get_secret": ("masuka_nb.secrets", "get_secret"),
    "grid": ("masuka_nb.creative.grids", "grid"),
    "history": ("masuka_nb.history", None),
    "jobs": ("masuka_nb.jobs", None),
    "list_models": ("masuka_nb.models.registry", "list_models"),
    "lora": ("masuka_nb.lora", None),
    "plan": ("masuka_nb.memory", "plan"),
    "presets": ("masuka_nb.creative.presets", None),
    "read_recipe": ("masuka_nb.image.recipes", "read_recipe"),
    "reproduce": ("masuka_nb.image", "reproduce"),
    "reset_configuration": ("masuka_nb.config", "reset_configuration"),
    "secrets": ("masuka_nb.secrets", None),
    "settings": ("masuka_nb.config", "settings"),
    "to_video": ("masuka_nb.creative.clips", "to_video"),
    "upscale": ("masuka_nb.image.upscaling", "upscale"),
}

# Literal (not computed) so linters and IDEs see it; a test keeps it equal to _LAZY.
__all__ = [
    "CancelToken",
    "CostEstimate",
    "GenerationResult",
    "ImageEngine",
    "MasukaError",
    "MemoryPlan",
    "ProgressEvent",
    "VideoGenerator",
    "VideoJob",
    "VideoResult",
    "__version__",
    "app",
    "batch",
    "configure",
    "doctor",
    "edit",
    "errors",
    "generate",
    "get_model",
    "get_secret",
    "grid",
    "history",
    "jobs",
    "list_models",
    "lora",
    "plan",
    "presets",
    "read_recipe",
    "reproduce",
    "reset_configuration",
    "secrets",
    "settings",
    "to_video",
    "upscale",
]


__getattr__, __dir__ = _attach(globals(), _LAZY)


if _TYPE_CHECKING:  # for editors and type checkers only: real imports stay lazy
    from masuka_nb import errors, history, jobs, lora, secrets
    from masuka_nb.checkup import doctor
    from masuka_nb.config import configure, reset_configuration, settings
    from masuka_nb.creative import presets
    from masuka_nb.creative.clips import to_video
    from masuka_nb.creative.grids import grid
    from masuka_nb.creative.runner import batch
    from masuka_nb.errors import MasukaError
    from masuka_nb.image import GenerationResult, ImageEngine, generate, reproduce
    from masuka_nb.image.edit import edit
    from masuka_nb.image.recipes import read_recipe
    from masuka_nb.image.upscaling import upscale
    from masuka_nb.memory import MemoryPlan, plan
    from masuka_nb.models.registry import get_model, list_models
    from masuka_nb.progress import CancelToken, ProgressEvent
    from masuka_nb.secrets import get_secret
    from masuka_nb.ui import app
    from masuka_nb.video import CostEstimate, VideoGenerator, VideoJob, VideoResult
