"""Each registry model's default road for t4, l4 and a100, on real-layout twins served by the local Hub:
plan() → the download plan → huggingface_hub downloads exactly the folders the pipeline loads → every
tokenizer fits its text encoder → load with the plan's dtypes and quantization, one component at a time →
one step through the engine that offers the model (generate / edit / generate_local).

Plans that coincide are run once (tests/real/road.py): every (model, profile) plan's file list is checked
against the Hub listing; each distinct download set is downloaded once; each distinct load configuration
on this CPU (the plan with its device switched to "cpu": dtypes, NF4, text-encoder freeing and loading kept)
is loaded and stepped once. diffusers quantizes a transformer only on CUDA, so the CPU part of an NF4-
transformer plan loads and runs its NF4 text encoders (transformers quantizes on a CPU) through the engine's
own component loader; `test_nf4_transformer_plan_steps_on_cuda` runs those plans whole on a GPU. A model
whose every plan has an NF4 transformer (Qwen-Image, Qwen-Image-Edit) steps once here from the same download
set in 16 bit (`test_a_model_planned_only_in_nf4_steps_in_16_bit_on_the_cpu`), so its pipeline still runs.
"""

from __future__ import annotations

import math

import pytest

import masuka_nb as mk
from masuka_nb.errors import PlanDoesNotFitError
from masuka_nb.hub import DownloadPlan, download_plan, locate_model
from masuka_nb.models.registry import get_model
from tests.real.road import (
    PROFILES,
    PROMPT,
    REAL,
    REFUSED,
    check_download_plan,
    check_tokenizers,
    download_cases,
    encoder_cases,
    on_cpu,
    plan_of,
    serve,
    step,
    step_cases,
    use_home,
)

pytestmark = pytest.mark.slow


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ---- every (model, profile): the plan, and the files it would fetch, from the Hub's listing ----

@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("model", REAL)
def test_every_plan_fetches_exactly_what_it_loads(on_local_hub, model, profile):
    spec = get_model(model)
    plan = plan_of(model, profile)
    if (model, profile) in REFUSED:  # the runtime cannot run it: plan() says so, with the way out
        assert isinstance(plan, PlanDoesNotFitError) and plan.code == "PLAN_DOES_NOT_FIT" and plan.hint
        return
    assert not isinstance(plan, PlanDoesNotFitError), f"plan() refused {model} on {profile}: {plan}"
    repos = serve(on_local_hub, model)
    on_local_hub.clear_log()
    dplan = download_plan(spec, plan=plan)  # the Hub's listing, with sizes, through huggingface_hub
    check_download_plan(spec, plan, dplan, repos)
    assert dplan.total_bytes == sum(f.stat().st_size for repo, files in _want_paths(dplan, repos).items()
                                    for f in files)
    assert not on_local_hub.downloads(), "planning a download fetched file contents"


def _want_paths(dplan, repos):
    out = {dplan.repo: [repos[dplan.repo] / f.path for f in dplan.files]}
    for extra in dplan.extra:
        out[extra.repo] = [repos[extra.repo] / f.path for f in extra.files]
    return out


def test_a_plan_without_a_tokenizer_folder_fails_the_road_check(on_local_hub):
    spec = get_model("flux1-dev")
    plan = mk.plan("flux1-dev", gpu="t4")
    repos = serve(on_local_hub, "flux1-dev")
    good = download_plan(spec, plan=plan)
    check_download_plan(spec, plan, good, repos)
    allow = tuple(p for p in good.allow_patterns if not p.startswith("tokenizer_2"))
    broken = DownloadPlan(good.repo, good.revision, allow, good.ignore_patterns,
                          tuple(f for f in good.files if not f.path.startswith("tokenizer_2/")), good.extra)
    with pytest.raises(AssertionError, match=r"tokenizer_2/spiece\.model"):
        check_download_plan(spec, plan, broken, repos)


