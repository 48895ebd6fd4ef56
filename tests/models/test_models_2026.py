"""Z-Image Turbo, Qwen-Image and Qwen-Image-Edit: registry facts with sources, tiny twins through the front doors,
plans that compare (VRAM, RAM, download, seconds per step), GGUF transformers through the one downloader, and the
Nunchaku Lite W4A4 fast path or the reason it is not taken."""

from __future__ import annotations

import numpy as np
import pytest

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError, PlanDoesNotFitError
from masuka_nb.models.registry import get_model

NEW = ("zimage-turbo", "qwen-image", "qwen-image-edit")


# ---- registry ----

@pytest.mark.parametrize("model", NEW)
def test_each_new_model_carries_its_licence_and_dated_public_sources(model):
    spec = get_model(model)
    assert spec.licence == "Apache-2.0" and spec.licence_url.startswith("https://huggingface.co/")
    assert spec.sources and all(url.startswith("https://") and "2026" in url for _, url in spec.sources)
    for weights in (*spec.gguf.values(), *spec.w4a4):
        assert weights.source.startswith("https://") and weights.read
    for q, file in spec.gguf.items():
        assert q in ("gguf-q4", "gguf-q8") and file.path.endswith(".gguf") and file.bytes > 1e9
    assert spec.flops is not None and spec.min_diffusers in ("0.35", "0.36")


def test_the_call_arguments_are_data():
    zimage, qwen = get_model("zimage-turbo"), get_model("qwen-image")
    assert (zimage.default_steps, zimage.default_guidance, zimage.guidance_arg) == (9, 0.0, "guidance_scale")
    assert (qwen.default_steps, qwen.default_guidance, qwen.guidance_arg) == (50, 4.0, "true_cfg_scale")
    assert qwen.negative_default == " " and (1328, 1328) in qwen.sizes
    assert get_model("qwen-image-edit").task == "edit" and get_model("z-image-turbo").id == "zimage-turbo"


# ---- tiny twins through generate / edit ----

@pytest.mark.parametrize("model", ["tiny-zimage", "tiny-qwenimage"])
def test_tiny_twins_generate_offline_deterministically(model):
    kw = dict(model=model, width=64, height=64, steps=2, save=False, progress=False)
    a = mk.generate("a red fox in snow", seed=3, **kw)
    b = mk.generate("a red fox in snow", seed=3, **{**kw, "plan": {"free_text_encoders": True}})
    c = mk.generate("a red fox in snow", seed=4, **kw)
    assert a.images[0].size == (64, 64) and "noise" in a.recipe["label"]
    np.testing.assert_allclose(np.asarray(b.images[0], float), np.asarray(a.images[0], float), atol=2)
    assert not np.array_equal(np.asarray(a.images[0]), np.asarray(c.images[0]))


def test_tiny_qwen_edit_edits_through_mk_edit():
    pytest.importorskip("torchvision", reason="Qwen2VLProcessor needs torchvision (Colab ships it)")
    from PIL import Image

    result = mk.edit(Image.new("RGB", (64, 64), (200, 120, 40)), "make it night", model="tiny-qwenimage-edit",
                     steps=2, seed=1, save=False)
    assert result.images[0].size == (64, 64) and result.recipe["model"] == "tiny-qwenimage-edit"


def test_without_torchvision_qwen_edit_says_what_it_needs(monkeypatch):
    import importlib.util

    from masuka_nb.errors import DependencyMissingError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchvision" else real(name, *a))
    from PIL import Image

    with pytest.raises(DependencyMissingError) as err:
        mk.edit(Image.new("RGB", (64, 64)), "make it night", model="tiny-qwenimage-edit", steps=1, save=False)
    assert "torchvision" in str(err.value)


# ---- plans that compare ----

