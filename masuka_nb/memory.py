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
from typing import TYPE_CHECKING, Any

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
# "gguf-q4" / "gguf-q8": a single-file GGUF transformer (diffusers' GGUFQuantizationConfig; the file's real bytes
# are the transformer's size); "w4a4": a pre-quantized Nunchaku Lite (SVDQuant) repo, picked by speed="fast".
QUANTIZATIONS = ("none", "nf4", "gguf-q4", "gguf-q8", "w4a4")
GGUF = ("gguf-q4", "gguf-q8")
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
# Nunchaku Lite int4: 4 bits + an fp16 scale per 64 weights, and a rank-32 low-rank branch in 16 bit; the branch is
# ≈ 2·32·(in+out)/(in·out) of a 3072×3072 layer ≈ 4 % of the 4-bit bytes (SVDQuant, https://arxiv.org/abs/2411.05007)
W4A4_BYTES_PER_PARAM = (0.5 + 2 / 64) * 1.04
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
    quantized_file: str = ""  # GGUF plans: the single-file transformer (an https URL or a local path)
    quantized_file_bytes: int = 0  # its real size, as the Hub, the server or the disk reports it
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
    download_gb: float = 0.0  # what this plan downloads (GB, 10⁹ bytes, as the Hub lists files)
    tflops_per_step: float = 0.0  # one denoising step: every transformer pass (CFG counts twice)
    seconds_per_step: float = 0.0  # an ESTIMATE from the FLOPs and the GPU's datasheet peak (see STEP_EFFICIENCY)
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
            + (f" ({self.quantization}, from {self.quantized_file or self.quantized_repo or 'BitsAndBytesConfig at load'})"
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
            f"  download     ≈{self.download_gb:.1f} GB",
            f"  per step     ≈{self.seconds_per_step:.2f} s (estimate: {self.tflops_per_step:.0f} TFLOP per "
            "step at the datasheet peak × measured efficiency)" if self.seconds_per_step
            else "  per step     - (no estimate for this device)",
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
    if comp.role == "transformer" and plan.quantization in GGUF and plan.quantized_file_bytes:
        # GGUF weights stay quantized in memory (dequantized layer by layer as they run): the file is the size
        return plan.quantized_file_bytes / GIB
    if comp.role == "transformer" and plan.quantization == "w4a4":
        # SVDQuant W4A4: 4-bit weights + one fp16 scale per 64 + a rank-32 16-bit branch (≈4 % more)
        rest = comp.params_b - comp.nf4_b
        return (comp.nf4_b * W4A4_BYTES_PER_PARAM + rest * per) * 1e9 / GIB
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
    cfg = cfg_passes(spec)
    batch = 1 + 0.5 * (plan.num_images * cfg - 1)
    scale = (spec.component("transformer").params_b / 11.9) ** 0.5
    act = ACTIVATIONS_GB_1MP * pixels * batch * scale
    return act * (0.6 if plan.vae_tiling else 1.0)


def cfg_passes(spec: ModelSpec, guidance: float | None = None) -> int:
    """Transformer passes per step at the model's default guidance: 2 with real classifier-free guidance."""
    g = spec.default_guidance if guidance is None else guidance
    if spec.guidance_arg == "true_cfg_scale":
        return 2 if g > 1 else 1
    if spec.family == "zimage":
        return 2 if g > 0 else 1  # ZImagePipeline runs CFG for any guidance above 0
    return 2 if spec.supports_negative_prompt and g > 1 else 1


def estimate(spec: ModelSpec, plan: MemoryPlan) -> MemoryPlan:
    """Fill in the plan's weight, peak-VRAM and RAM estimates (what is where in each phase: loading,
    encoding the prompt, denoising and decoding), its download size and its estimated seconds per step."""
    return _with_speed_estimate(spec, _with_download(spec, _estimate_memory(spec, plan)))


def _estimate_memory(spec: ModelSpec, plan: MemoryPlan) -> MemoryPlan:
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


# ---- download size and seconds per step ----

# Dense 16-bit tensor-core peaks from the datasheets (TFLOPS; fp16 on the T4, bf16 elsewhere, no sparsity), read
# 2026-12: https://www.nvidia.com/en-us/data-center/tesla-t4/ (65), .../l4/ (121), .../a100/ (312),
# .../h100/ (989, SXM), .../l40/ (181, the calibration GPU below).
PEAK_TFLOPS = {"t4": 65.0, "t4-highram": 65.0, "l4": 121.0, "a100-40": 312.0, "a100-80": 312.0, "h100": 989.0,
               "l40": 181.0}
# Host-to-GPU bandwidth a streamed (group-offloaded) transformer crosses every step, GB/s: PCIe 3.0 x16 (T4),
# 4.0 x16 (L4, A100), 5.0 x16 (H100), at ≈ 75 % of the link's nominal rate.
LINK_GBPS = {"t4": 12.0, "t4-highram": 12.0, "l4": 24.0, "a100-40": 24.0, "a100-80": 24.0, "h100": 48.0}
# fit: FLUX.1-dev, 1024², one bf16 forward (74.4 TFLOP as masuka_nb.models.flops counts it, 512 text tokens) takes
# 0.535 s on an L40 (diffusers' quantization docs, ../shared/reference/memory.md): 74.4 / 0.535 / 181 = 0.77 of the
# datasheet peak. The same share is assumed everywhere, which a T4 without flash attention will not reach: an estimate.
STEP_EFFICIENCY = 74.4 / 0.535 / 181.0
# Step time relative to 16-bit weights: NF4 0.564 / 0.535 s on the L40 (same source); GGUF Q4_1 23 s and Q8_0 15 s
# against bf16's 12 s for 50 FLUX.1-dev steps on an H100 (https://huggingface.co/blog/diffusers-quantization);
# SVDQuant W4A4 3.0× faster than NF4 W4A16 (https://arxiv.org/abs/2411.05007, 16 GB laptop 4090).
QUANT_STEP_FACTOR = {"none": 1.0, "nf4": 0.564 / 0.535, "gguf-q4": 23 / 12, "gguf-q8": 15 / 12,
                     "w4a4": 0.564 / 0.535 / 3.0}


def _with_download(spec: ModelSpec, plan: MemoryPlan) -> MemoryPlan:
    """What the plan downloads: each component as its repo stores it (16-bit), the pre-quantized repo's NF4 / W4A4
    components at their quantized size, a GGUF transformer at its file's size."""
    if spec.tiny:
        return plan
    total = 0.0
    for comp in spec.components:
        if comp.role == "transformer" and plan.quantization in GGUF:
            total += plan.quantized_file_bytes / 1e9
        elif plan.quantized_repo and comp.name in plan.quantized_components:
            total += _component_gb(spec, comp.name, plan) * GIB / 1e9
        else:
            total += comp.params_b * 2.0  # the repos store 16-bit weights
    return replace(plan, download_gb=round(total, 2))


def _with_speed_estimate(spec: ModelSpec, plan: MemoryPlan) -> MemoryPlan:
    """Seconds per denoising step: the transformer's FLOPs (every CFG pass, every image) at the GPU's datasheet peak
    × STEP_EFFICIENCY, slowed by the quantization's measured factor; a streamed transformer cannot run faster than
    its weights cross the PCIe link. Labelled an estimate wherever it is shown."""
    peak = PEAK_TFLOPS.get(plan.profile)
    if spec.flops is None or plan.device != "cuda" or peak is None:
        return plan
    tflops = spec.flops.tflops(plan.width, plan.height) * cfg_passes(spec) * plan.num_images
    seconds = tflops / (peak * STEP_EFFICIENCY) * QUANT_STEP_FACTOR.get(plan.quantization, 1.0)
    if plan.offload in ("group", "group-to-disk"):
        weights = _component_gb(spec, "transformer", plan) * GIB / 1e9
        seconds = max(seconds, weights / LINK_GBPS.get(plan.profile, 12.0))
    return replace(plan, tflops_per_step=round(tflops, 1), seconds_per_step=round(seconds, 3))


def candidates(spec: ModelSpec, prof: GpuProfile, *, width: int = 1024, height: int = 1024,
               num_images: int = 1, num_frames: int = 0, transformer_weights: Any = None) -> list[MemoryPlan]:
    """Every plan MASUKA would consider for `spec` on `prof`, best first (estimated, fit or not).

    `transformer_weights` (a `TransformerWeights`: a GGUF file or a W4A4 repo) replaces the transformer's NF4/16-bit
    choice in every candidate; the text encoders keep their own choice (16-bit, or NF4 where the ladder says)."""
    if spec.is_video and not num_frames:
        num_frames = spec.default_frames
    common = dict(model=spec.id, profile=prof.name, width=width, height=height, num_images=num_images,
                  num_frames=num_frames if spec.is_video else 0,
                  vram_available_gb=prof.vram_gb, ram_available_gb=prof.ram_gb)
    alt = transformer_weights
    if not prof.is_cuda:
        # Tiny models in float32 reproduce bit for bit; real ones in bf16 halve the RAM they need.
        dtype = "float32" if spec.tiny else "bfloat16"
        why = ("CPU: no GPU, so everything runs on the CPU in " + dtype
               + (" (tiny model: exact and fast)" if spec.tiny else " (half the RAM of float32; slow)"))
        device = "mps" if prof.name == "mps" else "cpu"  # Apple's GPU shares the RAM: planned like a CPU
        cpu = MemoryPlan(device=device, dtype=dtype, vae_dtype=dtype, text_encoder_dtype=dtype, loading="pipeline",
                         reasons=(why,), **common)
        if alt is not None:
            cpu = replace(cpu, reasons=(why, alt.why), **alt.plan_fields(()))
        return [estimate(spec, cpu)]
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
        if alt is not None:  # the transformer comes as the GGUF / W4A4 weights; big text encoders NF4 where said
            encoders = tuple(c for c in changes.get("quantized_components", ()) if c != "transformer")
            changes = {**{k: v for k, v in changes.items() if not k.startswith("quantiz")},
                       **alt.plan_fields(encoders)}
            why = f"{why.replace('NF4 weights', 'NF4 text encoders').replace('NF4,', 'NF4 text encoders,')}; {alt.why}"
        reasons = [dtype_why, why]
        if vae_dtype == "float32":
            reasons.append("VAE decodes in fp32: fp16 VAE decodes can overflow, and it costs only ≈0.3 GB")
        if spec.task == "edit":
            reasons.append("Kontext also attends over the input image's tokens; with no published Kontext peak to "
                           "check it against, the estimate is FLUX.1-dev's at the output size" if spec.family == "flux"
                           else f"{spec.title} also attends over the input image's tokens; with no published peak "
                           "to check it against, the estimate is its text-to-image sibling's at the output size")
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
    gguf: str | None = None,
) -> MemoryPlan:
    """The plan for `model` on `gpu` (a profile name such as "t4", "l4", "a100-40", "h100", "cpu";
    None = this machine) with `ram_gb` of system RAM (None = the profile's).

    `quantization="gguf-q4"` / `"gguf-q8"` loads the transformer from a single-file GGUF: the registry's published
    file, or `gguf` (a local path, an https URL or "owner/repo/file.gguf"), planned with that file's real size.
    `quantization="w4a4"` (or `speed="fast"` where the libraries and the GPU allow it) uses a Nunchaku Lite
    repo. Every plan states its download size and an estimated time per step.

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
    if gguf is not None and quantization not in GGUF:
        raise InvalidRequestError("`gguf` names a GGUF transformer file, which only a GGUF plan loads.",
                                  argument="gguf", value=gguf, hint="Add quantization=\"gguf-q4\" (or \"gguf-q8\").")
    w = width or spec.default_width
    h = height or spec.default_height
    frames = (num_frames or spec.default_frames) if spec.is_video else 0
    weights = _transformer_weights(spec, prof, quantization, gguf)
    cands = candidates(spec, prof, width=w, height=h, num_images=num_images, num_frames=frames,
                       transformer_weights=weights)
    fitting = [c for c in cands if c.fits]
    forced = {k: v for k, v in dict(quantization=quantization, offload=offload,
                                    free_text_encoders=free_text_encoders).items() if v is not None}
    if weights is not None:
        forced.pop("quantization")  # every candidate carries it
    if forced or dtype:
        matching = [c for c in fitting if all(getattr(c, k) == v for k, v in forced.items())] if not dtype else []
        chosen = matching[0] if matching else _forced(spec, cands, forced, dtype)
    else:
        chosen = fitting[0] if fitting else _closest(cands)
    if not chosen.fits:
        raise _does_not_fit(spec, chosen, fitting)
    return _with_speed(spec, prof, chosen, compile=compile, first_block_cache=first_block_cache, speed=speed)


def _transformer_weights(spec: ModelSpec, prof: GpuProfile, quantization: str | None, gguf: str | None) -> Any:
    """The GGUF file or W4A4 repo a forced `quantization` asks for (None for 16-bit / NF4 plans)."""
    from masuka_nb.models.quantized import resolve_gguf, w4a4_for

    if quantization in GGUF:
        return resolve_gguf(spec, quantization, gguf)
    if quantization == "w4a4":
        weights, why_not = w4a4_for(spec, prof)
        if weights is None:
            raise InvalidRequestError(f"`quantization=\"w4a4\"` is not possible for {spec.id} on {prof.name}: "
                                      f"{why_not}.", argument="quantization", value=quantization,
                                      hint="Drop `quantization` (MASUKA picks NF4 where it helps), or see "
                                           "https://huggingface.co/docs/diffusers/en/quantization/nunchaku.")
        return weights
    return None


def _closest(cands: list[MemoryPlan]) -> MemoryPlan:
    """Of plans that all fail, the one that misses by the least (its largest need over what the runtime has):
    the figures a refusal shows."""
    def overflow(c: MemoryPlan) -> float:
        vram = c.peak_vram_gb / max(c.vram_available_gb * FIT_MARGIN, 1e-9) if c.device == "cuda" else 0.0
        ram = max(c.ram_gb, c.load_ram_gb) / max(c.ram_available_gb * FIT_MARGIN, 1e-9)
        return max(vram, ram)

    return min(cands, key=overflow) if cands else cands[-1]


def _with_speed(spec: ModelSpec, prof: GpuProfile, chosen: MemoryPlan, *, compile: bool,
                first_block_cache: float | None, speed: str) -> MemoryPlan:
    """Add the opt-in speed choices to a plan that fits, with their trade-offs in its words."""
    if speed == "fast" and chosen.device == "cuda" and chosen.quantization != "w4a4":
        chosen = _with_w4a4(spec, prof, chosen)
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


def _with_w4a4(spec: ModelSpec, prof: GpuProfile, chosen: MemoryPlan) -> MemoryPlan:
    """speed="fast": the Nunchaku Lite W4A4 weights where the installed diffusers, the `kernels` package, the
    user's consent and the GPU allow it (and the plan still fits); otherwise the plan says why not."""
    from masuka_nb.models.quantized import w4a4_for

    weights, why_not = w4a4_for(spec, prof)
    if weights is None:
        return replace(chosen, reasons=(*chosen.reasons, f"no W4A4 fast path: {why_not}"))
    if chosen.quantization in GGUF:
        return replace(chosen, reasons=(*chosen.reasons, "no W4A4 fast path: the plan loads a GGUF transformer"))
    fast = estimate(spec, replace(chosen, **weights.plan_fields(()), reasons=(*chosen.reasons, weights.why)))
    if not fast.fits:
        return replace(chosen, reasons=(*chosen.reasons, f"no W4A4 fast path: with it the plan needs "
                                        f"≈{fast.peak_vram_gb:.1f} GB VRAM / ≈{max(fast.ram_gb, fast.load_ram_gb):.1f} GB "
                                        "RAM, more than this runtime has"))
    return fast


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
    if quantization in ("nf4", "w4a4"):
        why = ("bitsandbytes quantizes diffusers models only on CUDA (\"No GPU found. A GPU is needed for "
               "quantization\")" if quantization == "nf4" else "Nunchaku Lite's W4A4 kernels are CUDA kernels")
        raise InvalidRequestError(
            f"`quantization=\"{quantization}\"` needs a CUDA GPU: {why}.", argument="quantization",
            value=quantization,
            hint="Drop `quantization` on a CPU (it runs in bf16/fp32; a GGUF transformer also runs here), or use a "
                 "GPU runtime (Colab: Runtime > Change runtime type > T4 GPU).")
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
    elif chosen.device == "cuda" and not spec.is_video and (smaller := _smaller_image_plan(spec, chosen)) is not None:
        nearest = f"{smaller.label} at {smaller.width}×{smaller.height} (≈{smaller.peak_vram_gb:.1f} GB VRAM, " \
                  f"≈{max(smaller.ram_gb, smaller.load_ram_gb):.1f} GB RAM)"
    else:
        elsewhere = []
        for prof in PROFILES.values():
            if not prof.is_cuda:
                continue
            ok = [c for c in candidates(spec, prof, width=chosen.width, height=chosen.height,
                                        num_images=chosen.num_images, num_frames=chosen.num_frames) if c.fits]
            if not ok and not spec.is_video and prof.name != chosen.profile:
                smaller = _smaller_image_plan(spec, replace(ok[0] if ok else chosen, profile=prof.name,
                                              vram_available_gb=prof.vram_gb, ram_available_gb=prof.ram_gb,
                                              dtype="bfloat16" if prof.bf16 else "float16"))
                ok = [smaller] if smaller is not None else []
            if ok:
                elsewhere.append(ok[0])
        def where(p: MemoryPlan) -> str:
            return p.label + (f" at {p.width}×{p.height}" if (p.width, p.height) != (chosen.width, chosen.height)
                              else "")

        nearest = (where(elsewhere[0]) if elsewhere else "none") + \
            (f"; on this machine: {_tiny_twin(spec)} (offline test model)" if not spec.tiny else "")
        if chosen.device == "cuda" and not spec.is_video:
            nearest = f"none on {chosen.profile} at any size down to 512 px; elsewhere: {nearest}"
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
                 f"{gpu_plan}; or model='{_tiny_twin(spec)}' to try the whole pipeline here (noise, labelled so)"
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


