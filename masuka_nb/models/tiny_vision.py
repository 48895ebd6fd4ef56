"""Tiny random captioners (Florence-2, BLIP-2) and a tiny CLIP scorer, built from configs in code.

Like `masuka_nb.models.tiny` for diffusion: fixed seeds, in-code tokenizers and processors, saved
once as real transformers folders under ``cache_dir/tiny/<id>-v<N>`` and loaded with the same
`from_pretrained` calls as the real checkpoints (offline). Their captions are gibberish and their
scores are noise: they exist so every code path runs on a CPU in seconds.

    tiny-florence-2   Florence2ForConditionalGeneration + Florence2Processor   (real: florence-community/Florence-2-base)
    tiny-blip-2       Blip2ForConditionalGeneration + Blip2Processor           (real: Salesforce/blip2-opt-2.7b)
    tiny-clip         CLIPVisionModelWithProjection (768-d embeddings) + CLIPImageProcessor
                      + aesthetic/ : the LAION predictor's MLP shape 768→1024→128→64→16→1
                      (real: openai/clip-vit-large-patch14 + the LAION aesthetic predictor v2 weights)
"""

from __future__ import annotations

from pathlib import Path

from masuka_nb.config import settings
from masuka_nb.errors import ModelNotFoundError
from masuka_nb.log import get_logger
from masuka_nb.models.tiny import _bytes_to_unicode, build_folder_atomically
from masuka_nb.quiet import quiet_third_party

__all__ = ["TINY_VISION_IDS", "AestheticMLP", "build_tiny_vision", "ensure_tiny_vision"]

log = get_logger(__name__)

BUILDER_VERSION = 3
MARKER = "masuka_tiny.json"
TINY_VISION_IDS = ("tiny-florence-2", "tiny-blip-2", "tiny-clip")
IMAGE_SIZE = 32