# ---- each distinct download set: fetched through huggingface_hub, exactly, tokenizers included ----

@pytest.mark.parametrize("case", download_cases(), ids=str)
def test_download_set(on_local_hub, road_homes, monkeypatch, case):
    spec, plan = get_model(case.model), case.plan
    use_home(monkeypatch, road_homes.home(case.model, plan))
    repos = serve(on_local_hub, case.model)
    on_local_hub.clear_log()
    dplan = download_plan(spec, plan=plan)
    check_download_plan(spec, plan, dplan, repos)
    folders = {dplan.repo: locate_model(spec, dplan)}
    for extra in dplan.extra:
        folders[extra.repo] = locate_model(spec, extra)
    for repo, folder in folders.items():
        want = {f.path for f in (dplan.files if repo == dplan.repo else
                                 next(x for x in dplan.extra if x.repo == repo).files)}
        on_disk = {f.relative_to(folder).as_posix() for f in folder.rglob("*") if f.is_file()
                   and ".cache" not in f.parts and not f.name.startswith(".masuka")}
        assert on_disk == want, f"{repo}: {sorted(on_disk ^ want)}"
        assert set(on_local_hub.downloads(repo)) <= want
    check_tokenizers(spec, folders)


# ---- NF4-transformer plans on a CPU: their NF4 text encoders, through the engine's component loader ----

@pytest.mark.parametrize("case", encoder_cases(), ids=str)
def test_nf4_text_encoders_load_and_encode(on_local_hub, road_homes, monkeypatch, case):
    import torch
    from transformers import AutoTokenizer

    from masuka_nb.hub import _TOKENIZER_FOR
    from masuka_nb.image.loading import component_dtype, load_component

    spec, plan = get_model(case.model), case.plan
    use_home(monkeypatch, road_homes.home(case.model, plan))
    serve(on_local_hub, case.model)
    dplan = download_plan(spec, plan=plan)
    path = locate_model(spec, dplan)
    quantized_path = locate_model(spec, dplan.extra[0]) if plan.quantized_repo else None
    cpu = on_cpu(plan)
    for name in plan.quantized_components:
        if name == "transformer":
            continue
        encoder = load_component(spec, cpu, name, path=path, quantized_path=quantized_path)
        assert any("4bit" in type(m).__name__ for m in encoder.modules()), f"{name} did not load in NF4"
        assert component_dtype(spec, cpu, name) == plan.dtype
        tok = AutoTokenizer.from_pretrained(str(path / _TOKENIZER_FOR[name]))
        with torch.inference_mode():
            ids = tok(PROMPT, return_tensors="pt").input_ids
            out = encoder(input_ids=ids, output_hidden_states=True)
        hidden = out.hidden_states[-1] if getattr(out, "hidden_states", None) else out.last_hidden_state
        assert hidden.shape[:2] == ids.shape and torch.isfinite(hidden.float()).all()
        del encoder


# ---- each distinct CPU load configuration: loaded as planned, one step through its engine ----

@pytest.mark.parametrize("case", step_cases(), ids=str)
def test_step(on_local_hub, road_homes, monkeypatch, case):
    spec, plan = get_model(case.model), on_cpu(case.plan)
    use_home(monkeypatch, road_homes.home(case.model, case.plan))
    serve(on_local_hub, case.model)
    result = step(spec, plan)
    _check_loaded_as_planned(spec, plan)
    if spec.family == "flux2":
        _klein_reads_the_hidden_states_its_pipeline_names(spec, result)
    if spec.family == "zimage":
        _zimage_encodes_through_the_layers_its_pipeline_reads(spec)


# Models whose every plan puts the transformer in NF4 (Qwen-Image: no plan fits below an A100 otherwise) have no
# CPU step above; their twins step here from the same download set in 16 bit, so the pipeline, its call arguments
# (true_cfg_scale, the " " negative prompt, the edit's image processor) and the real-width components still run.
NF4_ONLY = [m for m in REAL if not get_model(m).is_video and not any(c.model == m for c in step_cases())]