def test_t4_l4_a100_verdicts_and_estimates():
    z_t4 = mk.plan("zimage-turbo", gpu="t4")
    assert z_t4.fits and z_t4.quantization == "nf4" and z_t4.dtype == "float16"
    z_a100 = mk.plan("zimage-turbo", gpu="a100-40")
    assert z_a100.quantization == "none" and z_a100.seconds_per_step < mk.plan("zimage-turbo", gpu="l4").seconds_per_step \
        < z_t4.seconds_per_step
    text = repr(z_t4)
    assert "download     ≈20.5 GB" in text and "(estimate:" in text and "per step" in text
    assert 0.05 < z_t4.seconds_per_step < 10 and z_t4.tflops_per_step > 10
    q = mk.plan("qwen-image", gpu="a100-40")
    assert q.fits and q.quantization == "nf4" and q.tflops_per_step > 2 * z_a100.tflops_per_step  # CFG: two passes
    assert mk.plan("qwen-image-edit", gpu="l4").offload == "group-to-disk"


def test_qwen_image_on_a_free_t4_is_refused_with_the_figures_and_where_it_runs():
    with pytest.raises(PlanDoesNotFitError) as err:
        mk.plan("qwen-image", gpu="t4")
    text = str(err.value)
    assert "nf4(transformer+text_encoder), offload=group-to-disk" in text and "GB RAM" in text
    assert err.value.details["nearest"].startswith("none on t4 at any size down to 512 px; elsewhere: qwen-image on "
                                                   "t4-highram")
    assert "tiny-qwenimage" in err.value.details["nearest"]
    smaller = mk.plan("qwen-image", gpu="t4-highram", width=832, height=832)
    assert smaller.fits and smaller.offload == "group-to-disk"


# ---- GGUF ----

def test_a_gguf_plan_counts_the_files_real_bytes_and_downloads_no_16_bit_transformer():
    from masuka_nb.hub import download_plan

    spec = get_model("zimage-turbo")
    plan = mk.plan("zimage-turbo", gpu="t4", quantization="gguf-q4")
    assert plan.quantized_file.endswith("/jayn7/Z-Image-Turbo-GGUF/resolve/main/z_image_turbo-Q4_K_M.gguf")
    assert plan.quantized_file_bytes == 4_980_000_000
    from masuka_nb.memory import component_gb

    assert component_gb(spec, "transformer", plan) == pytest.approx(4.98e9 / 1024**3)
    dplan = download_plan(spec, plan=plan, listing=[("transformer/config.json", 1), ("transformer/a.safetensors", 9),
                                                    ("vae/config.json", 1), ("z.gguf", 5)])
    assert {f.path for f in dplan.files} == {"transformer/config.json", "vae/config.json"}
    q8 = mk.plan("zimage-turbo", gpu="t4", quantization="gguf-q8")
    assert q8.quantized_file_bytes == 7_220_000_000 and q8.seconds_per_step < plan.seconds_per_step


def test_gguf_choices_are_checked():
    with pytest.raises(InvalidRequestError) as err:
        mk.plan("flux2-klein", gpu="t4", quantization="gguf-q4")
    assert err.value.argument == "gguf" and "gguf=" in err.value.hint
    with pytest.raises(InvalidRequestError) as err:
        mk.plan("zimage-turbo", gpu="t4", gguf="x/y/z.gguf")
    assert err.value.argument == "gguf"
    with pytest.raises(InvalidRequestError) as err:
        mk.plan("zimage-turbo", gpu="t4", quantization="gguf-q4", gguf="not a file")
    assert err.value.argument == "gguf"


@pytest.fixture
def tiny_gguf(tmp_path):
    from masuka_nb.models.tiny import build_tiny
    from masuka_nb.testing.gguf import write_zimage_gguf

    repo = tmp_path / "repo"
    path = write_zimage_gguf(build_tiny("tiny-zimage").transformer, repo / "tiny-zimage-Q4_0.gguf")
    (repo / "README.md").write_text("a GGUF written by the test\n")
    return path