def _byte_vocab(specials: list[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for s in specials:
        vocab[s] = len(vocab)
    # Printable ASCII only: whatever the random weights pick then decodes to readable (if silly) text.
    for byte, s in _bytes_to_unicode().items():
        if 32 <= byte < 127:
            vocab[s] = len(vocab)
    return vocab


def _seed(n: int) -> None:
    import torch

    torch.manual_seed(n)


def _image_processor(cls_name: str, **kwargs):
    import transformers

    # The PIL backends need no torchvision (Colab has it, this machine may not); fall back for older releases.
    cls = getattr(transformers, cls_name + "Pil", None) or getattr(transformers, cls_name)
    return cls(**kwargs)


def _readable_generation(model, specials: list[int]) -> None:
    """Random weights tend to emit end-of-text at once: ask for a few real tokens first."""
    model.generation_config.min_new_tokens = 6
    model.generation_config.suppress_tokens = specials


def _build_florence():
    from transformers import (
        BartTokenizer,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    vocab = _byte_vocab(["<s>", "<pad>", "</s>", "<unk>"])
    vocab["<image>"] = len(vocab)
    tokenizer = BartTokenizer(vocab=vocab, merges=[], model_max_length=128,
                              extra_special_tokens={"image_token": "<image>"})
    _seed(0)
    config = Florence2Config(
        text_config=dict(model_type="bart", vocab_size=len(vocab), max_position_embeddings=256, encoder_layers=1,
                         decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2,
                         decoder_attention_heads=2, d_model=16, dropout=0.0, attention_dropout=0.0,
                         activation_dropout=0.0, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                         decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2),
        vision_config=dict(depths=[1], patch_size=[7], patch_stride=[4], patch_padding=[3], patch_prenorm=[False],
                           embed_dim=[16], num_heads=[1], num_groups=[1], window_size=12, projection_dim=16,
                           drop_path_rate=0.0),
        image_token_id=vocab["<image>"],
    )
    model = Florence2ForConditionalGeneration(config).eval()
    _readable_generation(model, specials=[0, 1, 3, vocab["<image>"]])
    tokens = (IMAGE_SIZE // 4) ** 2 + 1  # one stride-4 stage plus the pooled token
    processor = Florence2Processor(
        image_processor=_image_processor("CLIPImageProcessor", size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                         do_center_crop=False, image_mean=[0.485, 0.456, 0.406],
                                         image_std=[0.229, 0.224, 0.225], image_seq_length=tokens),
        tokenizer=tokenizer,
    )
    return model, processor


def _build_blip2():
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, GPT2Tokenizer

    vocab = _byte_vocab(["<|endoftext|>"])
    vocab["<image>"] = len(vocab)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=[], model_max_length=128, bos_token="<|endoftext|>",
                              eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>",
                              extra_special_tokens={"image_token": "<image>"})
    queries = 4
    _seed(1)
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=8),
        qformer_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
                            encoder_hidden_size=32, vocab_size=64),
        text_config=dict(model_type="opt", vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, ffn_dim=37,
                         num_attention_heads=4, word_embed_proj_dim=32, max_position_embeddings=256,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0, dropout=0.0),
        num_query_tokens=queries,
        image_token_index=vocab["<image>"],
    )
    model = Blip2ForConditionalGeneration(config).eval()
    _readable_generation(model, specials=[vocab["<image>"]])
    processor = Blip2Processor(
        image_processor=_image_processor("BlipImageProcessor", size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer, num_query_tokens=queries,
    )
    return model, processor


def AestheticMLP(input_size: int = 768):  # a factory: torch is imported lazily
    """The LAION aesthetic predictor v2 head. Layer indices match its released state dict
    (`layers.0/2/4/6/7`), so the real weights load into it unchanged."""
    from torch import nn

    class _AestheticMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_size = input_size
            self.layers = nn.Sequential(
                nn.Linear(input_size, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1),
            )

        def forward(self, x):
            return self.layers(x)

    return _AestheticMLP()


def _build_clip():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    _seed(2)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              image_size=IMAGE_SIZE, patch_size=8, projection_dim=768)
    model = CLIPVisionModelWithProjection(config).eval()
    processor = _image_processor("CLIPImageProcessor", size={"shortest_edge": IMAGE_SIZE},
                                 crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    _seed(3)
    head = AestheticMLP(768).eval()
    # Spread the random head's output (≈1 point) around the middle of LAION's 1–10 scale, so tiny
    # scores differ between images the way real ones do.
    import torch

    with torch.no_grad():
        probe = torch.nn.functional.normalize(torch.randn(64, 768, generator=torch.Generator().manual_seed(4)), dim=-1)
        spread = head(probe).std().clamp_min(1e-8)
        head.layers[-1].weight.div_(spread)
        head.layers[-1].bias.sub_(head(probe).mean() - 5.5)
    return model, processor, head


def build_tiny_vision(model_id: str):
    if model_id == "tiny-florence-2":
        return _build_florence()
    if model_id == "tiny-blip-2":
        return _build_blip2()
    if model_id == "tiny-clip":
        return _build_clip()
    raise ModelNotFoundError(f"`{model_id}` is not a tiny vision model.", argument="model", value=model_id,
                             hint="Tiny vision models: " + ", ".join(TINY_VISION_IDS) + ".")


def tiny_vision_dir(model_id: str) -> Path:
    return settings().cache_dir / "tiny" / f"{model_id}-v{BUILDER_VERSION}"


def ensure_tiny_vision(model_id: str) -> Path:
    """The folder of tiny vision model `model_id`, built first if needed (see `build_folder_atomically`)."""
    target = tiny_vision_dir(model_id)
    if (target / MARKER).is_file():
        return target

    def write(tmp: Path) -> None:
        with quiet_third_party():
            built = build_tiny_vision(model_id)
            model, processor = built[0], built[1]
            model.save_pretrained(tmp, safe_serialization=True)
            processor.save_pretrained(tmp)
        if len(built) > 2:
            from safetensors.torch import save_file

            (tmp / "aesthetic").mkdir()
            save_file({k: v.contiguous() for k, v in built[2].state_dict().items()},
                      str(tmp / "aesthetic" / "model.safetensors"))

    build_folder_atomically(target, write, {"model": model_id, "builder_version": BUILDER_VERSION})
    log.info("tiny_vision.built", model=model_id, path=str(target))
    return target
