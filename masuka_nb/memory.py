"""Memory planner: what to load, in which dtype, quantized or offloaded how, on this GPU — decided before loading.

`plan(model, gpu=..., ram_gb=...)` walks candidate plans from best quality/speed to lightest and returns
the first whose estimated peak VRAM and RAM fit the runtime, with the reasons. Estimates come from
component parameter counts (the registry) and the calibration constants below, which are checked
against the published measurements in ../shared/reference/memory.md by a test (±20 %).

Units: "GB" in plans are GiB (2³⁰ bytes), as torch and the published benchmarks report them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from masuka_nb.errors import InvalidRequestError, PlanDoesNotFitError

if TYPE_CHECKING:
    from masuka_nb.models.registry import ModelSpec
    from masuka_nb.runtime import GpuProfile

__all__ = ["OFFLOADS", "MemoryPlan", "candidates", "component_gb", "estimate", "lighter_plan", "plan"]

GIB = 1024**3
OFFLOADS = ("none", "model", "group", "group-to-disk")
QUANTIZATIONS = ("none", "nf4")
DTYPES = ("bfloat16", "float16", "float32")

# ---- calibration (see the reference table test) ----
BASE_RAM_GB = 1.8  # python + torch + CUDA libraries, measured with no offload
ACTIVATIONS_GB_1MP = 2.5  # FLUX transformer forward + VAE decode at 1024², batch 1
NF4_BYTES_PER_PARAM = {"transformer": 0.5625, "text_encoder": 0.61}  # ≈4.5 bit; embeddings stay 16 bit
# bitsandbytes pipelines measured ≈3 GiB above their weights after load (unquantized norms/embeddings
# in 16 bit, dequantisation workspace): both published bnb rows (NF4, 8-bit) show it.
QUANT_OVERHEAD_GB = 3.0
STREAM_BLOCKS = 2  # group offload with streams keeps the current and the prefetched block on the GPU
FIT_MARGIN = 0.92  # leave room for the CUDA context and fragmentation


@dataclass(frozen=True)
class MemoryPlan:
    """How a model runs on a runtime: the choices, the estimates, and why."""

    model: str
    profile: str
    device: str  # "cuda" | "cpu"
    dtype: str
    vae_dtype: str
    text_encoder_dtype: str
    quantization: str = "none"
    quantized_components: tuple[str, ...] = ()
    quantized_repo: str | None = None
    offload: str = "none"
    free_text_encoders: bool = False
    compile: bool = False
    first_block_cache: float | None = None
    vae_tiling: bool = False
    width: int = 1024
    height: int = 1024
    num_images: int = 1
    weights_gb: float = 0.0
    after_load_vram_gb: float = 0.0
    peak_vram_gb: float = 0.0
    ram_gb: float = 0.0  # steady state during generation
    load_ram_gb: float = 0.0  # while loading (weights pass through RAM)
    vram_available_gb: float = 0.0
    ram_available_gb: float = 0.0
    reasons: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        vram_ok = self.device != "cuda" or self.peak_vram_gb <= self.vram_available_gb * FIT_MARGIN
        return vram_ok and max(self.ram_gb, self.load_ram_gb) <= self.ram_available_gb * FIT_MARGIN

    @property
    def label(self) -> str:
        bits = [self.dtype]
        if self.quantization != "none":
            bits.append(f"{self.quantization}({'+'.join(self.quantized_components)})")
        if self.offload != "none":
            bits.append(f"offload={self.offload}")
        if self.free_text_encoders:
            bits.append("free-text-encoders")
        return f"{self.model} on {self.profile}: " + ", ".join(bits)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    def __repr__(self) -> str:
        lines = [
            f"MemoryPlan({self.label})",
            f"  loads        {self.model} on {self.device}; weights {self.weights_gb:.1f} GB",
            f"  dtype        transformer {self.dtype}, text encoders {self.text_encoder_dtype}, VAE {self.vae_dtype}",
            f"  quantized    {', '.join(self.quantized_components) or 'nothing'}"
            + (f" ({self.quantization}, from {self.quantized_repo or 'BitsAndBytesConfig at load'})"
               if self.quantization != "none" else ""),
            f"  offload      {self.offload}; text encoders "
            + ("freed after encoding" if self.free_text_encoders else "kept"),
            f"  peak VRAM    ≈{self.peak_vram_gb:.1f} GB of {self.vram_available_gb:.1f} GB"
            if self.device == "cuda" else "  peak VRAM    - (CPU)",
            f"  RAM          ≈{self.ram_gb:.1f} GB running, ≈{self.load_ram_gb:.1f} GB while loading, "
            f"of {self.ram_available_gb:.1f} GB",
            f"  fits         {'yes' if self.fits else 'NO'}",
        ]
        lines += [f"  why          {r}" for r in self.reasons]
        return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _this_machine() -> GpuProfile:
    """This machine as a profile. Its GPU and total RAM do not change while the process lives
    (a Colab runtime change restarts it), so it is looked at once."""
    from masuka_nb.runtime import detect

    return detect().as_profile()


def _profile(gpu: str | GpuProfile | None, ram_gb: float | None) -> GpuProfile:
    from masuka_nb.runtime import GpuProfile, profile

    if gpu is None:
        prof = _this_machine()
    elif isinstance(gpu, GpuProfile):
        prof = gpu
    else:
        prof = profile(str(gpu))
    if ram_gb is not None:
        if isinstance(ram_gb, bool) or not isinstance(ram_gb, (int, float)) or ram_gb <= 0:
            raise InvalidRequestError(f"`ram_gb` must be a positive number, not {ram_gb!r}.", argument="ram_gb",
                                      value=ram_gb, hint="e.g. ram_gb=12.7 for free Colab.")
        prof = replace(prof, ram_gb=float(ram_gb))
    return prof


def _bytes_per_param(dtype: str) -> float:
    return 4.0 if dtype == "float32" else 2.0


def component_gb(spec: ModelSpec, name: str, plan: MemoryPlan) -> float:
    """Size in GiB of component `name` under `plan` (its dtype, or NF4 when the plan quantizes it)."""
    return _component_gb(spec, name, plan)


def _component_gb(spec: ModelSpec, name: str, plan: MemoryPlan) -> float:
    comp = spec.component(name)
    if name in plan.quantized_components:
        per = NF4_BYTES_PER_PARAM.get(comp.role, 0.5625)
        return comp.params_b * 1e9 * per / GIB
    if comp.role == "vae":
        dtype = plan.vae_dtype
    elif comp.role == "text_encoder":
        dtype = plan.text_encoder_dtype
    else:
        dtype = plan.dtype
    gb = comp.params_b * 1e9 * _bytes_per_param(dtype) / GIB
    if dtype == "float16":
        gb += comp.fp16_extra_gb * 1e9 / GIB
    return gb


def _activations_gb(spec: ModelSpec, plan: MemoryPlan) -> float:
    pixels = plan.width * plan.height / 1024**2
    cfg = 2 if spec.supports_negative_prompt and spec.default_guidance > 1 else 1
    batch = 1 + 0.5 * (plan.num_images * cfg - 1)
    scale = (spec.component("transformer").params_b / 11.9) ** 0.5
    act = ACTIVATIONS_GB_1MP * pixels * batch * scale
    return act * (0.6 if plan.vae_tiling else 1.0)


def estimate(spec: ModelSpec, plan: MemoryPlan) -> MemoryPlan:
    """Fill in the plan's weight, peak-VRAM and RAM estimates."""
    sizes = {c.name: _component_gb(spec, c.name, plan) for c in spec.components}
    total = sum(sizes.values())
    transformer = sizes["transformer"]
    encoders = sum(sizes[c.name] for c in spec.text_encoders)
    others = total - transformer - encoders
    act = _activations_gb(spec, plan)
    overhead = QUANT_OVERHEAD_GB * min(1.0, transformer / 5.0) if plan.quantization != "none" else 0.0
    if plan.device != "cuda":
        ram = BASE_RAM_GB + total + act
        return replace(plan, weights_gb=total, after_load_vram_gb=0.0, peak_vram_gb=0.0, ram_gb=ram,
                       load_ram_gb=ram)
    blocks = spec.component("transformer").params_b * 1e9 * _bytes_per_param(plan.dtype) / GIB / 30
    if plan.offload == "none":
        resident = total if not plan.free_text_encoders else max(encoders + others, transformer + others)
        vram = resident + overhead + act
        ram = BASE_RAM_GB + (encoders if plan.free_text_encoders else 0.0)
    elif plan.offload == "model":
        # Components visit the GPU one at a time (each text encoder on its own).
        vram = max(sizes.values()) + overhead + act
        ram = BASE_RAM_GB + total
    elif plan.offload == "group":
        vram = encoders + others + STREAM_BLOCKS * blocks + overhead + act
        ram = BASE_RAM_GB + total
    else:  # group-to-disk: blocks come from local disk; RAM holds only what is in flight
        vram = encoders + others + STREAM_BLOCKS * blocks + overhead + act
        ram = BASE_RAM_GB + STREAM_BLOCKS * blocks
    if plan.free_text_encoders and plan.offload != "none":
        vram = max(vram - encoders, encoders + others)
    # Loading streams one shard (≤ ≈9.3 GiB) at a time through RAM before it reaches the GPU.
    load_ram = BASE_RAM_GB + min(max(sizes.values()), 9.3) + (ram - BASE_RAM_GB)
    return replace(plan, weights_gb=total, after_load_vram_gb=vram - act, peak_vram_gb=vram, ram_gb=ram,
                   load_ram_gb=load_ram)