@pytest.mark.parametrize("model", NF4_ONLY)
def test_a_model_planned_only_in_nf4_steps_in_16_bit_on_the_cpu(on_local_hub, road_homes, monkeypatch, model):
    import dataclasses

    spec = get_model(model)
    if spec.task == "edit":
        pytest.importorskip("torchvision", reason="Qwen2VLProcessor needs torchvision (Colab ships it)")
    plan = next(p for p in (plan_of(model, profile) for profile in PROFILES)
                if not isinstance(p, PlanDoesNotFitError))
    assert "transformer" in plan.quantized_components and not plan.quantized_repo
    use_home(monkeypatch, road_homes.home(model, plan))  # the download set test_download_set fetched
    serve(on_local_hub, model)
    sixteen = dataclasses.replace(on_cpu(plan), quantization="none", quantized_components=())
    step(spec, sixteen)
    _check_loaded_as_planned(spec, sixteen)


def _check_loaded_as_planned(spec, plan) -> None:
    """Every weighted component is in the dtype the plan gives it, NF4 where the plan quantizes it."""
    import torch

    from masuka_nb.image.loading import component_dtype

    pipe = _loaded_pipeline(spec)
    for comp in spec.components:
        module = getattr(pipe, comp.name)
        if comp.name in plan.quantized_components:
            assert any("4bit" in type(m).__name__ for m in module.modules()), f"{comp.name} is not NF4"
            continue
        want = getattr(torch, component_dtype(spec, plan, comp.name))
        dtypes = {p.dtype for p in module.parameters()}
        assert want in dtypes and dtypes <= {want, torch.float32}, f"{comp.name}: {dtypes}, planned {want}"


def _loaded_pipeline(spec):
    """The pipeline the last step loaded, as the device host holds it (image engine's slot, or video's)."""
    from masuka_nb.host import device_host
    from masuka_nb.image.engine import default_engine
    from masuka_nb.video import local

    engine = default_engine()
    slot = local.TASK if spec.is_video else engine.slot
    held = [key for key, model, _ in device_host().in_slot(slot) if model == spec.id]
    assert len(held) == 1, f"the device host holds {len(held)} pipelines of {spec.id}"
    return device_host().get(held[0])


def _klein_reads_the_hidden_states_its_pipeline_names(spec, result) -> None:
    """The step just made encoded the prompt the pipeline's own way: the Qwen3 twin (narrow inside each
    layer, TWIN_NOTES) has every hidden state in diffusers' `text_encoder_out_layers`, the last of them a
    layer's raw output as in the real 36-layer model (not the final, normed one), at the real width, and
    their concatenation is the transformer's joint_attention_dim. The image is not flat: an overflow in the
    28 layers under the T4 plan's fp16 would have turned the embeddings, then every pixel, to NaN (black)."""
    import inspect

    from masuka_nb.models.real_configs import real_config

    pipe = _loaded_pipeline(spec)
    read = inspect.signature(type(pipe).__call__).parameters["text_encoder_out_layers"].default
    config, real = pipe.text_encoder.config, real_config(spec.id, "text_encoder").config
    assert max(read) < config.num_hidden_layers <= real["num_hidden_layers"]
    assert (config.hidden_size, config.vocab_size, config.head_dim) == (real["hidden_size"], real["vocab_size"],
                                                                        real["head_dim"])
    assert pipe.transformer.config.joint_attention_dim == len(read) * config.hidden_size
    assert any(low < high for low, high in result.images[0].getextrema()), "a flat image: NaN embeddings?"


