"""Memory planner: what to load, in which dtype, quantized or offloaded how, on this GPU — decided before loading.

`plan(model, gpu=..., ram_gb=...)` walks candidate plans from best quality/speed to lightest and returns
the first whose estimated peak VRAM and RAM fit the runtime, with the reasons. Estimates come from
what each component's weights are made of (the registry, measured from the real configs: NF4 shrinks only
the quantizable Linear weights; T5's `wo` stays fp32 under fp16; embeddings stay 16-bit), from where each
component lives in each phase (loading, encoding, denoising) and the calibration constants below.
RAM while loading follows the plan's `loading` contract ("per-component": one component at a time,
straight to its home), which the engine honours. Each constant is
fitted to the published figures marked "fit" in `masuka_nb.memory_figures`; the figures marked
"held-out" are never used for fitting, only for checking (tests and benchmarks/bench_planner_heldout.py).
Peak VRAM is bounded one-sidedly: never more than 5 % under a published peak (an under-estimate
crashes a Colab runtime; an over-estimate only picks a lighter plan).

`speed="fast"` adds a first-block cache (diffusers.hooks) and, on GPUs that gain from it, regional
compilation; the plan's words say what it trades (see SPEED_FAST).

Units: "GB" in plans are GiB (2³⁰ bytes), as torch and the published benchmarks report them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from masuka_nb.errors import InvalidRequestError, PlanDoesNotFitError
from masuka_nb.host import device_host
from masuka_nb.memory_figures import FIGURES
from masuka_nb.models.registry import get_model
from masuka_nb.runtime import PROFILES, GpuProfile, profile

if TYPE_CHECKING:
    from masuka_nb.models.registry import ModelSpec
    from masuka_nb.runtime import GpuProfile

__all__ = ["OFFLOADS", "SPEEDS", "MemoryPlan", "candidates", "component_gb", "estimate", "lighter_plan", "plan"]

GIB = 1024**3
OFFLOADS = ("none", "model", "group", "group-to-disk")
QUANTIZATIONS = ("none", "nf4")
DTYPES = ("bfloat16", "float16", "float32")
SPEEDS = ("off", "fast")
# speed="fast": first-block cache at this residual-change threshold (diffusers.hooks.FirstBlockCacheConfig).
FAST_CACHE_THRESHOLD = 0.08
SPEED_FAST = ("first-block cache at 0.08: ≈1.55× on FLUX.1-dev 1024²/28 steps (L40; 0.12 gives ≈1.9×) with a small "
              "loss of fine detail, per https://github.com/chengzeyi/ParaAttention (\"up to 2x\") and the diffusers "
              "cache docs https://huggingface.co/docs/diffusers/main/en/optimization/cache (figures read 2026-12)")
SPEED_COMPILE = ("regional torch.compile of the repeated blocks: full-compile speed with 8–10× less compile time, "
                 "https://docs.pytorch.org/tutorials/recipes/regional_compilation.html (read 2026-12)")

# ---- calibration: each constant names the "fit" figure(s) of memory_figures.py it comes from ----
BASE_RAM_GB = 1.8  # python + torch + CUDA libraries: fit "flux1-dev no offload RAM" (1.8 GB)
# FLUX transformer forward + VAE decode at 1024², batch 1: fit "flux1-dev bf16 peak" − "bf16 after load"
# (36.17 − 31.45 GB, quantization-backends blog). It was 2.5, which under-estimated NF4 peaks by 14 %.
ACTIVATIONS_GB_1MP = 4.7
# Video: Wan's VAE decodes one latent frame (4 video frames) at a time, so the decode peak scales with
# 4 frames' pixels, not the clip's; the transformer's own activations grow with its tokens.
VIDEO_DECODE_FRAMES = 4
VIDEO_TOKEN_GB_PER_1K = 0.03  # bf16 q/k/v/out + FFN intermediates of a 1.3B DiT per 1,000 tokens
# NF4 (bitsandbytes 4-bit, no double quantization): 4 bits per weight + one fp32 absmax per 64 weights. Only
# a component's `nf4_b` (quantizable Linear weights) shrinks; embeddings, norms and the modules the loaders keep
# (T5's `wo`, in fp32 under fp16) stay as they are (registry.ComponentSpec, measured from the real configs).
NF4_BYTES_PER_PARAM = 0.5 + 4 / 64
# bitsandbytes pipelines measured above their weights after load (dequantisation workspace, CUDA context):
# fit "flux1-dev bnb NF4 after load" (12.58 GB, bf16, H100) minus that pipeline's real weights, 10.65 GiB
# (transformer NF4 6.24 + T5 NF4 4.02 + CLIP-L 0.23 + VAE 0.16), over its 10.26 GiB of NF4-quantized
# components. Counted per GiB of NF4 components *on the GPU at the time*, so a plan that frees the NF4 text
# encoder before denoising carries only the transformer's share. (Before the real NF4 rules it was 3.0 GB
# over 8.94 GiB: the text encoder's unquantized `wo` and embeddings were counted as overhead.)
QUANT_OVERHEAD_GB = 12.58 - 10.65
QUANT_OVERHEAD_PER_NF4_GB = QUANT_OVERHEAD_GB / 10.26
# Text encoders' own activations are small (T5-XXL over 512 tokens: tens of MB per layer); this bounds them
# with the cuBLAS workspace, so the encode phase of a freed-encoder plan is weights + this.
ENCODE_ACT_GB = 0.5
# Loading: safetensors files are memory-mapped (file-backed pages the kernel can drop, not the RAM a process
# is killed for); what a load really allocates is each tensor cast to the plan's dtype on its way to its
# device. transformers 5 casts with up to 4 worker threads, so the biggest tensor plus three ordinary ones.
LOAD_WINDOW_B = 0.2
# Components this big are worth NF4; smaller ones (Wan 2.1's 1.3B transformer) lose more quality than
# they save memory, so they stay in 16 bit.
NF4_MIN_PARAMS_B = 2.0
STREAM_BLOCKS = 2  # group offload with streams keeps the current and the prefetched block on the GPU
FIT_MARGIN = 0.92  # leave room for the CUDA context and fragmentation


@dataclass(frozen=True)
class MemoryPlan:
    """How a model runs on a runtime: the choices, the estimates, and why."""

    model: str
    profile: str
    device: str  # "cuda" | "cpu" | "mps"
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
    num_frames: int = 0  # video models: frames per clip
    speed: str = "off"
    # How the weights get to their devices (the engine does what this says):
    # "per-component": each component is read by itself (`from_pretrained(subfolder=...)`, low_cpu_mem_usage,
    #   memory-mapped safetensors) straight onto its home: the GPU (NF4 components quantized on arrival) or RAM
    #   (model/group offload; text encoders a plan frees). Freed text encoders are read first, and leave the
    #   GPU for RAM before the transformer is read, so the two never share the GPU. RAM then peaks at the
    #   RAM-resident components plus the tensors being cast (`load_ram_gb`).
    # "pipeline": one `Pipeline.from_pretrained` into RAM, then placed (CPU plans: everything lives in RAM).
    loading: str = "per-component"
    weights_gb: float = 0.0
    after_load_vram_gb: float = 0.0
    peak_vram_gb: float = 0.0
    denoise_vram_gb: float = 0.0  # peak once the prompt is encoded (what a run with CPU text encoders sees)
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
        if self.speed != "off":
            bits.append(f"speed={self.speed}")
        if self.num_frames:
            bits.append(f"{self.num_frames} frames at {self.width}×{self.height}")
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
            f"  speed        {self.speed}"
            + (f" (first-block cache {self.first_block_cache:g}" + (", regional compile" if self.compile else "") + ")"
               if self.first_block_cache else ""),
            f"  peak VRAM    ≈{self.peak_vram_gb:.1f} GB of {self.vram_available_gb:.1f} GB"
            if self.device == "cuda" else "  peak VRAM    - (CPU)",
            f"  RAM          ≈{self.ram_gb:.1f} GB running, ≈{self.load_ram_gb:.1f} GB while loading, "
            f"of {self.ram_available_gb:.1f} GB",
            f"  fits         {'yes' if self.fits else 'NO'}",
        ]
        lines += [f"  why          {r}" for r in self.reasons]
        lines += [f"  published    {line}" for line in self.published()]
        return "\n".join(lines)

    def published(self) -> list[str]:
        """The published figures for this model (memory_figures.py), to read the estimates against."""
        unit = {"fits": "fits in"}
        return [f"{f.name}: {unit.get(f.kind, '')}{' ' if f.kind in unit else ''}{f.value:g} GB "
                f"({f.role}, {f.source}, read {f.read})" for f in FIGURES if f.model == self.model]


def _profile(gpu: str | GpuProfile | None, ram_gb: float | None, *, model: str | None = None) -> GpuProfile:
    """The profile a plan is made for. None: this machine as the device host sees it now, its memory less
    what stays resident (what `model` itself holds is not subtracted: it is reused or replaced)."""
    if gpu is None:
        prof = device_host().planning_profile(model)
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
    dtype = _dtype_of(comp, plan)
    per = _bytes_per_param(dtype)
    fp32 = comp.fp32_b if dtype == "float16" else comp.fp32_bf16_b if dtype == "bfloat16" else 0.0
    nf4 = comp.nf4_b if name in plan.quantized_components else 0.0
    rest = comp.params_b - nf4 - fp32
    return (nf4 * NF4_BYTES_PER_PARAM + fp32 * 4.0 + rest * per) * 1e9 / GIB


def _dtype_of(comp, plan: MemoryPlan) -> str:
    if comp.role == "vae":
        return plan.vae_dtype
    if comp.role == "text_encoder":
        return plan.text_encoder_dtype
    return plan.dtype


def _window_gb(comp, plan: MemoryPlan) -> float:
    """RAM one component's read allocates at once: its biggest tensor(s) being cast (see LOAD_WINDOW_B)."""
    return min(comp.params_b, comp.largest_b + LOAD_WINDOW_B) * 1e9 * _bytes_per_param(_dtype_of(comp, plan)) / GIB