def candidates(spec: ModelSpec, prof: GpuProfile, *, width: int = 1024, height: int = 1024,
               num_images: int = 1) -> list[MemoryPlan]:
    """Every plan MASUKA would consider for `spec` on `prof`, best first (estimated, fit or not)."""
    common = dict(model=spec.id, profile=prof.name, width=width, height=height, num_images=num_images,
                  vram_available_gb=prof.vram_gb, ram_available_gb=prof.ram_gb)
    if not prof.is_cuda:
        # Tiny models in float32 reproduce bit for bit; real ones in bf16 halve the RAM they need.
        dtype = "float32" if spec.tiny else "bfloat16"
        why = ("CPU: no GPU, so everything runs on the CPU in " + dtype
               + (" (tiny model: exact and fast)" if spec.tiny else " (half the RAM of float32; slow)"))
        return [estimate(spec, MemoryPlan(device="cpu", dtype=dtype, vae_dtype=dtype, text_encoder_dtype=dtype,
                                          reasons=(why,), **common))]
    dtype = "bfloat16" if prof.bf16 else "float16"
    cc = ".".join(map(str, prof.compute_capability or ()))
    dtype_why = (f"compute capability {cc} ≥ 8.0: bf16 in hardware" if prof.bf16 else
                 f"compute capability {cc} < 8.0: no bf16 hardware (emulated bf16 is ≈5× slower), so fp16")
    vae_dtype = dtype if prof.bf16 else "float32"
    te_dtype = dtype
    base = MemoryPlan(device="cuda", dtype=dtype, vae_dtype=vae_dtype, text_encoder_dtype=te_dtype,
                      vae_tiling=width * height > 1536 * 1536, **common)
    big = [c.name for c in spec.components if c.role != "vae" and c.params_b >= 1.0]
    nf4_repo = spec.quantized_repos.get("nf4")
    nf4 = dict(quantization="nf4", quantized_components=tuple(big), quantized_repo=nf4_repo)
    steps = [
        ({}, "everything on the GPU"),
        ({"free_text_encoders": True}, "text encoders freed after encoding"),
        ({**nf4}, "NF4 weights" + (f" pre-quantized in {nf4_repo}" if nf4_repo else "")),
        ({**nf4, "free_text_encoders": True}, "NF4 weights, text encoders freed after encoding"),
        ({"offload": "model"}, "whole components moved to the GPU in turn (model offload)"),
        ({**nf4, "offload": "model"}, "NF4 weights with model offload"),
        ({"offload": "group", "free_text_encoders": True}, "transformer streamed block by block (group offload)"),
        ({**nf4, "offload": "group-to-disk", "free_text_encoders": True},
         "NF4, group offload from local disk (little RAM)"),
        ({"offload": "group-to-disk", "free_text_encoders": True}, "group offload from local disk (little RAM)"),
    ]
    out = []
    for changes, why in steps:
        if spec.tiny and changes:
            continue  # tiny models always fit: no point quantizing a few MB
        if changes.get("quantization") and not big:
            continue
        reasons = [dtype_why, why]
        if vae_dtype == "float32":
            reasons.append("VAE decodes in fp32: fp16 VAE decodes can overflow, and it costs only ≈0.3 GB")
        p = estimate(spec, replace(base, reasons=tuple(reasons), **changes))
        out.append(p)
    return out


