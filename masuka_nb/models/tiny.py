"""Tiny FLUX-, SD3-, FLUX Kontext/Fill-, FLUX.2 [klein]- and Wan-shaped pipelines built from configs in
code, with fixed seeds and no Hub.

They are saved once as real diffusers folders under ``cache_dir/tiny/<id>-v<N>`` and loaded through
the same `from_pretrained` path as the real models (with HF_HUB_OFFLINE=1). They are the embedded
default wherever there is no GPU or no network, and what every test and CI run uses. Their outputs
are noise from random weights; every result made with them carries a label saying so.

Dimensions follow diffusers' own pipeline tests (`get_dummy_components`), with a 2× VAE so that
images, latents and packing behave like the real models' (tokens = (H/2/2)·(W/2/2) for FLUX).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from masuka_nb.config import settings
from masuka_nb.log import get_logger
from masuka_nb.models.registry import get_model
from masuka_nb.quiet import quiet_third_party

__all__ = ["TINY_LABEL", "build_folder_atomically", "build_tiny", "ensure_tiny", "tiny_clip_tokenizer"]

log = get_logger(__name__)

# Bump when a builder changes: a stale folder is then rebuilt instead of loaded.
BUILDER_VERSION = 1
TINY_LABEL = "tiny random model (offline test model): the output is noise, not a real image"
MARKER = "masuka_tiny.json"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: 256 printable symbols standing for the 256 bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tiny_clip_tokenizer(model_max_length: int = 77):
    """A byte-level CLIP tokenizer made in code: 512 symbols (+ `</w>` forms) and the two specials."""
    from transformers import CLIPTokenizer

    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def _clip_config(projection_dim: int | None = None):
    from transformers import CLIPTextConfig

    kwargs = dict(
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=514,
        hidden_act="gelu",
        max_position_embeddings=77,
    )
    if projection_dim is not None:
        kwargs["projection_dim"] = projection_dim
    return CLIPTextConfig(**kwargs)


def _t5_encoder(*, umt5: bool = False):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    cfg = (UMT5Config if umt5 else T5Config)(
        vocab_size=384,  # ByT5: 3 specials + 256 bytes + 125 extra ids
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        dropout_rate=0.0,
    )
    return (UMT5EncoderModel if umt5 else T5EncoderModel)(cfg).eval()


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    ).eval()


def _seeded(seed: int):
    import torch

    torch.manual_seed(seed)


def _build_flux():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import ByT5Tokenizer, CLIPTextModel

    _seeded(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels × 2×2 packing
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
        guidance_embeds=True,
    ).eval()
    _seeded(1)
    text_encoder = CLIPTextModel(_clip_config()).eval()
    _seeded(2)
    text_encoder_2 = _t5_encoder()
    _seeded(3)
    vae = _vae()
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_clip_tokenizer(),
        text_encoder_2=text_encoder_2,
        tokenizer_2=ByT5Tokenizer(model_max_length=512),
        transformer=transformer,
    )


def _build_sd3():
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import ByT5Tokenizer, CLIPTextModelWithProjection

    _seeded(0)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
        pos_embed_max_size=96,
    ).eval()
    _seeded(1)
    text_encoder = CLIPTextModelWithProjection(_clip_config(projection_dim=32)).eval()
    _seeded(2)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(projection_dim=32)).eval()
    _seeded(3)
    text_encoder_3 = _t5_encoder()
    _seeded(4)
    vae = _vae()
    return StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_clip_tokenizer(),
        text_encoder_2=text_encoder_2,
        tokenizer_2=tiny_clip_tokenizer(),
        text_encoder_3=text_encoder_3,
        tokenizer_3=ByT5Tokenizer(model_max_length=512),
        transformer=transformer,
    )


def _flux_parts(*, in_channels: int = 16, out_channels: int | None = None) -> dict[str, Any]:
    """The tiny FLUX.1 components (shared by Kontext, which reads the image as extra tokens, and Fill,
    whose transformer takes the masked image and the mask as extra input channels)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import ByT5Tokenizer, CLIPTextModel

    _seeded(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=out_channels, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=True,
    ).eval()
    _seeded(1)
    text_encoder = CLIPTextModel(_clip_config()).eval()
    _seeded(2)
    text_encoder_2 = _t5_encoder()
    _seeded(3)
    return dict(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(), text_encoder=text_encoder,
                tokenizer=tiny_clip_tokenizer(), text_encoder_2=text_encoder_2,
                tokenizer_2=ByT5Tokenizer(model_max_length=512), transformer=transformer)


