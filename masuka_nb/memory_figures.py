"""Published memory figures, as data: the ones the planner is fitted to and the ones it is checked on.

Every figure names its public source and the date it was read. `role="fit"` figures determine a
calibration constant in `masuka_nb.memory` (each constant's comment names its figure); `role="held-out"`
figures are never used to fit anything: tests and benchmarks/bench_planner_heldout.py compare the
planner's estimates with them. Kinds:

- "peak" / "after_load" / "ram": a measured value (GB as the source reports it, i.e. GiB from torch)
  for the plan `choices` on `gpu`; peaks are bounded one-sidedly (estimate ≥ 95 % of the figure).
- "fits": a claim that the model runs within `value` GB of VRAM; the planner must find a plan that
  fits a GPU of that size (and not refuse what the publisher ran).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FIGURES", "PublishedFigure", "fitting", "held_out"]

QUANT_BLOG = "https://huggingface.co/blog/diffusers-quantization"
OFFLOAD_DOCS = "https://huggingface.co/docs/diffusers/main/en/optimization/memory"
WAN21 = "https://github.com/Wan-Video/Wan2.1"
KLEIN = "https://huggingface.co/black-forest-labs/FLUX.2-klein-4B"
ISI_DEV = "https://github.com/Isi-dev/Google-Colab_Notebooks/issues/42"
READ = "2026-12"


@dataclass(frozen=True)
class PublishedFigure:
    name: str
    model: str
    kind: str  # "peak" | "after_load" | "ram" | "fits"
    value: float
    role: str  # "fit" | "held-out"
    source: str
    choices: dict[str, Any] = field(default_factory=dict)
    gpu: str = "h100"
    read: str = READ
    note: str = ""

    @property
    def field(self) -> str:
        return {"peak": "peak_vram_gb", "after_load": "after_load_vram_gb", "ram": "ram_gb",
                "denoise_peak": "denoise_vram_gb"}.get(self.kind, "")


_GROUP = {"offload": "group", "free_text_encoders": False}
_DISK = {"offload": "group-to-disk", "free_text_encoders": False}

FIGURES: tuple[PublishedFigure, ...] = (
    # FLUX.1-dev, 1024², 50 steps, H100: the quantization-backends blog.
    PublishedFigure("flux1-dev bf16 after load", "flux1-dev", "after_load", 31.45, "fit", QUANT_BLOG),
    PublishedFigure("flux1-dev bf16 peak", "flux1-dev", "peak", 36.17, "fit", QUANT_BLOG),
    PublishedFigure("flux1-dev bnb NF4 after load", "flux1-dev", "after_load", 12.58, "fit", QUANT_BLOG,
                    {"quantization": "nf4"}),
    PublishedFigure("flux1-dev bnb NF4 peak", "flux1-dev", "peak", 17.28, "held-out", QUANT_BLOG,
                    {"quantization": "nf4"}),
    # FLUX.1-dev bf16: the diffusers offloading benchmark.
    PublishedFigure("flux1-dev no offload RAM", "flux1-dev", "ram", 1.8, "fit", OFFLOAD_DOCS, {"offload": "none"}),
    PublishedFigure("flux1-dev model offload RAM", "flux1-dev", "ram", 35.5, "fit", OFFLOAD_DOCS,
                    {"offload": "model"}, note="RAM holds every component: BASE_RAM + weights"),
    PublishedFigure("flux1-dev no offload GPU", "flux1-dev", "peak", 33.85, "held-out", OFFLOAD_DOCS,
                    {"offload": "none"}),
    PublishedFigure("flux1-dev model offload GPU", "flux1-dev", "peak", 22.64, "held-out", OFFLOAD_DOCS,
                    {"offload": "model"}),
    PublishedFigure("flux1-dev group offload GPU", "flux1-dev", "peak", 11.68, "held-out", OFFLOAD_DOCS, _GROUP),
    PublishedFigure("flux1-dev group offload RAM", "flux1-dev", "ram", 36.4, "held-out", OFFLOAD_DOCS, _GROUP),
    PublishedFigure("flux1-dev group offload to disk GPU", "flux1-dev", "peak", 11.68, "held-out", OFFLOAD_DOCS,
                    _DISK),
    PublishedFigure("flux1-dev group offload to disk RAM", "flux1-dev", "ram", 2.8, "held-out", OFFLOAD_DOCS, _DISK),
    # Wan 2.1 T2V 1.3B: "requires only 8.19 GB VRAM" (480p, 5 s, --offload_model True --t5_cpu, RTX 4090).
    # With T5 on the CPU the GPU never holds it, so the comparable estimate is the denoise-phase peak.
    PublishedFigure("wan2.1-t2v-1.3b 480p offloaded, T5 on CPU", "wan2.1-t2v-1.3b", "denoise_peak", 8.19,
                    "held-out", WAN21, {"offload": "model", "free_text_encoders": True}),
    # Claims of what fits (no measured peak): the planner must find a plan within that VRAM.
    PublishedFigure("flux2-klein fits in ~13 GB", "flux2-klein", "fits", 13.0, "held-out", KLEIN,
                    note="model card, Hardware: \"fits in ~13GB VRAM ... RTX 3090/4070 and above\""),
    PublishedFigure("wan2.2-ti2v-5b 81 frames at 480p on a T4", "wan2.2-ti2v-5b", "fits", 15.0, "held-out",
                    ISI_DEV, {"width": 832, "height": 480, "num_frames": 81}, gpu="t4",
                    note="a Colab notebook maintainer's report: ≈81 frames at 480p or 65 at 720p fit a T4"),
)


def fitting() -> list[PublishedFigure]:
    return [f for f in FIGURES if f.role == "fit"]


def held_out() -> list[PublishedFigure]:
    return [f for f in FIGURES if f.role == "held-out"]
