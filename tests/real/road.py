"""The real road's cases and checks, shared by the tests in this folder.

Every registry model × t4/l4/a100-40 has a plan. Many of those plans coincide where it matters here: they
fetch the same files (a download set) or, run on this CPU (device switched to "cpu", everything else kept),
load and compute the same way (a load configuration). The cases below are those distinct sets and
configurations, computed from the plans at collection (plan() is pure: no hub, no torch), so each set is
downloaded once and each configuration loaded and stepped once, while every (model, profile) pair still has
its own download-plan check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import masuka_nb as mk
from masuka_nb.errors import PlanDoesNotFitError
from masuka_nb.models.registry import MODELS, get_model

TOKEN = "hf_masuka_test_token"  # the one conftest.py makes valid
REAL = [m.id for m in MODELS.values() if not m.tiny]
PROFILES = ("t4", "l4", "a100-40")
# The plans the runtime cannot run: plan() itself refuses them (PLAN_DOES_NOT_FIT, with a hint).
# Qwen-Image (20 B) fits no T4 even in NF4 with group offload to disk (its RAM and VRAM figures are in the refusal),
# nor an L4 at its default 1328 px; Qwen-Image-Edit fits an L4, not a T4.
REFUSED = {("wan2.2-ti2v-5b", "t4"), ("qwen-image", "t4"), ("qwen-image", "l4"), ("qwen-image-edit", "t4")}
PROMPT = "a red fox standing in fresh snow at golden hour, 35mm photo, shallow depth of field"


def plan_of(model: str, profile: str):
    """The plan, or the PlanDoesNotFitError plan() raised."""
    try:
        return mk.plan(model, gpu=profile)
    except PlanDoesNotFitError as exc:
        return exc


def on_cpu(plan):
    """The plan run on this CPU: its dtypes, NF4, text-encoder freeing and loading strategy kept; the
    device, offload hooks and compile (which need CUDA) dropped."""
    return dataclasses.replace(plan, device="cpu", offload="none", compile=False, first_block_cache=None)


def download_key(plan) -> tuple:
    """What decides the files a plan fetches (hub.download_plan reads nothing else)."""
    return (plan.quantized_repo, tuple(sorted(plan.quantized_components)) if plan.quantized_repo else ())


def load_key(plan) -> tuple:
    """What decides how a plan loads and computes on the CPU."""
    p = on_cpu(plan)
    return (p.dtype, p.vae_dtype, p.text_encoder_dtype, p.quantization, tuple(p.quantized_components),
            p.quantized_repo, p.free_text_encoders, p.loading)


def nf4_transformer(plan) -> bool:
    """diffusers quantizes a transformer only on CUDA: such a plan's CPU part stops at its text encoders."""
    return plan.quantization == "nf4" and "transformer" in plan.quantized_components


@dataclass(frozen=True)
class Case:
    """One distinct download set or load configuration of one model, and the profiles whose plans share it."""

    model: str
    kind: str  # "download" | "step" | "encoders"
    profiles: tuple[str, ...]

    @property
    def plan(self):
        return plan_of(self.model, self.profiles[0])

    @property
    def id(self) -> str:
        return f"{self.model}-{'+'.join(self.profiles)}"

    def __str__(self) -> str:
        return self.id


def _grouped(model: str, key, keep) -> list[tuple[str, ...]]:
    groups: dict[tuple, list[str]] = {}
    for profile in PROFILES:
        plan = plan_of(model, profile)
        if isinstance(plan, PlanDoesNotFitError) or not keep(plan):
            continue
        groups.setdefault(key(plan), []).append(profile)
    return [tuple(v) for v in groups.values()]


def download_cases() -> list[Case]:
    return [Case(m, "download", g) for m in REAL for g in _grouped(m, download_key, lambda p: True)]


def step_cases() -> list[Case]:
    return [Case(m, "step", g) for m in REAL for g in _grouped(m, load_key, lambda p: not nf4_transformer(p))]