def _build_flux_kontext():
    from diffusers import FluxKontextPipeline

    return FluxKontextPipeline(**_flux_parts(), image_encoder=None, feature_extractor=None)


def _build_flux_fill():
    from diffusers import FluxFillPipeline

    # 16 packed latent channels + 16 of the masked image + the mask packed at VAE scale: 2·2 pixels × 2×2 patch.
    return FluxFillPipeline(**_flux_parts(in_channels=48, out_channels=16))


# Qwen3's chat template reduced to what Flux2KleinPipeline asks of it: one user turn, then the answer cue.
_CHAT_TEMPLATE = (
    "{% for m in messages %}<|startoftext|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|startoftext|>assistant\n{% endif %}"
)


def _build_flux2_klein():
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    _seeded(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=48, timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False,
    ).eval()
    _seeded(1)
    # 28 layers so the pipeline's default read-out layers (9, 18, 27) exist; 16 wide, so still tiny.
    text_encoder = Qwen3ForCausalLM(Qwen3Config(
        intermediate_size=16, hidden_size=16, num_hidden_layers=28, num_attention_heads=2, num_key_value_heads=2,
        head_dim=8, vocab_size=514, max_position_embeddings=512, bos_token_id=512, eos_token_id=513,
        pad_token_id=513, tie_word_embeddings=True,
    )).eval()
    tokenizer = tiny_clip_tokenizer(model_max_length=512)
    tokenizer.chat_template = _CHAT_TEMPLATE
    _seeded(2)
    vae = AutoencoderKLFlux2(
        sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 16), layers_per_block=1,
        latent_channels=4, norm_num_groups=8, use_quant_conv=False, use_post_quant_conv=False,
    ).eval()
    import inspect

    parts = dict(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                 transformer=transformer)
    if "is_distilled" in inspect.signature(Flux2KleinPipeline.__init__).parameters:  # a later diffusers argument
        parts["is_distilled"] = True
    return Flux2KleinPipeline(**parts)


def _wan_parts(*, expand_timesteps: bool = False) -> dict[str, Any]:
    """Wan components after diffusers' own pipeline test: a 3D VAE (4× in time, 8× in space) and a
    (1, 2, 2)-patch transformer reading a tiny T5 encoder."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import ByT5Tokenizer

    _seeded(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True]).eval()
    _seeded(1)
    text_encoder = _t5_encoder(umt5=True)  # Wan reads umt5-xxl
    _seeded(2)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    ).eval()
    return dict(tokenizer=ByT5Tokenizer(model_max_length=512), text_encoder=text_encoder, vae=vae,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), transformer=transformer,
                transformer_2=None, expand_timesteps=expand_timesteps)


def _build_wan():
    from diffusers import WanPipeline

    return WanPipeline(**_wan_parts())


def _build_wan_i2v():
    from diffusers import WanImageToVideoPipeline

    # Wan 2.2 TI2V style: the image's latents stand in for the first frame (no CLIP image encoder).
    return WanImageToVideoPipeline(**_wan_parts(expand_timesteps=True), image_processor=None, image_encoder=None)


# Qwen's chat markers as special tokens after the byte-level 514: the Qwen pipelines' prompt templates spell them out,
# and the edit pipeline's processor expands <|image_pad|> into one token per image patch.
_QWEN_SPECIALS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                  "<|image_pad|>", "<|video_pad|>")
_QWEN_CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _qwen_tokenizer():
    """The byte-level tiny tokenizer with Qwen's chat markers (ids 514…520) and chat template."""
    tok = tiny_clip_tokenizer(model_max_length=1024)
    tok.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIALS)})
    tok.chat_template = _QWEN_CHAT
    return tok


