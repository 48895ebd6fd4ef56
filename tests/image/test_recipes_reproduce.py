"""reproduce() on foreign images: an A1111 PNG naming a Civitai LoRA by hash fetches it from the simulator and
generates with the tiny twin, saying what differs; an unknown model is found on Civitai by its hash."""

from __future__ import annotations

import io
import json

import pytest
from image_lorafiles import FLUX_ATTN, write_peft_lora
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import masuka_nb as mk
from masuka_nb.errors import RecipeUnsupportedError
from masuka_nb.testing.fakes.civitai import FakeCivitai


def a1111_png(path, text: str):
    info = PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (48, 32), (90, 40, 20)).save(path, "PNG", pnginfo=info)
    return path


@pytest.fixture
def civitai(monkeypatch, tmp_path):
    data = write_peft_lora(tmp_path / "served" / "inkwash.safetensors", FLUX_ATTN, seed=9).read_bytes()
    with FakeCivitai() as fake:
        monkeypatch.setenv("MASUKA_CIVITAI_BASE_URL", fake.url)
        monkeypatch.setenv("MASUKA_DEVICE", "cpu")  # a CPU runtime without the Hub: the tiny twins stand in
        mk.reset_configuration()
        fake.ink = fake.add_version(model_name="Ink Wash", file_name="inkWash_v1.safetensors", data=data,
                                    base_model="Flux.1 D", trained_words=["inkwash"])
        fake.merge = fake.add_version(model_name="Dreamy Merge", file_name="dreamy.safetensors", data=b"\0" * 64,
                                      model_type="Checkpoint", base_model="Flux.1 D")
        fake.sdxl_lora = fake.add_version(model_name="XL Glow", file_name="glow.safetensors", data=b"\1" * 64,
                                          base_model="SDXL 1.0")
        yield fake


def test_a_foreign_a1111_png_with_a_civitai_lora_by_hash_is_made_again(civitai, tmp_path):
    ink = civitai.ink
    text = ("inkwash, a heron in the reeds <lora:inkWash_v1:0.9> <lora:mystery:0.5> <lora:glow:0.5>\n"
            "Steps: 6, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 1, Distilled CFG Scale: 3.5, "
            "Seed: 4294967301, Size: 50x36, Model hash: 0123456789, Model: flux1-dev-fp8, "
            f'Lora hashes: "inkWash_v1: {ink.hashes["AutoV3"].lower()}, mystery: ffffffffffff, '
            f'glow: {civitai.sdxl_lora.hashes["AutoV3"]}", Version: f2.0.1')
    res = mk.reproduce(a1111_png(tmp_path / "found.png", text))
    assert res.recipe["model"] == "tiny-flux" and res.image.size == (48, 32)
    [lora] = res.recipe["loras"]
    assert lora["sha256"] == ink.hashes["SHA256"].lower() and lora["weight"] == 0.9
    assert ("GET", f"/cdn-signed/{ink.version_id}/inkWash_v1.safetensors", "download") in civitai.log
    said = "\n".join(res.warnings)
    for expected in ("tiny offline twin of flux1-dev", "sampler DPM++ 2M", "same seed gives a different image",
                     "seed 4294967301 is above", "width 50 became 48", "`Ink Wash` (v1.0) on Civitai",
                     "LoRA `mystery` is not in the library and Civitai does not know its hash",
                     "LoRA `glow` is `XL Glow` for SDXL 1.0"):
        assert expected in said, expected
    assert res.recipe["reproduced_from"]["dialect"] == "a1111"
    assert res.recipe["reproduced_from"]["differences"] == res.warnings[-len(res.recipe["reproduced_from"]
                                                                            ["differences"]):]
    assert res.recipe["prompt"] == "inkwash, a heron in the reeds" and res.recipe["seeds"] == [5]
    again = mk.reproduce(a1111_png(tmp_path / "again.png", text))  # the LoRA now comes from the library
    assert civitai.counts["download"] == 1 and again.recipe["loras"] == res.recipe["loras"]


def test_an_unknown_model_is_found_on_civitai_by_its_hash(civitai, tmp_path):
    text = ("a quiet harbour\nSteps: 2, Sampler: Euler, CFG scale: 3.5, Seed: 8, Size: 32x32, "
            f"Model hash: {civitai.merge.hashes['AutoV2']}, Model: dreamyMerge_v3")
    recipe = mk.read_recipe(a1111_png(tmp_path / "m.png", text))
    assert recipe.model is None and any("not one MASUKA knows" in u for u in recipe.unmapped)
    res = mk.reproduce(recipe)
    assert res.recipe["model"] == "tiny-flux"
    assert any("`Dreamy Merge` on Civitai, a Flux.1 D model: ran with flux1-dev" in w for w in res.warnings)
    unknown = text.replace(civitai.merge.hashes["AutoV2"], "abababab12")
    with pytest.raises(RecipeUnsupportedError, match="Cannot tell which model"):
        mk.reproduce(a1111_png(tmp_path / "u.png", unknown))


def test_a_comfyui_png_and_a_masuka_png_replay(tmp_path):
    made = mk.generate("a tin robot", model="tiny-flux", seed=21, width=32, height=32, steps=2)
    with Image.open(made.paths[0]) as im:
        info = PngInfo()
        info.add_text("prompt", im.info["prompt"])
        info.add_text("workflow", im.info["workflow"])
        buf = io.BytesIO()
        im.save(buf, "PNG", pnginfo=info)
    (tmp_path / "comfy.png").write_bytes(buf.getvalue())
    foreign = mk.reproduce(tmp_path / "comfy.png")
    assert foreign.recipe["reproduced_from"]["dialect"] == "comfyui" and foreign.recipe["seeds"] == [21]
    assert any("ComfyUI draws its starting noise" in w for w in foreign.warnings)
    own = mk.reproduce(made.paths[0])  # MASUKA's own recipe: exact, with nothing to report
    assert own.warnings == [] and list(own.image.getdata()) == list(made.image.getdata())
    assert json.loads(Image.open(made.paths[0]).info["masuka_recipe"])["seeds"] == [21]