def plan(
    model: str,
    *,
    gpu: str | GpuProfile | None = None,
    ram_gb: float | None = None,
    dtype: str | None = None,
    quantization: str | None = None,
    offload: str | None = None,
    free_text_encoders: bool | None = None,
    compile: bool = False,
    first_block_cache: float | None = None,
    width: int | None = None,
    height: int | None = None,
    num_images: int = 1,
) -> MemoryPlan:
    """The plan for `model` on `gpu` (a profile name such as "t4", "l4", "a100-40", "h100", "cpu";
    None = this machine) with `ram_gb` of system RAM (None = the profile's).

    Each choice can be forced; a forced plan that does not fit raises `PlanDoesNotFitError` naming the
    nearest plan that does. Without overrides the best plan that fits is returned.
    """
    from masuka_nb.models.registry import get_model

    spec = get_model(model)
    prof = _profile(gpu, ram_gb)
    _check_choice("dtype", dtype, DTYPES)
    _check_choice("quantization", quantization, QUANTIZATIONS)
    _check_choice("offload", offload, OFFLOADS)
    w = width or spec.default_width
    h = height or spec.default_height
    cands = candidates(spec, prof, width=w, height=h, num_images=num_images)
    fitting = [c for c in cands if c.fits]
    forced = {k: v for k, v in dict(quantization=quantization, offload=offload,
                                    free_text_encoders=free_text_encoders).items() if v is not None}
    if forced or dtype:
        chosen = _forced(spec, cands, forced, dtype)
    else:
        chosen = fitting[0] if fitting else cands[-1]
    if not chosen.fits:
        raise _does_not_fit(spec, chosen, fitting)
    if compile:
        if chosen.device != "cuda" or chosen.offload in ("group", "group-to-disk"):
            raise InvalidRequestError("`compile` needs a CUDA GPU and no group offload.", argument="compile",
                                      value=compile, hint="Use compile=True on an A100/H100/L4 plan.")
        chosen = replace(chosen, compile=True, reasons=(*chosen.reasons,
                         "regional torch.compile of the repeated transformer blocks (opt-in)"))
    if first_block_cache is not None:
        if isinstance(first_block_cache, bool) or not isinstance(first_block_cache, (int, float)) \
                or not 0 < first_block_cache <= 0.5 or chosen.device != "cuda":
            raise InvalidRequestError("`first_block_cache` is a threshold in (0, 0.5] and needs a CUDA GPU.",
                                      argument="first_block_cache", value=first_block_cache,
                                      hint="0.08 gives ≈1.5× on FLUX-dev at a small quality cost; 0.12 ≈1.9×.")
        chosen = replace(chosen, first_block_cache=float(first_block_cache), reasons=(*chosen.reasons,
                         f"first-block cache at threshold {first_block_cache:g} (opt-in speed-up)"))
    elif chosen.device == "cuda" and prof.vram_gb >= 39 and not spec.tiny:
        chosen = replace(chosen, reasons=(*chosen.reasons,
                         "first-block cache available: plan(..., first_block_cache=0.08) for ≈1.5× speed"))
    return chosen