def _build_zimage():
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    _seeded(0)
    # 64 wide (2 heads × 32): every Linear's rows are multiples of 32, so a test can write it as a Q4_0/Q8_0 GGUF.
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=64, n_layers=2, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, cap_feat_dim=32, axes_dims=[8, 12, 12], axes_lens=[256, 64, 64],
    ).eval()
    _seeded(1)
    tok = _qwen_tokenizer()
    text_encoder = Qwen3Model(Qwen3Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        head_dim=16, vocab_size=len(tok), max_position_embeddings=1024, bos_token_id=512, eos_token_id=513,
        pad_token_id=513, tie_word_embeddings=True,
    )).eval()
    _seeded(2)
    return ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=False),
                          vae=_vae(), text_encoder=text_encoder, tokenizer=tok, transformer=transformer)


def _qwen_parts(*, vision: bool) -> dict[str, Any]:
    """Tiny Qwen-Image components: a 2-layer MMDiT, a Qwen2.5-VL (with a one-block vision tower for the edit
    model) and the 3D VAE with one 2× step (so 2×2 packing gives FLUX-like token counts)."""
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = _qwen_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in _QWEN_SPECIALS}
    _seeded(0)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=32, num_attention_heads=2,
        joint_attention_dim=32, axes_dims_rope=(8, 12, 12),
    ).eval()
    _seeded(1)
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6},
                         bos_token_id=512, eos_token_id=513, pad_token_id=513, tie_word_embeddings=False),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False)
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    _seeded(2)
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, attn_scales=[],
                                 temperal_downsample=[False], latents_mean=[0.0] * 4, latents_std=[1.0] * 4).eval()
    parts = dict(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=vae, text_encoder=text_encoder,
                 tokenizer=tok, transformer=transformer)
    if vision:
        from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor

        parts["processor"] = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok,
                                              video_processor=_qwen_video_processor(), chat_template=_QWEN_CHAT)
    return parts


def _qwen_video_processor():
    """Qwen2-VL's video processor where transformers can build it (it needs torchvision, which Colab has), else
    None: with torchvision installed the processor requires one, without it the processor takes none."""
    try:
        from transformers import Qwen2VLVideoProcessor

        return Qwen2VLVideoProcessor()
    except (ImportError, AttributeError, ValueError):
        return None


def _build_qwenimage():
    from diffusers import QwenImagePipeline

    return QwenImagePipeline(**_qwen_parts(vision=False))


def _build_qwenimage_edit():
    from diffusers import QwenImageEditPipeline

    return QwenImageEditPipeline(**_qwen_parts(vision=True))


_BUILDERS = {"tiny-flux": _build_flux, "tiny-sd3": _build_sd3, "tiny-flux-kontext": _build_flux_kontext,
             "tiny-flux-fill": _build_flux_fill, "tiny-flux2-klein": _build_flux2_klein, "tiny-wan": _build_wan,
             "tiny-wan-i2v": _build_wan_i2v, "tiny-zimage": _build_zimage, "tiny-qwenimage": _build_qwenimage,
             "tiny-qwenimage-edit": _build_qwenimage_edit}


def build_tiny(model_id: str):
    """Build the tiny pipeline `model_id` in memory (deterministic: same weights every time)."""
    spec = get_model(model_id)
    if spec.id not in _BUILDERS:
        from masuka_nb.errors import ModelNotFoundError

        raise ModelNotFoundError(
            f"`{model_id}` is not a tiny model.",
            argument="model",
            value=model_id,
            hint="Tiny models: " + ", ".join(_BUILDERS) + ".",
        )
    return _BUILDERS[spec.id]()


def tiny_dir(model_id: str) -> Path:
    return settings().cache_dir / "tiny" / f"{model_id}-v{BUILDER_VERSION}"