def encoder_cases() -> list[Case]:
    """NF4-transformer plans: their NF4 text encoders, once per (encoder weights, dtype, pre-quantized or not)."""
    from masuka_nb.testing.twins import twin_component_key

    seen: dict[tuple, Case] = {}
    for m in REAL:
        for group in _grouped(m, load_key, nf4_transformer):
            plan = plan_of(m, group[0])
            key = tuple((twin_component_key(m, name), plan.dtype, plan.quantized_repo)
                        for name in plan.quantized_components if name != "transformer")
            if key and key not in seen:
                seen[key] = Case(m, "encoders", group)
    return list(seen.values())


# ---- the MASUKA home each download set lives in (one model's at a time) ----

class Homes:
    """MASUKA homes under `root`, one per (model, download set), for the model whose tests run now. The
    road's tests run model by model (conftest.py orders them), so a model's downloads are deleted when the
    next model's tests begin: the disk holds one model's files at a time, not every model's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.model: str | None = None

    def home(self, model: str, plan) -> Path:
        if self.model != model:
            self.release()
            self.model = model
        key = hashlib.sha1(repr(download_key(plan)).encode()).hexdigest()[:10]
        folder = self.root / f"{model}-{key}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def unload() -> None:
        """Drop the pipelines the engines keep loaded between calls."""
        from masuka_nb.image.engine import default_engine
        from masuka_nb.video import local

        default_engine().unload()
        local.unload()

    def release(self) -> None:
        self.unload()
        for child in self.root.iterdir() if self.root.is_dir() else ():
            shutil.rmtree(child, ignore_errors=True)
        self.model = None


def use_home(monkeypatch, folder: Path) -> None:
    from masuka_nb.config import reset_configuration

    monkeypatch.setenv("MASUKA_HOME", str(folder / "home"))
    monkeypatch.setenv("MASUKA_CACHE_DIR", str(folder / "cache"))
    monkeypatch.setenv("MASUKA_RESULT_CACHE", "0")  # every step is computed, never read back
    reset_configuration()


# ---- serving the twins ----

_served: set[str] = set()


def serve(hub, model: str) -> dict[str, Path]:
    """The model's twins (built once, cached by content) served by `hub`, gated like the real repo and
    granted to TOKEN (the user accepted the licence and set HF_TOKEN)."""
    from masuka_nb.testing.twins import build_twins

    spec = get_model(model)
    repos = build_twins([model])
    for repo, folder in repos.items():
        if repo not in _served:
            hub.add_repo(repo, folder, gated=spec.gated and repo == spec.repo)
            hub.grant(TOKEN, repo)
            _served.add(repo)
    return repos


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


def check_download_plan(spec, plan, dplan, repos: dict[str, Path]) -> None:
    from masuka_nb.testing.twins import TWINS

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


def smallest(spec) -> int:
    return max(spec.min_size, spec.size_multiple)


def step(spec, plan) -> Any:
    """The fewest steps the model takes (one; Qwen-Image's scheduler needs two) at the smallest size through the
    engine that offers the model; returns the result."""
    from PIL import Image

    size = smallest(spec)
    if spec.is_video:
        from masuka_nb.video.local import generate_local

        # One frame (num_frames is 4·k + 1): the smallest clip the engine makes.
        clip = generate_local(PROMPT, model=spec.id, width=size, height=size, num_frames=1, steps=1,
                              seed=1, plan=plan)
        assert clip.path.is_file() and clip.num_frames == 1
        return clip
    if spec.task in ("edit", "fill"):
        src = Image.new("RGB", (size, size), (200, 120, 40))
        mask = Image.new("L", (size, size), 0)
        mask.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
        result = mk.edit(src, "make it night", model=spec.id, steps=spec.min_steps, seed=1, plan=plan,
                         mask=mask if spec.task == "fill" else None, save=False)
    else:
        result = mk.generate(PROMPT, model=spec.id, width=size, height=size, steps=spec.min_steps, seed=1, plan=plan,
                             save=False)
    assert not result.cached and len(result.images) == 1 and result.images[0].size == (size, size)
    assert any(low < high for low, high in result.images[0].getextrema()), "a flat image: NaN latents?"
    return result
