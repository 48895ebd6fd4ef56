"""Tiny FLUX- and SD3-shaped pipelines built from configs in code, with fixed seeds and no Hub.

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
import tempfile
from pathlib import Path

from masuka_nb.log import get_logger

__all__ = ["TINY_LABEL", "build_tiny", "ensure_tiny", "tiny_clip_tokenizer"]

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


def _t5_encoder():
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(
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
    return T5EncoderModel(cfg).eval()


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


_BUILDERS = {"tiny-flux": _build_flux, "tiny-sd3": _build_sd3}


def build_tiny(model_id: str):
    """Build the tiny pipeline `model_id` in memory (deterministic: same weights every time)."""
    from masuka_nb.models.registry import get_model

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
    from masuka_nb.config import settings

    return settings().cache_dir / "tiny" / f"{model_id}-v{BUILDER_VERSION}"


def ensure_tiny(model_id: str) -> Path:
    """The folder of tiny model `model_id`, built and saved there first if needed. Safe under races:
    the folder is built beside its final place and renamed in one step."""
    target = tiny_dir(model_id)
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    pipe = build_tiny(model_id)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / MARKER).write_text(
            json.dumps({"model": model_id, "builder_version": BUILDER_VERSION, "label": TINY_LABEL}, indent=1)
        )
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished first (target exists and is not empty): keep theirs.
            if not (target / MARKER).is_file():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    log.info("tiny.built", model=model_id, path=str(target))
    return target
