"""Each registry model's default road for t4, l4 and a100, on real-layout twins served by the local Hub:
plan() → the download plan → huggingface_hub downloads exactly the folders the pipeline loads → every
tokenizer fits its text encoder → load with the plan's dtypes and quantization → one step through the
engine that offers the model (generate / edit / generate_local).

The GPU profiles' plans run on this CPU with the plan's device switched to "cpu" (dtypes, quantization and
text-encoder freeing kept). diffusers cannot quantize a transformer without CUDA, so where a plan puts the
transformer in NF4 the CPU part stops after loading and running its NF4 text encoders (transformers
quantizes on a CPU); `test_nf4_transformer_plan_steps_on_cuda` runs those plans whole on a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import masuka_nb as mk
from masuka_nb.errors import MasukaError, PlanDoesNotFitError
from masuka_nb.hub import DownloadPlan, download_plan, locate_model
from masuka_nb.models.registry import MODELS, get_model
from masuka_nb.testing.twins import TWINS, build_twins

TOKEN = "hf_masuka_test_token"  # the one tests/real/conftest.py makes valid

pytestmark = pytest.mark.slow

REAL = [m.id for m in MODELS.values() if not m.tiny]
PROFILES = ("t4", "l4", "a100-40")
PROMPT = "a red fox standing in fresh snow at golden hour, 35mm photo, shallow depth of field"
_served: set[str] = set()


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def road_home(tmp_path_factory):
    """One MASUKA home and model cache for the module: each download set is fetched once."""
    folder = tmp_path_factory.mktemp("road")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)  # GBs of downloaded twins


@pytest.fixture
def road(on_local_hub, road_home, monkeypatch):
    from masuka_nb.config import reset_configuration

    monkeypatch.setenv("MASUKA_HOME", str(road_home / "home"))
    monkeypatch.setenv("MASUKA_CACHE_DIR", str(road_home / "cache"))
    monkeypatch.setenv("MASUKA_RESULT_CACHE", "0")  # every step below is computed, never read back
    reset_configuration()
    yield on_local_hub
    from masuka_nb.image.engine import default_engine
    from masuka_nb.video import local

    default_engine().unload()
    local.unload()


def _serve(hub, model: str) -> dict[str, Path]:
    spec = get_model(model)
    repos = build_twins([model])
    for repo, folder in repos.items():
        if repo not in _served:
            hub.add_repo(repo, folder, gated=spec.gated and repo == spec.repo)
            hub.grant(TOKEN, repo)  # the user accepted the licence and set HF_TOKEN
            _served.add(repo)
    return repos


def _plan(model: str, profile: str):
    try:
        return mk.plan(model, gpu=profile)
    except PlanDoesNotFitError as exc:  # a plan the runtime cannot run is refused by plan() itself
        assert exc.code == "PLAN_DOES_NOT_FIT" and exc.hint
        pytest.skip(f"plan() refuses {model} on {profile}: {exc}")


# ---- what the pipeline loads, read from the repo's own model_index.json ----

def expected_files(spec, plan, repos: dict[str, Path]) -> dict[str, set[str]]:
    """Per repo, the files a diffusers load of this plan reads: model_index.json, the scheduler, each listed
    component's configs and safetensors (from the pre-quantized repo for the components it holds), every
    tokenizer file."""
    main = repos[spec.repo]
    index = json.loads((main / "model_index.json").read_text())
    loaded = [k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v[0]]
    elsewhere = set(plan.quantized_components) if plan.quantized_repo else set()
    want: dict[str, set[str]] = {spec.repo: {"model_index.json"}}
    for comp in loaded:
        if comp in elsewhere:
            continue
        for f in (main / comp).rglob("*"):
            rel = f.relative_to(main).as_posix()
            if f.is_file() and (comp.startswith(("tokenizer", "scheduler", "processor"))
                                or rel.endswith((".json", ".safetensors"))):
                want[spec.repo].add(rel)
    if elsewhere:
        q = repos[plan.quantized_repo]
        want[plan.quantized_repo] = {f.relative_to(q).as_posix() for comp in elsewhere for f in (q / comp).rglob("*")
                                     if f.is_file()} | {"model_index.json"}
    return want


def check_download_plan(spec, plan, dplan: DownloadPlan, repos: dict[str, Path]) -> None:
    want = expected_files(spec, plan, repos)
    got = {dplan.repo: {f.path for f in dplan.files}, **{x.repo: {f.path for f in x.files} for x in dplan.extra}}
    for repo in want.keys() | got.keys():
        missing, extra = want.get(repo, set()) - got.get(repo, set()), got.get(repo, set()) - want.get(repo, set())
        assert not missing, f"{spec.id} / {plan.label}: the plan misses {sorted(missing)} of {repo}"
        assert not extra, f"{spec.id} / {plan.label}: the plan fetches {sorted(extra)} of {repo}, which no load reads"
    standins = set(TWINS[spec.id].stand_ins)
    assert not standins & got[spec.repo]


def check_tokenizers(spec, folders: dict[str, Path]) -> None:
    """Every text encoder's tokenizer loads from the downloaded files, fits the encoder's vocabulary and reads
    a normal prompt without unknown tokens."""
    from transformers import AutoTokenizer

    from masuka_nb.hub import _TOKENIZER_FOR

    main = folders[spec.repo]
    for enc in spec.text_encoders:
        config_dir = next(f / enc.name for f in folders.values() if (f / enc.name / "config.json").is_file())
        config = json.loads((config_dir / "config.json").read_text())
        vocab = config.get("vocab_size") or config["text_config"]["vocab_size"]  # Qwen2.5-VL nests it (transformers 5)
        tok_dir = main / _TOKENIZER_FOR[enc.name]
        assert (tok_dir / "tokenizer_config.json").is_file(), f"{spec.id}: {tok_dir.name} was not downloaded"
        tok = AutoTokenizer.from_pretrained(str(tok_dir))
        assert 0.95 * vocab <= len(tok) <= vocab, f"{spec.id}/{enc.name}: tokenizer {len(tok)} vs encoder {vocab}"
        ids = tok(PROMPT, add_special_tokens=False).input_ids
        assert ids and max(ids) < vocab
        if tok.unk_token_id is not None:
            assert tok.unk_token_id not in ids, f"{spec.id}/{enc.name}: unknown tokens in a normal prompt"


def _download(spec, plan, hub, repos):
    dplan = download_plan(spec, plan=plan)
    check_download_plan(spec, plan, dplan, repos)
    folders = {dplan.repo: locate_model(spec, dplan)}
    for extra in dplan.extra:
        folders[extra.repo] = locate_model(spec, extra)
    for repo, folder in folders.items():
        want = {f.path for f in (dplan.files if repo == dplan.repo else next(x for x in dplan.extra if x.repo == repo).files)}
        on_disk = {f.relative_to(folder).as_posix() for f in folder.rglob("*") if f.is_file()
                   and ".cache" not in f.parts and not f.name.startswith(".masuka")}
        assert on_disk == want, f"{repo}: {sorted(on_disk ^ want)}"
        assert set(hub.downloads(repo)) <= want
    return dplan, folders


def _nf4_text_encoders_on_cpu(spec, plan, folders) -> None:
    import torch
    import transformers
    from transformers import AutoTokenizer

    from masuka_nb.hub import _TOKENIZER_FOR

    main = folders[spec.repo]
    for name in plan.quantized_components:
        if name == "transformer":
            continue
        src = folders.get(plan.quantized_repo, main) if plan.quantized_repo else main
        cfg = json.loads((src / name / "config.json").read_text())
        cls = getattr(transformers, cfg["architectures"][0])
        kwargs = {} if "quantization_config" in cfg else {"quantization_config": transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=getattr(torch, plan.dtype))}
        model = cls.from_pretrained(str(src / name), dtype=getattr(torch, plan.dtype), **kwargs)
        assert any("4bit" in type(m).__name__ for m in model.modules()), f"{name} did not load in NF4"
        tok = AutoTokenizer.from_pretrained(str(main / _TOKENIZER_FOR[name]))
        with torch.inference_mode():
            ids = tok(PROMPT, return_tensors="pt").input_ids
            out = model(input_ids=ids, output_hidden_states=True)
        hidden = out.hidden_states[-1] if getattr(out, "hidden_states", None) else out.last_hidden_state
        assert hidden.shape[:2] == ids.shape and torch.isfinite(hidden.float()).all()
        del model


def _step(spec, plan) -> None:
    from PIL import Image

    cpu = dataclasses.replace(plan, device="cpu", offload="none", compile=False, first_block_cache=None)
    size = max(spec.min_size, spec.size_multiple)
    if spec.is_video:
        from masuka_nb.video.local import generate_local

        clip = generate_local(PROMPT, model=spec.id, width=size, height=size, num_frames=5, steps=spec.min_steps,
                              seed=1, plan=cpu)
        assert clip.path.is_file() and clip.num_frames == 5
        return
    if spec.task in ("edit", "fill"):
        src = Image.new("RGB", (size, size), (200, 120, 40))
        mask = Image.new("L", (size, size), 0)
        mask.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
        result = mk.edit(src, "make it night", model=spec.id, steps=spec.min_steps, seed=1, plan=cpu,
                         mask=mask if spec.task == "fill" else None, save=False)
    else:
        result = mk.generate(PROMPT, model=spec.id, width=size, height=size, steps=spec.min_steps, seed=1, plan=cpu,
                             save=False)
    assert not result.cached and len(result.images) == 1 and result.images[0].size == (size, size)
    assert np.asarray(result.images[0]).std() > 0  # a NaN latent decodes to one flat colour


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("model", REAL)
def test_default_road(road, model, profile, request):
    spec = get_model(model)
    plan = _plan(model, profile)
    repos = _serve(road, model)
    road.clear_log()
    _, folders = _download(spec, plan, road, repos)
    check_tokenizers(spec, folders)
    if "transformer" in plan.quantized_components and not _has_cuda():
        _nf4_text_encoders_on_cpu(spec, plan, folders)
        return  # the NF4 transformer loads only on CUDA: test_nf4_transformer_plan_steps_on_cuda
    if spec.family == "flux2":
        request.applymarker(pytest.mark.xfail(strict=True, raises=MasukaError, reason=(
            "FLUX.2 [klein] reads Qwen3 hidden states 9, 18 and 27, and the twin's Qwen3 is cut to one layer "
            "(28 real-width layers are 6 GB); its download, tokenizer and NF4 encoder checks above still ran")))
    _step(spec, plan)


def test_a_plan_without_a_tokenizer_folder_fails_the_road_check(road):
    spec = get_model("flux1-dev")
    plan = _plan("flux1-dev", "t4")
    repos = _serve(road, "flux1-dev")
    good = download_plan(spec, plan=plan)
    check_download_plan(spec, plan, good, repos)
    allow = tuple(p for p in good.allow_patterns if not p.startswith("tokenizer_2"))
    broken = DownloadPlan(good.repo, good.revision, allow, good.ignore_patterns,
                          tuple(f for f in good.files if not f.path.startswith("tokenizer_2/")), good.extra)
    with pytest.raises(AssertionError, match=r"tokenizer_2/spiece\.model"):
        check_download_plan(spec, plan, broken, repos)


@pytest.mark.gpu
@pytest.mark.parametrize("model", [m for m in REAL if not get_model(m).is_video])
def test_nf4_transformer_plan_steps_on_cuda(road, model):
    import torch

    spec = get_model(model)
    plan = _plan(model, "t4")
    if "transformer" not in plan.quantized_components:
        pytest.skip(f"{model}'s T4 plan does not quantize the transformer")
    _serve(road, model)
    from masuka_nb.image.engine import default_engine

    size = max(spec.min_size, spec.size_multiple)
    if spec.task in ("edit", "fill"):
        from PIL import Image

        result = mk.edit(Image.new("RGB", (size, size)), "make it night", model=model, steps=1, seed=1, plan=plan,
                         mask=Image.new("L", (size, size), 255) if spec.task == "fill" else None, save=False)
    else:
        result = mk.generate(PROMPT, model=model, width=size, height=size, steps=1, seed=1, plan=plan, save=False)
    assert len(result.images) == 1
    pipe = default_engine().pipeline(model, plan=result.plan)  # the loaded one (ImageEngine has no _pipe now)
    assert any("4bit" in type(m).__name__ for m in pipe.transformer.modules())
    assert torch.cuda.max_memory_allocated() > 0 and math.isfinite(float(torch.cuda.max_memory_allocated()))


# Models whose every default plan puts the transformer in NF4 (Qwen-Image: none fits below an A100 otherwise) never
# step above on a CPU; their twins step here under the same download set in 16 bit, so the pipeline, its call
# arguments (true_cfg_scale, the " " negative prompt) and the real-width components still run once.
NF4_ONLY = [m for m in REAL if not get_model(m).is_video and get_model(m).family == "qwenimage"]


@pytest.mark.parametrize("model", NF4_ONLY)
def test_a_model_planned_only_in_nf4_steps_in_16_bit_on_the_cpu(road, model):
    spec = get_model(model)
    if spec.task == "edit":
        pytest.importorskip("torchvision", reason="Qwen2VLProcessor needs torchvision (Colab ships it)")
    plan = _plan(model, "a100-40")
    assert "transformer" in plan.quantized_components
    repos = _serve(road, model)
    _, folders = _download(spec, plan, road, repos)
    check_tokenizers(spec, folders)
    bf16 = dataclasses.replace(plan, quantization="none", quantized_components=(), quantized_repo=None)
    _step(spec, bf16)