def _distributed_rank() -> int:
    """This process's torch.distributed rank, 0 when torch is not loaded or no process group is up."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    dist = getattr(torch, "distributed", None)
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except (RuntimeError, ValueError):
        pass
    return 0


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (POSIX flock). Where locking is unavailable (Windows, some
    network or FUSE mounts) the body runs unlocked: the marker checks below still hold."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_folder_atomically(target: Path, write: Callable[[Path], None], marker: dict[str, Any]) -> Path:
    """Make `target` by calling `write(tmp)` on a fresh folder beside it, then renaming that folder into
    place with `marker` (as MARKER) inside. A folder without the marker is never used.

    Safe for concurrent callers: builders take turns under a lock file, and whoever gets it second finds
    the marker and returns without building. A marker-less leftover (a crash mid-build) is removed only
    while holding the lock, so no caller can delete a folder another one has just put in place. The
    rename itself cannot be the guard: on Linux a directory renames onto an *empty* directory, and
    fails onto a non-empty one."""
    target = Path(target)
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f".{target.name}.lock"):
        if (target / MARKER).is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            write(tmp)
            (tmp / MARKER).write_text(json.dumps(marker, indent=1))
            if target.exists() and not (target / MARKER).is_file():
                shutil.rmtree(target, ignore_errors=True)
            try:
                os.replace(tmp, target)
            except OSError:
                # Only reachable without a working lock: another builder placed its folder first.
                if not (target / MARKER).is_file():
                    raise
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
    return target


def _wait_for_marker(target: Path, *, model_id: str, timeout: float = 900.0) -> Path:
    deadline = time.monotonic() + timeout
    while not (target / MARKER).is_file():
        if time.monotonic() > deadline:
            from masuka_nb.errors import ModelNotFoundError

            raise ModelNotFoundError(
                f"Waited {timeout:.0f} s for rank 0 to build tiny model `{model_id}` in {target.parent}.",
                argument="model",
                value=model_id,
                hint="Call ensure_tiny() on rank 0 (or before starting the ranks) so the folder exists; "
                "other ranks cannot build it because transformers writes weights on rank 0 only.",
            )
        time.sleep(0.2)
    return target


def _check_weights(folder: Path) -> None:
    """Every component that has a config also has its weights (guards against a save that silently
    skipped some, as transformers does on a distributed rank other than 0)."""
    missing = [
        sub.name for sub in sorted(folder.iterdir())
        if sub.is_dir() and (sub / "config.json").is_file() and not any(sub.glob("*.safetensors"))
    ]
    if missing:
        from masuka_nb.errors import ModelNotFoundError

        raise ModelNotFoundError(
            f"Saving the tiny model left {', '.join(missing)} without weights.",
            argument="model",
            value=folder.name,
            hint="Build tiny models outside torch.distributed or on rank 0.",
        )


def _add_video_processor_config(folder: Path) -> None:
    """A Qwen2-VL `processor/` gets the video_preprocessor_config.json the real repo has (Qwen-Image-Edit's
    processor folder ships one). transformers saves it only when it could build the video processor, which
    needs torchvision; where torchvision is installed (Colab) loading then demands it, so a folder saved
    without torchvision would fail to load there with "Received a NoneType for argument video_processor"."""
    image = folder / "processor" / "preprocessor_config.json"
    video = folder / "processor" / "video_preprocessor_config.json"
    if not image.is_file() or video.is_file():
        return
    cfg = json.loads(image.read_text(encoding="utf-8"))
    if cfg.get("image_processor_type", "").startswith("Qwen2VLImageProcessor"):
        cfg["video_processor_type"] = "Qwen2VLVideoProcessor"
        video.write_text(json.dumps(cfg, indent=2), encoding="utf-8")


def ensure_tiny(model_id: str) -> Path:
    """The folder of tiny model `model_id`, built and saved there first if needed. Safe under races
    (see `build_folder_atomically`). Under torch.distributed only rank 0 builds (transformers' save
    writes no weights on other ranks); the other ranks wait for its marker."""
    target = tiny_dir(model_id)
    if (target / MARKER).is_file():
        return target
    if _distributed_rank() != 0:
        return _wait_for_marker(target, model_id=model_id)

    def write(tmp: Path) -> None:
        with quiet_third_party():
            build_tiny(model_id).save_pretrained(tmp, safe_serialization=True)
        _add_video_processor_config(tmp)
        _check_weights(tmp)

    marker = {"model": model_id, "builder_version": BUILDER_VERSION, "label": TINY_LABEL}
    build_folder_atomically(target, write, marker)
    log.info("tiny.built", model=model_id, path=str(target))
    return target