def _loading_peak_gb(spec: ModelSpec, plan: MemoryPlan, sizes: dict[str, float]) -> float:
    """RAM (above BASE_RAM_GB) while a "per-component" plan loads: components are read one at a time, freed
    text encoders first; each read costs its cast window, and a component whose home is RAM stays there
    (NF4 ones are quantized on the GPU as they arrive and then parked, so they never hold both)."""
    def home_is_ram(comp) -> bool:
        if plan.offload in ("model", "group"):
            return True
        return plan.free_text_encoders and comp.role == "text_encoder"

    order = sorted(spec.components, key=lambda c: not (plan.free_text_encoders and c.role == "text_encoder"))
    resident = peak = 0.0
    for comp in order:
        stays = sizes[comp.name] if home_is_ram(comp) else 0.0
        passes = sizes[comp.name] if (plan.offload == "group-to-disk" and comp.role == "transformer") else 0.0
        # group-to-disk: diffusers writes the groups to disk from a model already in RAM, so it passes once
        peak = max(peak, resident + max(_window_gb(comp, plan), stays, passes))
        resident += stays
    if plan.offload == "group-to-disk":
        resident += STREAM_BLOCKS * spec.component("transformer").params_b * 1e9 * _bytes_per_param(plan.dtype) \
            / GIB / 30
    return max(peak, resident)