@pytest.mark.parametrize("how", ["repo", "url"])
def test_a_gguf_written_by_the_test_downloads_loads_and_generates(tiny_gguf, how, tmp_path, monkeypatch):
    from masuka_nb.image.engine import default_engine
    from masuka_nb.models.embedded import reset_probe
    from masuka_nb.testing.hub import LocalHub, pointed_at

    with LocalHub() as hub:
        hub.add_repo("masuka-tests/tiny-zimage-gguf", tiny_gguf.parent)
        reset_probe()
        with pointed_at(hub.url, cache=tmp_path / "hf-cache"):
            source = ("masuka-tests/tiny-zimage-gguf/tiny-zimage-Q4_0.gguf" if how == "repo"
                      else f"{hub.url}/masuka-tests/tiny-zimage-gguf/resolve/main/tiny-zimage-Q4_0.gguf")
            plan = mk.plan("tiny-zimage", gpu="cpu", quantization="gguf-q4", gguf=source)
            assert plan.quantized_file_bytes == tiny_gguf.stat().st_size
            result = mk.generate("a red fox", model="tiny-zimage", steps=2, seed=1, save=False, plan=plan)
            assert hub.downloads("masuka-tests/tiny-zimage-gguf") == ["tiny-zimage-Q4_0.gguf"]
        reset_probe()
    transformer = default_engine().pipeline("tiny-zimage", plan=result.plan).transformer  # loaded: no reload
    assert type(transformer.layers[0].attention.to_q).__name__ == "GGUFLinear"
    assert result.recipe["quantization"] == "gguf-q4" and result.images[0].size == (64, 64)
    plain = mk.generate("a red fox", model="tiny-zimage", steps=2, seed=1, save=False)
    diff = np.abs(np.asarray(result.images[0], float) - np.asarray(plain.images[0], float)).mean()
    assert 0 < diff < 40  # 4-bit weights: close to the 16-bit model's pixels, not the same


def test_a_gguf_transformer_loads_per_component_onto_its_home(tiny_gguf):
    """GPU plans load one component at a time (plan.loading "per-component"): the GGUF plan's transformer comes
    from its single file there too, the other components from the model folder, as `load_pipeline` does it."""
    import dataclasses

    from masuka_nb.image.loading import component_home, load_component, load_pipeline
    from masuka_nb.models.tiny import ensure_tiny

    spec = get_model("tiny-zimage")
    plan = dataclasses.replace(mk.plan("tiny-zimage", gpu="cpu", quantization="gguf-q4", gguf=str(tiny_gguf)),
                               loading="per-component")
    path = ensure_tiny("tiny-zimage")
    transformer = load_component(spec, plan, "transformer", path=path)
    assert type(transformer.layers[0].attention.to_q).__name__ == "GGUFLinear"
    assert component_home(spec, plan, "transformer") == "cpu" == transformer.device.type
    pipe = load_pipeline(spec, plan, path=path)
    assert type(pipe.transformer.layers[0].attention.to_q).__name__ == "GGUFLinear"
    assert type(pipe.text_encoder.layers[0].self_attn.q_proj).__name__ == "Linear"  # only the transformer is GGUF


def test_a_w4a4_plan_reads_its_components_from_the_nunchaku_lite_repo(tmp_path):
    """A W4A4 plan's quantized components come from its repo (`quantized_path`), never from the model's own
    folder nor quantized while loading (SVDQuant weights are calibrated offline); without the repo it says so.
    The repo here holds a 16-bit transformer: what the routing reads, not Nunchaku's kernels (GPU-only)."""
    import dataclasses
    import json
    import shutil

    from masuka_nb.image.loading import load_component
    from masuka_nb.models.tiny import ensure_tiny

    spec = get_model("tiny-zimage")
    plan = dataclasses.replace(mk.plan("tiny-zimage", gpu="cpu"), quantization="w4a4",
                               quantized_components=("transformer",), quantized_repo="lite-infer/tiny")
    main, repo = tmp_path / "main", tmp_path / "w4a4"
    shutil.copytree(ensure_tiny("tiny-zimage"), main)
    repo.mkdir()
    shutil.move(str(main / "transformer"), repo / "transformer")  # the model's own folder no longer has it
    index = json.loads((main / "model_index.json").read_text())
    (repo / "model_index.json").write_text(json.dumps({"transformer": index["transformer"]}))
    transformer = load_component(spec, plan, "transformer", path=main, quantized_path=repo)
    assert type(transformer).__name__ == "ZImageTransformer2DModel"
    with pytest.raises(FileNotFoundError, match="Nunchaku Lite repo"):
        load_component(spec, plan, "transformer", path=main)


