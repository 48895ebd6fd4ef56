"""Replaying another tool's image: map its model and LoRAs to what MASUKA can run, and say what differs.

A foreign recipe (`recipes.Recipe`) is turned into a `generate` call step by step: the model (registry name,
else its hash or Civitai id looked up on Civitai), the tiny twin where no GPU can run the real one, each LoRA
(library, Civitai by version or by hash, downloaded through `hosted.civitai`), then the numbers MASUKA's
request accepts. Every compromise lands in `GenerationResult.warnings` and the recipe's ``reproduced_from``.
"""

from __future__ import annotations

from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import LoraIncompatibleError, MasukaError, RecipeUnsupportedError
from masuka_nb.hosted.civitai import CivitaiClient, fetch_lora, find_in_library
from masuka_nb.image.engine import default_engine
from masuka_nb.image.generation import run
from masuka_nb.image.lora import validate_lora
from masuka_nb.image.request import MAX_SEED
from masuka_nb.log import get_logger
from masuka_nb.models.embedded import use_embedded_models
from masuka_nb.models.matching import match_model
from masuka_nb.models.registry import get_model

__all__ = ["reproduce_foreign"]

log = get_logger(__name__)

TINY_TWINS = {"flux": "tiny-flux", "sd3": "tiny-sd3", "flux2": "tiny-flux2-klein"}
_NOISE_NOTE = ("{tool} draws its starting noise differently from diffusers, so the same seed gives a different "
               "image: the composition will differ, the settings are the same")


def _client() -> Any:
    return CivitaiClient()


def _model(recipe: Any, notes: list[str], client: Any) -> str:
    """The registry id to run, found by name, else by the model's hash or version on Civitai."""
    if recipe.model:
        return recipe.model
    version = None
    try:
        if recipe.model_civitai_version:
            version = client.version(recipe.model_civitai_version)
        elif recipe.model_hash:
            version = client.by_hash(recipe.model_hash)
    except MasukaError as exc:
        notes.append(f"the Civitai lookup of the model failed ({exc.code})")
    if version is not None:
        found = match_model(version.base_model)
        if found.model:
            notes.append(f"model `{recipe.model_name}` is `{version.model_name}` on Civitai, a {version.base_model} "
                         f"model: ran with {found.model}" + (f" ({found.note})" if found.note else ""))
            return found.model
        raise RecipeUnsupportedError(f"`{recipe.model_name}` is `{version.model_name}` on Civitai, a "
                                     f"{version.base_model} model: not a family MASUKA runs.", argument="image",
                                     value=recipe.model_name, hint="MASUKA runs FLUX.1, SD3.5 and FLUX.2 [klein].")
    raise RecipeUnsupportedError(f"Cannot tell which model made this image (`{recipe.model_name}`, hash "
                                 f"{recipe.model_hash}).", argument="image", value=recipe.model_name,
                                 hint="Pass it to generate() yourself with model=... and the recipe's settings: "
                                      "mk.generate(**recipe.generate_kwargs() | {'model': 'flux1-dev'})")


def _lora_source(lora: Any, family: str, notes: list[str], client: Any) -> str | None:
    """A source `generate(loras=...)` takes for a LoRA the image names, or None (with a note) when none is found."""
    if lora.source:
        return lora.source
    if lora.hash and len(lora.hash) == 64:
        local = find_in_library(sha256=lora.hash)
        if local is not None:
            return str(local)
    if (settings().loras_dir / lora.name).is_dir():
        notes.append(f"LoRA `{lora.name}` was taken from the library by its name (its file may differ)")
        return lora.name
    version = None
    try:
        if lora.civitai_version:
            version = client.version(lora.civitai_version)
        elif lora.hash:
            version = client.by_hash(lora.hash)
    except MasukaError as exc:
        notes.append(f"LoRA `{lora.name}`: the Civitai lookup failed ({exc.code}: {exc.message}); left out")
        return None
    if version is None:
        notes.append(f"LoRA `{lora.name}` is not in the library and Civitai does not know its hash; left out")
        return None
    made_for = match_model(version.base_model)
    if made_for.family and made_for.family != family:
        notes.append(f"LoRA `{lora.name}` is `{version.model_name}` for {version.base_model}, not this model's "
                     "family; left out")
        return None
    try:
        path = fetch_lora(version, client=client)
    except MasukaError as exc:
        notes.append(f"LoRA `{lora.name}` could not be downloaded from Civitai ({exc.code}: {exc.message}); left out")
        return None
    notes.append(f"LoRA `{lora.name}` is `{version.model_name}` ({version.name}) on Civitai, fetched into the "
                 f"library as {path.parent.name}")
    return str(path)