def _activations_gb(spec: ModelSpec, plan: MemoryPlan) -> float:
    pixels = plan.width * plan.height / 1024**2
    if spec.is_video:
        frames = max(plan.num_frames, 1)
        spatial = 8 * 2 * (2 if spec.size_multiple == 32 else 1)  # VAE × patch (Wan 2.2's VAE is 16×)
        tokens = ((frames - 1) // 4 + 1) * (plan.width // spatial) * (plan.height // spatial)
        scale = (spec.component("transformer").params_b / 1.3) ** 0.5
        decode = ACTIVATIONS_GB_1MP * pixels * min(frames, VIDEO_DECODE_FRAMES)
        return decode + VIDEO_TOKEN_GB_PER_1K * tokens / 1000 * scale * plan.num_images
    cfg = 2 if spec.supports_negative_prompt and spec.default_guidance > 1 else 1
    batch = 1 + 0.5 * (plan.num_images * cfg - 1)
    scale = (spec.component("transformer").params_b / 11.9) ** 0.5
    act = ACTIVATIONS_GB_1MP * pixels * batch * scale
    return act * (0.6 if plan.vae_tiling else 1.0)


def estimate(spec: ModelSpec, plan: MemoryPlan) -> MemoryPlan:
    """Fill in the plan's weight, peak-VRAM and RAM estimates (what is where in each phase: loading,
    encoding the prompt, denoising and decoding)."""
    sizes = {c.name: _component_gb(spec, c.name, plan) for c in spec.components}
    total = sum(sizes.values())
    transformer = sizes["transformer"]
    encoders = sum(sizes[c.name] for c in spec.text_encoders)
    others = total - transformer - encoders
    act = _activations_gb(spec, plan)
    nf4 = {name: sizes[name] for name in plan.quantized_components if name in sizes}
    nf4_encoders = sum(gb for name, gb in nf4.items() if name != "transformer")
    ov_transformer = QUANT_OVERHEAD_PER_NF4_GB * nf4.get("transformer", 0.0)
    ov_encoders = QUANT_OVERHEAD_PER_NF4_GB * nf4_encoders
    overhead = ov_transformer + ov_encoders
    if plan.device != "cuda":
        ram = BASE_RAM_GB + total + act
        return replace(plan, weights_gb=total, after_load_vram_gb=0.0, peak_vram_gb=0.0, ram_gb=ram,
                       load_ram_gb=BASE_RAM_GB + total + max(_window_gb(c, plan) for c in spec.components))
    blocks = spec.component("transformer").params_b * 1e9 * _bytes_per_param(plan.dtype) / GIB / 30
    resident = 0.0  # what lives in RAM once loaded (besides Python, torch and CUDA)
    if plan.offload == "none" and plan.free_text_encoders:
        # Encoders and transformer take turns on the GPU (the VAE stays); the encoders wait in RAM.
        encode = encoders + others + ov_encoders + ENCODE_ACT_GB
        denoise = transformer + others + ov_transformer + act
        vram, after_load = max(encode, denoise), transformer + others + ov_transformer
        resident = encoders
    elif plan.offload == "none":
        vram = denoise = total + overhead + act
        after_load = total + overhead
    elif plan.offload == "model":
        # Components visit the GPU one at a time (each text encoder on its own); activations peak with
        # the transformer (denoising) and the VAE (decoding), not while a text encoder runs.
        biggest_encoder = max((sizes[c.name] for c in spec.text_encoders), default=0.0)
        denoise = max(transformer + ov_transformer, others) + act
        vram, after_load = max(biggest_encoder + ov_encoders + ENCODE_ACT_GB, denoise), 0.0
        resident = total
    else:  # group offload: blocks stream from RAM (or local disk) while encoders and VAE stay on the GPU
        on_gpu = (0.0 if plan.free_text_encoders else encoders) + others + ov_encoders
        denoise = on_gpu + STREAM_BLOCKS * blocks + ov_transformer + act
        encode = encoders + others + ov_encoders + ENCODE_ACT_GB
        vram, after_load = max(denoise, encode), on_gpu
        resident = total if plan.offload == "group" else STREAM_BLOCKS * blocks + (
            encoders if plan.free_text_encoders else 0.0)
    ram = BASE_RAM_GB + resident
    load_ram = BASE_RAM_GB + _loading_peak_gb(spec, plan, sizes)
    return replace(plan, weights_gb=total, after_load_vram_gb=min(after_load, vram), peak_vram_gb=vram, ram_gb=ram,
                   load_ram_gb=load_ram, denoise_vram_gb=min(denoise, vram))


def candidates(spec: ModelSpec, prof: GpuProfile, *, width: int = 1024, height: int = 1024,
               num_images: int = 1, num_frames: int = 0) -> list[MemoryPlan]:
    """Every plan MASUKA would consider for `spec` on `prof`, best first (estimated, fit or not)."""
    if spec.is_video and not num_frames:
        num_frames = spec.default_frames
    common = dict(model=spec.id, profile=prof.name, width=width, height=height, num_images=num_images,
                  num_frames=num_frames if spec.is_video else 0,
                  vram_available_gb=prof.vram_gb, ram_available_gb=prof.ram_gb)
    if not prof.is_cuda:
        # Tiny models in float32 reproduce bit for bit; real ones in bf16 halve the RAM they need.
        dtype = "float32" if spec.tiny else "bfloat16"
        why = ("CPU: no GPU, so everything runs on the CPU in " + dtype
               + (" (tiny model: exact and fast)" if spec.tiny else " (half the RAM of float32; slow)"))
        device = "mps" if prof.name == "mps" else "cpu"  # Apple's GPU shares the RAM: planned like a CPU
        return [estimate(spec, MemoryPlan(device=device, dtype=dtype, vae_dtype=dtype, text_encoder_dtype=dtype,
                                          loading="pipeline", reasons=(why,), **common))]
    dtype = "bfloat16" if prof.bf16 else "float16"
    cc = ".".join(map(str, prof.compute_capability or ()))
    dtype_why = (f"compute capability {cc} ≥ 8.0: bf16 in hardware" if prof.bf16 else
                 f"compute capability {cc} < 8.0: no bf16 hardware (emulated bf16 is ≈5× slower), so fp16")
    vae_dtype = dtype if prof.bf16 else "float32"
    te_dtype = dtype
    base = MemoryPlan(device="cuda", dtype=dtype, vae_dtype=vae_dtype, text_encoder_dtype=te_dtype,
                      vae_tiling=width * height > 1536 * 1536, **common)
    big = [c.name for c in spec.components if c.role != "vae" and c.params_b >= NF4_MIN_PARAMS_B]
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
        if spec.task == "edit":
            reasons.append("Kontext also attends over the input image's tokens; with no published Kontext peak to "
                           "check it against, the estimate is FLUX.1-dev's at the output size")
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
    speed: str = "off",
    width: int | None = None,
    height: int | None = None,
    num_images: int = 1,
    num_frames: int | None = None,
) -> MemoryPlan:
    """The plan for `model` on `gpu` (a profile name such as "t4", "l4", "a100-40", "h100", "cpu";
    None = this machine) with `ram_gb` of system RAM (None = the profile's).

    Each choice can be forced; a forced plan that does not fit raises `PlanDoesNotFitError` naming the
    nearest plan that does (for video: fewer frames, a smaller size, or a hosted model). Without
    overrides the best plan that fits is returned. `speed="fast"` turns on a first-block cache (and
    regional compile on bf16 GPUs without group offload); `num_frames` is for video models.
    """
    spec = get_model(model)
    prof = _profile(gpu, ram_gb, model=spec.id)
    _check_choice("dtype", dtype, DTYPES)
    _check_choice("quantization", quantization, QUANTIZATIONS)
    _check_choice("offload", offload, OFFLOADS)
    _check_choice("speed", speed, SPEEDS)
    for name, value in (("width", width), ("height", height), ("num_images", num_images), ("num_frames", num_frames)):
        _check_count(name, value, optional=name != "num_images")
    for name, value in (("free_text_encoders", free_text_encoders), ("compile", compile)):
        if value is not None and not isinstance(value, bool):
            raise InvalidRequestError(f"`{name}` must be True, False or None, not {value!r}.", argument=name,
                                      value=value, hint=f"e.g. {name}=True.")
    if not prof.is_cuda:
        _check_runs_on_cpu(quantization=quantization, offload=offload)
    w = width or spec.default_width
    h = height or spec.default_height
    frames = (num_frames or spec.default_frames) if spec.is_video else 0
    cands = candidates(spec, prof, width=w, height=h, num_images=num_images, num_frames=frames)
    fitting = [c for c in cands if c.fits]
    forced = {k: v for k, v in dict(quantization=quantization, offload=offload,
                                    free_text_encoders=free_text_encoders).items() if v is not None}
    if forced or dtype:
        chosen = _forced(spec, cands, forced, dtype)
    else:
        chosen = fitting[0] if fitting else cands[-1]
    if not chosen.fits:
        raise _does_not_fit(spec, chosen, fitting)
    return _with_speed(spec, prof, chosen, compile=compile, first_block_cache=first_block_cache, speed=speed)