# ---- Nunchaku Lite ----

def _trust(monkeypatch, value: bool) -> None:
    import sys

    monkeypatch.setenv("DIFFUSERS_TRUST_REMOTE_KERNELS", "true" if value else "")
    constants = sys.modules.get("diffusers.utils.constants")
    if constants is not None:  # as if diffusers had been imported after the variable was set
        monkeypatch.setattr(constants, "DIFFUSERS_TRUST_REMOTE_KERNELS", value, raising=False)


def test_speed_fast_says_why_w4a4_is_not_used_without_consent(monkeypatch):
    _trust(monkeypatch, False)
    plan = mk.plan("zimage-turbo", gpu="t4", speed="fast")
    assert plan.quantization == "nf4"
    why = next(r for r in plan.reasons if "W4A4" in r)
    import importlib.util

    if importlib.util.find_spec("diffusers.quantizers.nunchaku") is None:  # Colab's diffusers 0.39
        assert "has no Nunchaku Lite backend (it came in 0.40" in why
    elif importlib.util.find_spec("kernels") is None:
        assert "pip install kernels" in why
    else:
        assert "DIFFUSERS_TRUST_REMOTE_KERNELS" in why and "rootonchair/nunchaku-lite-kernels" in why


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("diffusers.quantizers.nunchaku") is None
                    or __import__("importlib.util").util.find_spec("kernels") is None,
                    reason="this diffusers has no Nunchaku Lite backend or the kernels package is missing")
def test_speed_fast_picks_w4a4_where_the_gpu_and_libraries_allow(monkeypatch):
    _trust(monkeypatch, True)
    for gpu in ("t4", "l4", "a100-40"):
        plan = mk.plan("zimage-turbo", gpu=gpu, speed="fast")
        assert plan.quantization == "w4a4" and plan.quantized_repo.startswith("lite-infer/z-image-turbo-nunchaku-lite")
        assert plan.quantized_components == ("transformer", "text_encoder")
        assert plan.seconds_per_step < mk.plan("zimage-turbo", gpu=gpu).seconds_per_step
    hopper = mk.plan("zimage-turbo", gpu="h100", speed="fast")
    assert hopper.quantization != "w4a4" and any("Hopper" in r for r in hopper.reasons)
    qwen = mk.plan("qwen-image", gpu="a100-40", speed="fast")
    assert qwen.quantization == "nf4" and any("nvfp4 only" in r for r in qwen.reasons)
    flux = mk.plan("flux1-dev", gpu="a100-40", speed="fast")
    assert any("no Nunchaku Lite (W4A4) checkpoint is published for flux1-dev" in r for r in flux.reasons)
    # the engine keeps this plan apart from the NF4 one (a different load) and the recipe records it
    from masuka_nb.image.cache import compute_of

    assert compute_of(mk.plan("zimage-turbo", gpu="t4", speed="fast"))["quantization"] == "w4a4"


def test_without_nunchaku_lite_in_diffusers_the_plan_names_the_version(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "diffusers.quantizers.nunchaku" else real(name, *a))
    _trust(monkeypatch, True)
    plan = mk.plan("zimage-turbo", gpu="t4", speed="fast")
    why = next(r for r in plan.reasons if "W4A4" in r)
    assert "0.40" in why and "0.39" in why and plan.quantization == "nf4"
    with pytest.raises(InvalidRequestError) as err:
        mk.plan("zimage-turbo", gpu="t4", quantization="w4a4")
    assert err.value.argument == "quantization"


# ---- FLOPs ----

@pytest.mark.parametrize("model", ["zimage-turbo", "flux2-klein"])
def test_the_registry_flops_are_the_meta_models_own(model):
    from masuka_nb.models.flops import measure_tflops

    spec = get_model(model)
    measured = measure_tflops(model, width=1024, height=768, text_tokens=spec.flops.text_tokens)
    assert spec.flops.tflops(1024, 768) == pytest.approx(measured, rel=0.01)


def test_one_step_of_qwen_image_is_refused_before_it_decodes_nan():
    with pytest.raises(InvalidRequestError) as err:
        mk.generate("a fox", model="tiny-qwenimage", steps=1, save=False)
    assert err.value.argument == "steps" and "between 2 and" in str(err.value)