def reproduce_foreign(recipe: Any, *, save: bool = True, progress: Any = None, cancel: Any = None) -> Any:
    """Generate what a foreign recipe describes with what MASUKA runs; the result's warnings list the differences."""
    notes = [f"from {recipe.dialect}: {n}" for n in recipe.unmapped]
    client = None
    try:
        needs_civitai = not recipe.model or any(not lr.source for lr in recipe.loras)
        client = _client() if needs_civitai else None
        model = _model(recipe, notes, client)
        spec = get_model(model)
        run_model = model
        if not spec.tiny and use_embedded_models(engine="reproduce"):
            run_model = TINY_TWINS.get(spec.family, "tiny-flux")
            notes.append(f"ran on {run_model}, the tiny offline twin of {model}: no GPU here, so the image is noise "
                         "with the recipe's settings")
        run_spec = get_model(run_model)
        loras = []
        for lr in recipe.loras:
            source = _lora_source(lr, spec.family, notes, client)
            if source is None:
                continue
            try:
                validate_lora(source, model=run_model)
            except LoraIncompatibleError as exc:
                notes.append(f"LoRA `{lr.name}` does not fit {run_model} ({exc.message}); left out")
                continue
            loras.append((source, lr.weight))
    finally:
        if client is not None:
            client.close()
    if recipe.dialect != "masuka":
        notes.append(_NOISE_NOTE.format(tool={"a1111": "A1111/Forge", "comfyui": "ComfyUI", "swarmui": "SwarmUI",
                                               "invokeai": "InvokeAI", "civitai": "Civitai's generator"}.get(
                                                   recipe.dialect, recipe.dialect)))
    seed = recipe.seed
    if seed is not None and not 0 <= seed <= MAX_SEED:
        notes.append(f"seed {seed} is above MASUKA's 32-bit range: used {seed % (MAX_SEED + 1)}")
        seed %= MAX_SEED + 1
    negative = recipe.negative_prompt
    if negative and not run_spec.supports_negative_prompt:
        notes.append(f"negative prompt dropped: {run_model} has no unconditional pass")
        negative = None
    width, height = (_fit(v, run_spec, notes, name) for v, name in ((recipe.width, "width"),
                                                                       (recipe.height, "height")))
    steps = recipe.steps if recipe.steps and recipe.steps <= 150 else None
    if recipe.steps and steps is None:
        notes.append(f"{recipe.steps} steps is above MASUKA's limit of 150: used the model's default")
    if recipe.strength is not None:
        notes.append("ran as text-to-image: the input image of the original img2img/hires pass is not in the image")
    extra = {"reproduced_from": {"dialect": recipe.dialect, "model": recipe.model_name, "model_hash": recipe.model_hash,
                                 "differences": notes}}
    result = run(default_engine(), recipe.prompt, model=run_model, negative_prompt=negative, width=width,
                 height=height, steps=steps, guidance=recipe.guidance, seed=seed, num_images=1, loras=loras,
                 save=save, progress=progress, cancel=cancel, use_cache=False, recipe_extra=extra)
    result.warnings.extend(notes)
    log.info("reproduce.foreign", dialect=recipe.dialect, model=run_model, loras=len(loras), differences=len(notes))
    return result


def _fit(value: int | None, spec: Any, notes: list[str], name: str) -> int | None:
    if value is None:
        return None
    m = spec.size_multiple
    fitted = min(spec.max_size, max(spec.min_size, round(value / m) * m))
    if fitted != value:
        notes.append(f"{name} {value} became {fitted} ({spec.id} takes multiples of {m} from {spec.min_size} to "
                     f"{spec.max_size})")
    return fitted