def _with_speed(spec: ModelSpec, prof: GpuProfile, chosen: MemoryPlan, *, compile: bool,
                first_block_cache: float | None, speed: str) -> MemoryPlan:
    """Add the opt-in speed choices to a plan that fits, with their trade-offs in its words."""
    if compile:
        if chosen.device != "cuda" or chosen.offload in ("group", "group-to-disk"):
            raise InvalidRequestError("`compile` needs a CUDA GPU and no group offload.", argument="compile",
                                      value=compile, hint="Use compile=True on an A100/H100/L4 plan.")
        chosen = replace(chosen, compile=True, reasons=(*chosen.reasons,
                         "regional torch.compile of the repeated transformer blocks (opt-in)"))
    if first_block_cache is None and speed == "fast":
        first_block_cache = FAST_CACHE_THRESHOLD
    if first_block_cache is not None:
        if isinstance(first_block_cache, bool) or not isinstance(first_block_cache, (int, float)) \
                or not 0 < first_block_cache <= 0.5 or (chosen.device != "cuda" and not spec.tiny):
            raise InvalidRequestError("`first_block_cache` is a threshold in (0, 0.5] and needs a CUDA GPU.",
                                      argument="first_block_cache", value=first_block_cache,
                                      hint="0.08 gives ≈1.5× on FLUX-dev at a small quality cost; 0.12 ≈1.9×.")
        why = SPEED_FAST if speed == "fast" and first_block_cache == FAST_CACHE_THRESHOLD else \
            f"first-block cache at threshold {first_block_cache:g} (opt-in speed-up)"
        chosen = replace(chosen, first_block_cache=float(first_block_cache), reasons=(*chosen.reasons, why))
    if speed == "fast":
        gains = chosen.device == "cuda" and prof.bf16 and chosen.offload not in ("group", "group-to-disk")
        if gains and not chosen.compile:
            chosen = replace(chosen, compile=True, reasons=(*chosen.reasons, SPEED_COMPILE))
        elif not gains and chosen.device == "cuda":
            chosen = replace(chosen, reasons=(*chosen.reasons, "no regional compile here: compile gains little on "
                             "pre-Ampere GPUs (no bf16 kernels) and cannot trace through group offload"))
        chosen = replace(chosen, speed="fast")
    elif chosen.device == "cuda" and prof.vram_gb >= 39 and not spec.tiny:
        chosen = replace(chosen, reasons=(*chosen.reasons,
                         "speed mode available: plan(..., speed=\"fast\") for ≈1.5× with a first-block cache"))
    return chosen


