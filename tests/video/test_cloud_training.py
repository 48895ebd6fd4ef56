"""Cloud LoRA training against the fal and Replicate fakes, ending in the LoRA library, checked by validate_lora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from masuka_nb import history, jobs
from masuka_nb.config import settings
from masuka_nb.errors import MasukaError
from masuka_nb.lora.cloud import build_dataset_zip, train_cloud


@pytest.fixture(scope="session")
def tiny_flux_lora(tiny_cache, tmp_path_factory) -> bytes:
    """A real PEFT LoRA for tiny-flux, in diffusers' key layout, as a trainer would return it."""
    import os

    os.environ["MASUKA_CACHE_DIR"] = str(tiny_cache)
    import torch
    from diffusers import FluxPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from masuka_nb.models.tiny import ensure_tiny

    pipe = FluxPipeline.from_pretrained(str(ensure_tiny("tiny-flux")), torch_dtype=torch.float32)
    pipe.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    out = tmp_path_factory.mktemp("lora")
    FluxPipeline.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(pipe.transformer))
    return (out / "pytorch_lora_weights.safetensors").read_bytes()


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A dataset folder as the LoRA room writes it: 5 items, one not kept."""
    from PIL import Image

    root = tmp_path / "datasets" / "my-dog"
    (root / "images").mkdir(parents=True)
    items = []
    for i in range(5):
        stem = f"{i:016x}"
        Image.new("RGB", (64, 64), (40 * i, 90, 140)).save(root / "images" / f"{stem}.png")
        (root / "images" / f"{stem}.txt").write_text(f"a photo of sks dog, pose {i}")
        items.append({"file": f"images/{stem}.png", "sha256": "0" * 64, "width": 64, "height": 64,
                      "caption": f"a photo of sks dog, pose {i}", "caption_source": "user", "keep": i != 4,
                      "scores": {}, "source": f"dog{i}.png"})
    (root / "dataset.json").write_text(json.dumps({"name": "my-dog", "created_at": "2026-11-25", "items": items}))
    return root


def test_dataset_zip_has_kept_images_and_captions(dataset):
    import io
    import zipfile

    data, digest, count = build_dataset_zip(dataset)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert count == 4 and len(names) == 8 and len(digest) == 16
    assert all(n.replace(".png", ".txt") in names for n in names if n.endswith(".png"))
    assert build_dataset_zip(type("D", (), {"root": dataset})())[1] == digest  # any object with .root


@pytest.mark.parametrize("provider", ["fal", "replicate"])
def test_train_download_validate(provider, fakes, dataset, tiny_flux_lora):
    fake = fakes(provider)
    fake.lora = tiny_flux_lora
    job = train_cloud(dataset, provider=provider, trigger_word="sks dog", steps=50, name="dog", base="tiny-flux")
    assert job.record.state == "submitted" and fake.counts["submit"] == 1
    if provider == "fal":
        result = job.wait()
    else:  # as after a restart: the job is rebuilt from its record alone
        [resumed] = jobs.resume_all()
        assert type(resumed).__name__ == "CloudTrainingJob" and resumed.state == "completed"
        result = resumed.result()
        assert fake.counts["submit"] == 1
    folder = settings().loras_dir / "dog"
    assert result.folder == folder and result.validated
    assert (folder / "pytorch_lora_weights.safetensors").read_bytes() == tiny_flux_lora
    meta = json.loads((folder / "masuka_lora.json").read_text())
    assert meta["source"] == provider and meta["trigger_word"] == "sks dog" and meta["steps"] == 50
    assert meta["base_model"] == "tiny-flux" and len(meta["dataset_hash"]) == 16
    assert (folder / "README.md").exists() and not list(folder.glob(".*"))
    [h] = history.query(kind="training")
    assert h.status == "ok" and h.extra["validated"] is True
    if provider == "replicate":
        assert "masuka-tester/masuka-dog" in fake.models  # destination made for us


def test_incompatible_lora_is_kept_but_reported(fakes, dataset):
    fake = fakes("fal")  # its default LoRA is a 1x1 toy: not tiny-flux's shapes
    job = train_cloud(dataset, provider="fal", trigger_word="sks", steps=10, name="toy", base="tiny-flux")
    with pytest.raises(MasukaError) as info:
        job.wait()
    assert info.value.code in ("LORA_INCOMPATIBLE", "INVALID_REQUEST")
    assert (settings().loras_dir / "toy" / "pytorch_lora_weights.safetensors").read_bytes() == fake.lora
    assert jobs.get(job.id).state == "failed"


def test_too_few_images_for_fal_fails_before_any_request(fakes, dataset):
    fake = fakes("fal")
    manifest = json.loads((dataset / "dataset.json").read_text())
    for item in manifest["items"][1:]:
        item["keep"] = False
    (dataset / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(MasukaError) as info:
        train_cloud(dataset, provider="fal", trigger_word="sks", steps=10)
    assert info.value.code == "DATASET_INVALID" and sum(fake.counts.values()) == 0


def test_training_budget(fakes, dataset):
    fake = fakes("fal")
    with pytest.raises(MasukaError) as info:
        train_cloud(dataset, provider="fal", trigger_word="sks", steps=1000, max_cost=0.5)
    assert info.value.code == "BUDGET_EXCEEDED" and sum(fake.counts.values()) == 0


def test_training_failure_and_policy(fakes, dataset):
    fake = fakes("replicate")
    fake.inject("outcome", action="fail")
    job = train_cloud(dataset, provider="replicate", trigger_word="sks", steps=10, name="bad")
    with pytest.raises(MasukaError) as info:
        job.wait()
    assert info.value.code == "JOB_FAILED" and "CUDA" in str(info.value)
    assert history.query(kind="training", status="failed")