def _zimage_encodes_through_the_layers_its_pipeline_reads(spec) -> None:
    """ZImagePipeline reads `hidden_states[-2]`: the narrow twin (TWIN_NOTES) has the real model's 36 layers at
    the real width, so what the pipeline encodes has passed 35 of them, and is not the bare token embedding a
    one-layer cut would hand it."""
    import torch

    from masuka_nb.models.real_configs import real_config

    pipe = _loaded_pipeline(spec)
    config, real = pipe.text_encoder.config, real_config(spec.id, "text_encoder").config
    assert (config.num_hidden_layers, config.hidden_size) == (real["num_hidden_layers"], real["hidden_size"])
    with torch.inference_mode():
        embeds, _ = pipe.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False)
        ids = pipe.tokenizer(pipe.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                                                add_generation_prompt=True, enable_thinking=True),
                             return_tensors="pt").input_ids
        bare = pipe.text_encoder.get_input_embeddings()(ids)[0]
    assert embeds[0].shape == bare.shape and torch.isfinite(embeds[0].float()).all()
    assert not torch.allclose(embeds[0].float(), bare.float(), atol=1e-3), "the encode skipped every layer"


# ---- host RAM while loading: measured from outside the loading process, against the planner ----

def _rss_bytes(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) resident memory of a process. Weights read from memory-mapped safetensors
    in the dtype they are stored in stay file-backed pages (page cache the kernel could drop, but a model in
    use touches them every step): RAM all the same, so the planner's figure is checked against the sum."""
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("RssAnon:", "RssFile:")):
                fields[line.split(":")[0]] = int(line.split()[1]) * 1024
    return fields["RssAnon"], fields["RssFile"]


def _twin_spec(spec, folder):
    """`spec` with each component's tensor counts read from the twin's own safetensors headers: the planner's
    formulas applied to the twin's bytes instead of the full model's."""
    import dataclasses

    from safetensors import safe_open

    comps = []
    for comp in spec.components:
        numels = []
        for file in sorted((folder / comp.name).glob("*.safetensors")):
            with safe_open(str(file), "pt") as f:
                numels += [math.prod(f.get_slice(k).get_shape()) for k in f.keys()]  # noqa: SIM118
        comps.append(dataclasses.replace(comp, params_b=sum(numels) / 1e9, nf4_b=0.0, fp32_b=0.0, fp32_bf16_b=0.0,
                                         largest_b=max(numels) / 1e9))
    return dataclasses.replace(spec, components=tuple(comps))


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="reads /proc (Linux)")
@pytest.mark.parametrize(("model", "profile"), [("flux1-schnell", "a100-40"), ("flux1-schnell", "cpu"),
                                                ("flux2-klein", "t4"), ("zimage-turbo", "l4")])