def _check_count(name: str, value: object, *, optional: bool) -> None:
    """Sizes and counts are whole positive numbers: "1024" (a string from a form) is refused here, by name,
    instead of failing deep inside the estimate with a TypeError."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 16384:
        raise InvalidRequestError(f"`{name}` must be a whole number between 1 and 16384, not {value!r}.",
                                  argument=name, value=value,
                                  hint=f"e.g. {name}=1024" + (" (or None for the model's default)." if optional
                                                              else "."))


def _check_runs_on_cpu(*, quantization: str | None, offload: str | None) -> None:
    """Choices that need a CUDA GPU are refused on a CPU here, not later by diffusers ("No GPU found")."""
    if quantization == "nf4":
        raise InvalidRequestError(
            "`quantization=\"nf4\"` needs a CUDA GPU: bitsandbytes quantizes diffusers models only on CUDA "
            "(\"No GPU found. A GPU is needed for quantization\").", argument="quantization", value=quantization,
            hint="Drop `quantization` on a CPU (it runs in bf16/fp32), or use a GPU runtime (Colab: Runtime > "
                 "Change runtime type > T4 GPU).")
    if offload not in (None, "none"):
        raise InvalidRequestError(
            f"`offload={offload!r}` moves weights between RAM and a GPU; this plan has no GPU.", argument="offload",
            value=offload, hint="Drop `offload` on a CPU, or use a GPU runtime.")


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
        nf4 = ({"quantized_components": tuple(c.name for c in spec.components
                                             if c.role != "vae" and c.params_b >= NF4_MIN_PARAMS_B)}
               if q == "nf4" else {})
        template = replace(template, **forced, **nf4)
    if dtype:
        template = replace(template, dtype=dtype, text_encoder_dtype=dtype,
                           vae_dtype="float32" if dtype == "float16" else dtype)
    return estimate(spec, replace(template, reasons=(*template.reasons, "choices forced by the caller")))


def _does_not_fit(spec: ModelSpec, chosen: MemoryPlan, fitting: list[MemoryPlan]) -> PlanDoesNotFitError:
    if fitting:
        nearest = fitting[0].label
    elif spec.is_video and (smaller := _smaller_video_plan(spec, chosen)) is not None:
        nearest = smaller.label
    else:
        elsewhere = []
        for prof in PROFILES.values():
            if not prof.is_cuda:
                continue
            ok = [c for c in candidates(spec, prof, width=chosen.width, height=chosen.height,
                                        num_images=chosen.num_images, num_frames=chosen.num_frames) if c.fits]
            if ok:
                elsewhere.append(ok[0])
        nearest = (elsewhere[0].label if elsewhere else "none") + \
            (f"; on this machine: tiny-{spec.family} (offline test model)" if not spec.tiny else "")
        if spec.is_video:
            nearest += "; or a hosted model: VideoGenerator().generate(..., model=\"veo3-fast\")"
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


def _smaller_video_plan(spec: ModelSpec, chosen: MemoryPlan) -> MemoryPlan | None:
    """The biggest clip that fits this runtime: fewer frames first (same look), then a smaller published size."""
    prof = GpuProfile(chosen.profile, chosen.vram_available_gb, chosen.ram_available_gb,
                      (8, 0) if chosen.dtype == "bfloat16" else (7, 5))
    smaller = sorted((s for s in spec.sizes if s[0] * s[1] < chosen.width * chosen.height), key=lambda s: -s[0] * s[1])
    sizes = [(chosen.width, chosen.height), *smaller]
    for w, h in sizes:
        frames = chosen.num_frames
        while frames >= 5:
            ok = [c for c in candidates(spec, prof, width=w, height=h, num_frames=frames) if c.fits]
            if ok:
                return ok[0]
            frames = ((frames - 1) // 2) // 4 * 4 + 1
    return None


def lighter_plan(current: MemoryPlan) -> MemoryPlan | None:
    """The next plan after `current` that needs less VRAM (the fallback after a CUDA out-of-memory)."""
    spec = get_model(current.model)
    prof = PROFILES.get(current.profile) or GpuProfile(current.profile, current.vram_available_gb,
                                                       current.ram_available_gb, (8, 0))
    prof = replace(prof, vram_gb=current.vram_available_gb, ram_gb=current.ram_available_gb)
    for cand in candidates(spec, prof, width=current.width, height=current.height, num_images=current.num_images,
                           num_frames=current.num_frames):
        if cand.peak_vram_gb < current.peak_vram_gb * 0.9 and cand.fits:
            return replace(cand, reasons=(*cand.reasons, f"fallback after running out of memory with {current.label}"))
    return None