# ---- the README's model table ----

def readme_row(spec) -> str:
    """The README row of one model: licence, the free-T4 verdict with its figures (or why not and where it runs),
    and the page its facts come from. `python -m tests.models.test_models_2026` prints the whole table."""
    try:
        p = mk.plan(spec.id, gpu="t4")
    except PlanDoesNotFitError as err:
        message = err.message if hasattr(err, "message") else str(err)
        needs = message.split(" needs ", 1)[1].split(";", 1)[0].rstrip(".")
        near = err.details["nearest"].split("; on this machine")[0].replace(f"{spec.id} on ", "")
        near = near.replace("none on t4 at any size down to 512 px; elsewhere: ",
                            "not at any size down to 512 px; runs on ")
        verdict = f"**no**: the closest plan needs {needs}; nearest that fits: {near}"
    else:
        est = f", ≈{p.seconds_per_step:.1f} s/step (estimate)" if p.seconds_per_step else ""
        verdict = (f"yes: {p.label.split(': ', 1)[1]} (≈{p.peak_vram_gb:.1f} GB VRAM, "
                   f"≈{max(p.ram_gb, p.load_ram_gb):.1f} GB RAM{est})")
    src = spec.published_url or spec.licence_url
    return f"| {spec.title} (`{spec.id}`) | {spec.licence} | {verdict} | [{src.replace('https://', '')}]({src}) |"


def test_the_readme_model_table_shows_each_models_t4_verdict_and_source():
    from pathlib import Path

    from masuka_nb.models.registry import MODELS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [readme_row(s) for s in MODELS.values() if not s.tiny and readme_row(s) not in readme]
    assert not missing, "README rows out of date (python -m tests.models.test_models_2026 prints them):\n" + \
        "\n".join(missing)


if __name__ == "__main__":
    from masuka_nb.models.registry import MODELS

    print("| model | licence | free Colab T4 (15 GB VRAM, 12.7 GB RAM) | source |\n| --- | --- | --- | --- |")
    for s in MODELS.values():
        if not s.tiny:
            print(readme_row(s))


@pytest.mark.gpu
def test_a_gguf_transformer_runs_on_cuda(tiny_gguf):
    import torch

    from masuka_nb.image.engine import default_engine

    plan = mk.plan("tiny-zimage", quantization="gguf-q4", gguf=str(tiny_gguf))  # this machine: its CUDA GPU
    assert plan.device == "cuda"
    result = mk.generate("a red fox", model="tiny-zimage", steps=2, seed=1, save=False, plan=plan)
    layer = default_engine().pipeline("tiny-zimage", plan=result.plan).transformer.layers[0].attention.to_q
    assert type(layer).__name__ == "GGUFLinear" and layer.weight.device.type == "cuda"
    assert np.asarray(result.images[0]).std() > 0 and torch.cuda.max_memory_allocated() > 0


@pytest.mark.gpu
def test_w4a4_loads_where_nunchaku_lite_can_run(monkeypatch):
    """Only where everything Nunchaku Lite needs is here: diffusers ≥ 0.40, `kernels`, the user's consent, an
    sm_75/80/86/89 GPU and a reachable Hub (its kernels and the checkpoint come from there); otherwise the plan's
    reason is the result (test_speed_fast_says_why_w4a4_is_not_used_without_consent)."""
    from masuka_nb.models.embedded import hub_reachable
    from masuka_nb.models.quantized import nunchaku_available

    ok, why = nunchaku_available()
    if not ok or not hub_reachable():
        pytest.skip(why or "no Hub: Nunchaku Lite's kernels and checkpoint download from it")
    plan = mk.plan("zimage-turbo", speed="fast", width=512, height=512)
    if plan.quantization != "w4a4":
        pytest.skip(next(r for r in plan.reasons if "W4A4" in r))
    result = mk.generate("a red fox", model="zimage-turbo", steps=2, seed=1, width=512, height=512, save=False,
                         plan=plan)
    assert result.recipe["quantization"] == "w4a4" and np.asarray(result.images[0]).std() > 0