def test_host_ram_while_loading_is_what_the_planner_says(on_local_hub, road_homes, monkeypatch, model, profile):
    """The engine's loader reads a real-width twin (1.8–2.2 GB of bf16 files) as the plan says ("per-component"
    on the GPU plans: on this CPU every component's home is RAM; "pipeline" on a CPU plan), in the plan's
    dtypes (klein's T4 plan casts to fp16, its VAE to fp32); the peak of the loading process's resident memory
    above its imports, watched from outside, is what the planner's `load_ram_gb` says for the twin's bytes."""
    import json
    import os
    import subprocess
    import sys
    import threading
    import time
    from pathlib import Path

    from masuka_nb.memory import BASE_RAM_GB, GIB, estimate

    spec = get_model(model)
    gpu_plan = mk.plan(model, gpu="a100-40")
    use_home(monkeypatch, road_homes.home(model, gpu_plan))
    serve(on_local_hub, model)
    path = locate_model(spec, download_plan(spec, plan=gpu_plan))
    # A machine with the RAM for the whole model (the twin is 1.8 GB; the real one is 38).
    plan = mk.plan(model, gpu=profile, ram_gb=64 if profile == "cpu" else None)
    plan = on_cpu(plan) if plan.device == "cuda" else plan
    assert plan.quantization == "none"  # the twin spec has no NF4 / keep-in-fp32 split
    assert plan.loading == ("pipeline" if profile == "cpu" else "per-component")
    estimated = estimate(_twin_spec(spec, path), plan)
    planned, weights = (estimated.load_ram_gb - BASE_RAM_GB) * GIB, estimated.weights_gb * GIB
    child = Path(__file__).with_name("load_ram_child.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(child), model, profile, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)

    def watch(command: str) -> tuple[int, int, str]:
        """Send `command`, then sample the child's memory until it answers: (peak anon, peak total, answer),
        both above the baseline taken after its imports."""
        done: dict = {}
        reader = threading.Thread(target=lambda: done.update(line=proc.stdout.readline()))
        reader.start()
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        peak_anon = peak_total = 0
        while True:
            alive = reader.is_alive()
            anon, file = _rss_bytes(proc.pid)
            peak_anon, peak_total = max(peak_anon, anon - base[0]), max(peak_total, anon + file - sum(base))
            if not alive:
                return peak_anon, peak_total, done["line"]
            time.sleep(0.002)

    try:
        assert proc.stdout.readline().strip() == "ready"
        base = _rss_bytes(proc.pid)
        anon, total, line = watch("go")
        assert line.startswith("done "), line
        report = json.loads(line[5:])
        _, used, line = watch("touch")
        assert line.strip() == "touched", line
        proc.stdin.write("bye\n")
        proc.stdin.flush()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    from masuka_nb.image.loading import component_dtype

    assert report["loading"] == plan.loading
    assert report["dtypes"] == {c.name: [f"torch.{component_dtype(spec, plan, c.name)}"] for c in spec.components}
    print(f"{plan.label} ({plan.loading}): RAM while loading {total / GIB:.2f} GiB ({anon / GIB:.2f} anonymous), "
          f"once every weight is read {used / GIB:.2f} GiB; planned {planned / GIB:.2f} GiB while loading, "
          f"{weights / GIB:.2f} GiB of weights")
    assert total <= planned * 1.10, f"loading took {total / GIB:.2f} GiB, planned {planned / GIB:.2f}"
    # Once read, the weights are all resident; what a cast freed may stay in the allocator's arenas (up to
    # the loading window the planner counts), never more than the loading peak it planned.
    assert 0.9 * weights <= used <= planned * 1.10, f"the weights take {used / GIB:.2f} GiB, planned {weights / GIB:.2f}"
    if all(d == ["torch.bfloat16"] for d in report["dtypes"].values()):
        # Stored and loaded in bf16: the weights stay memory-mapped file pages, read in as they are used.
        assert anon <= 0.1 * planned
    else:  # a cast (fp16, an fp32 VAE) makes every tensor anew while loading
        assert total >= planned * 0.8, f"loading took {total / GIB:.2f} GiB, planned {planned / GIB:.2f}"


# ---- GPU: the NF4-transformer plans, whole ----

@pytest.mark.gpu
@pytest.mark.parametrize("model", [m for m in REAL if not get_model(m).is_video])
def test_nf4_transformer_plan_steps_on_cuda(on_local_hub, road_homes, monkeypatch, model):
    import torch

    spec = get_model(model)
    # The T4 plan, or the smallest GPU's that plan() does not refuse (Qwen-Image fits no T4).
    plan = next(p for p in (plan_of(model, profile) for profile in PROFILES)
                if not isinstance(p, PlanDoesNotFitError))
    if "transformer" not in plan.quantized_components:
        pytest.skip(f"{model}'s {plan.label} plan does not quantize the transformer")
    use_home(monkeypatch, road_homes.home(model, plan))
    serve(on_local_hub, model)

    step(spec, plan)
    pipe = _loaded_pipeline(spec)
    assert any("4bit" in type(m).__name__ for m in pipe.transformer.modules())
    assert torch.cuda.max_memory_allocated() > 0 and math.isfinite(float(torch.cuda.max_memory_allocated()))