def _tiny_twin(spec: ModelSpec) -> str:
    """The offline tiny model of `spec`'s family and task (tiny-qwenimage-edit for Qwen-Image-Edit)."""
    from masuka_nb.models.registry import MODELS

    same = [m.id for m in MODELS.values() if m.tiny and m.family == spec.family]
    return next((m for m in same if MODELS[m].task == spec.task), same[0] if same else f"tiny-{spec.family}")


def _smaller_image_plan(spec: ModelSpec, chosen: MemoryPlan) -> MemoryPlan | None:
    """The biggest image that fits this runtime at the same aspect ratio, down to 512 px on the short side."""
    from masuka_nb.runtime import GpuProfile

    prof = GpuProfile(chosen.profile, chosen.vram_available_gb, chosen.ram_available_gb,
                      (8, 0) if chosen.dtype == "bfloat16" else (7, 5))
    m = spec.size_multiple
    for scale in (0.875, 0.75, 0.625, 0.5, 0.375):
        w, h = (max(m, round(d * scale / m) * m) for d in (chosen.width, chosen.height))
        if min(w, h) < max(512, spec.min_size):
            break
        ok = [c for c in candidates(spec, prof, width=w, height=h, num_images=chosen.num_images) if c.fits]
        if ok:
            return ok[0]
    return None


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
