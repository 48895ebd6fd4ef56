"""Fixtures for the image engine: LoRA files written in each format for the tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from image_lorafiles import FLUX_ATTN, SD3_LAYERS, SD3_SHAPES, write_kohya_lora, write_peft_lora


@pytest.fixture
def flux_lora(tmp_path) -> Path:
    return write_peft_lora(tmp_path / "flux-style" / "pytorch_lora_weights.safetensors", FLUX_ATTN)


@pytest.fixture
def flux_lora_b(tmp_path) -> Path:
    return write_peft_lora(tmp_path / "flux-b.safetensors", FLUX_ATTN[:2], seed=7, rank=2)


@pytest.fixture
def kohya_lora(tmp_path) -> Path:
    return write_kohya_lora(tmp_path / "kohya.safetensors")


@pytest.fixture
def sd3_lora(tmp_path) -> Path:
    return write_peft_lora(tmp_path / "sd3.safetensors", SD3_LAYERS, shapes=SD3_SHAPES)


@pytest.fixture
def library_lora(masuka_home) -> str:
    """A LoRA in the library layout of docs/contracts.md, as training writes it."""
    from masuka_nb.config import settings

    folder = settings().loras_dir / "my-style"
    write_peft_lora(folder / "pytorch_lora_weights.safetensors", FLUX_ATTN, seed=3)
    (folder / "masuka_lora.json").write_text(json.dumps({
        "name": "my-style", "base_model": "tiny-flux", "trigger_word": "mystyle", "steps": 10, "rank": 4,
        "source": "local", "dataset_hash": "0" * 16, "created_at": "2026-11-25T00:00:00Z"}))
    return "my-style"