def _check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidRequestError(f"`{name}` cannot be {value!r}.", argument=name, value=value,
                                  hint=f"Use one of: {', '.join(allowed)} (or None to let MASUKA choose).")


def _forced(spec: ModelSpec, cands: list[MemoryPlan], forced: dict, dtype: str | None) -> MemoryPlan:
    template = cands[0]
    for c in cands:
        if all(getattr(c, k) == v for k, v in forced.items()):
            template = c
            break
    else:
        q = forced.get("quantization", template.quantization)
        nf4 = {"quantized_components": tuple(c.name for c in spec.components
                                             if c.role != "vae" and c.params_b >= 1.0)} if q == "nf4" else {}
        template = replace(template, **forced, **nf4)
    if dtype:
        template = replace(template, dtype=dtype, text_encoder_dtype=dtype,
                           vae_dtype="float32" if dtype == "float16" else dtype)
    return estimate(spec, replace(template, reasons=(*template.reasons, "choices forced by the caller")))


def _does_not_fit(spec: ModelSpec, chosen: MemoryPlan, fitting: list[MemoryPlan]) -> PlanDoesNotFitError:
    from masuka_nb.runtime import PROFILES

    if fitting:
        nearest = fitting[0].label
    else:
        elsewhere = []
        for prof in PROFILES.values():
            if not prof.is_cuda:
                continue
            ok = [c for c in candidates(spec, prof) if c.fits]
            if ok:
                elsewhere.append(ok[0])
        nearest = (elsewhere[0].label if elsewhere else "none") + \
            (f"; on this machine: tiny-{spec.family} (offline test model)" if not spec.tiny else "")
    forced = "choices forced by the caller" in chosen.reasons
    ram = max(chosen.ram_gb, chosen.load_ram_gb)
    if chosen.device == "cpu" and chosen.vram_available_gb <= 0:
        # No GPU here: VRAM figures and GPU plans say nothing useful; say what it would take, and where.
        gpu_plan = nearest.split(";")[0]
        return PlanDoesNotFitError(
            f"{spec.id} cannot run on this CPU-only machine: without a GPU it needs ≈{ram:.1f} GB RAM "
            f"({chosen.dtype}), and this machine has {chosen.ram_available_gb:.1f} GB (even with enough RAM, "
            "a real model on a CPU takes minutes per image).",
            argument="model", value=spec.id,
            hint=f"Use a GPU runtime (Colab: Runtime > Change runtime type > T4 GPU), where it runs as "
                 f"{gpu_plan}; or model='tiny-{spec.family}' to try the whole pipeline here (noise, labelled so)"
                 + ("; or drop the plan overrides." if forced else "."),
            nearest=nearest,
        )
    return PlanDoesNotFitError(
        f"{chosen.label} needs ≈{chosen.peak_vram_gb:.1f} GB VRAM and ≈{ram:.1f}"
        f" GB RAM; {chosen.profile} has {chosen.vram_available_gb:.1f} GB VRAM and "
        f"{chosen.ram_available_gb:.1f} GB RAM. Nearest plan that fits: {nearest}.",
        argument="plan",
        value=chosen.label,
        hint=("Let MASUKA choose (no overrides), use a smaller size, or a bigger runtime." if forced
              else "Use a smaller size or a bigger runtime."),
        nearest=nearest,
    )


def lighter_plan(current: MemoryPlan) -> MemoryPlan | None:
    """The next plan after `current` that needs less VRAM (the fallback after a CUDA out-of-memory)."""
    from masuka_nb.models.registry import get_model
    from masuka_nb.runtime import PROFILES, GpuProfile

    spec = get_model(current.model)
    prof = PROFILES.get(current.profile) or GpuProfile(current.profile, current.vram_available_gb,
                                                       current.ram_available_gb, (8, 0))
    prof = replace(prof, vram_gb=current.vram_available_gb, ram_gb=current.ram_available_gb)
    for cand in candidates(spec, prof, width=current.width, height=current.height, num_images=current.num_images):
        if cand.peak_vram_gb < current.peak_vram_gb * 0.9 and cand.fits:
            return replace(cand, reasons=(*cand.reasons, f"fallback after running out of memory with {current.label}"))
    return None
