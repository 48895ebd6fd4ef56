import pytest

import masuka_nb
from masuka_nb.errors import ModelNotFoundError
from masuka_nb.models.registry import MODELS

REQUIRED = {"flux1-dev", "flux1-schnell", "sd35-large", "sd35-large-turbo", "sd35-medium", "tiny-flux", "tiny-sd3"}


def test_registry_holds_the_promised_models():
    assert set(MODELS) >= REQUIRED


@pytest.mark.parametrize("model_id", sorted(REQUIRED))
def test_entries_are_complete(model_id):
    m = masuka_nb.get_model(model_id)
    assert m.pipeline_class and m.img2img_class
    assert 1 <= m.default_steps <= 150
    assert m.default_width % m.size_multiple == 0 and m.min_size <= m.default_width <= m.max_size
    assert {c.role for c in m.components} == {"transformer", "text_encoder", "vae"}
    if m.tiny:
        assert m.repo is None
    else:
        assert "/" in m.repo
        assert m.licence and m.licence_url.startswith("https://")
    if m.gated:
        assert m.licence_url


def test_reference_parameter_counts():
    # Model cards' rounded figures; the exact counts are checked against the real configs below.
    for model, component, published in (("flux1-dev", "transformer", 11.90), ("flux1-schnell", "transformer", 11.89),
                                        ("sd35-large", "transformer", 8.06), ("flux1-dev", "text_encoder_2", 4.76),
                                        ("wan2.1-t2v-1.3b", "transformer", 1.419)):
        assert masuka_nb.get_model(model).component(component).params_b == pytest.approx(published, rel=0.02)


# ---- every registry component, at full size on the meta device, against the registry and the planner ----

REAL = [(m.id, c.name) for m in MODELS.values() if not m.tiny for c in m.components]
DTYPES = ("float16", "bfloat16", "float32")


@pytest.mark.parametrize(("model", "component"), REAL)
def test_registry_counts_are_the_real_configs_counts(model, component):
    from masuka_nb.models.real_configs import _meta_model, loaded_weights, tensor_count

    comp = masuka_nb.get_model(model).component(component)
    real = tensor_count(_meta_model(model, component))
    assert comp.params_b * 1e9 == pytest.approx(real.total, rel=0.02), f"{model}/{component}: {real.total / 1e9:.4f} B"
    weights = loaded_weights(model, component, dtype="float16", nf4=True)
    assert comp.largest_b * 1e9 == pytest.approx(weights.largest_tensor, rel=0.02)


@pytest.mark.parametrize(("model", "component"), REAL)
def test_planner_bytes_are_within_5_percent_of_the_loaders_rules(model, component):
    """For each dtype, NF4 or not: the planner's bytes against the full-size model walked with transformers'
    and diffusers' own keep-in-fp32 / not-to-convert rules (real_configs.loaded_weights)."""
    from dataclasses import replace

    from masuka_nb.memory import component_gb
    from masuka_nb.models.real_configs import loaded_weights

    spec = masuka_nb.get_model(model)
    base = masuka_nb.plan(model, gpu="h100")
    worst = []
    for dtype in DTYPES:
        for nf4 in (False, True):
            plan = replace(base, dtype=dtype, text_encoder_dtype=dtype, vae_dtype=dtype,
                           quantization="nf4" if nf4 else "none", quantized_components=(component,) if nf4 else ())
            planned = component_gb(spec, component, plan)
            real = loaded_weights(model, component, dtype=dtype, nf4=nf4).gib
            worst.append((abs(planned - real) / real, dtype, nf4, planned, real))
    err, dtype, nf4, planned, real = max(worst)
    assert err <= 0.05, f"{model}/{component} {dtype} nf4={nf4}: planned {planned:.3f} GiB, real {real:.3f} GiB"


def test_the_nf4_rules_are_the_libraries_own():
    """Where bitsandbytes is installed, let transformers and diffusers replace the Linear layers themselves
    on the meta models: exactly the weights loaded_weights() counts as NF4 become 4-bit."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb
    import torch
    from diffusers import BitsAndBytesConfig as DiffusersBnb
    from diffusers.quantizers.bitsandbytes.utils import replace_with_bnb_linear as diffusers_replace
    from transformers import BitsAndBytesConfig
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear
    from transformers.quantizers.base import HfQuantizer

    from masuka_nb.models.real_configs import build_component, loaded_weights

    for model, component in (("flux1-dev", "text_encoder_2"), ("flux2-klein", "text_encoder"),
                             ("wan2.1-t2v-1.3b", "text_encoder")):
        built = build_component(model, component)
        skip = HfQuantizer.get_modules_to_not_convert(built, None, built._keep_in_fp32_modules)
        replace_with_bnb_linear(built, modules_to_not_convert=skip,
                                quantization_config=BitsAndBytesConfig(load_in_4bit=True))
        four_bit = sum(m.weight.numel() for m in built.modules() if isinstance(m, bnb.nn.Linear4bit))
        assert four_bit == loaded_weights(model, component, nf4=True).nf4_params, (model, component)
    for model in ("wan2.2-ti2v-5b", "sd35-medium"):
        built = build_component(model, "transformer")
        keep = list(type(built)._keep_in_fp32_modules or [])
        diffusers_replace(built, modules_to_not_convert=keep,
                          quantization_config=DiffusersBnb(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16))
        four_bit = sum(m.weight.numel() for m in built.modules() if isinstance(m, bnb.nn.Linear4bit))
        assert four_bit == loaded_weights(model, "transformer", nf4=True).nf4_params, model


def test_gating_matches_the_licences():
    assert masuka_nb.get_model("flux1-dev").gated
    assert not masuka_nb.get_model("flux1-schnell").gated
    assert all(masuka_nb.get_model(m).gated for m in ("sd35-large", "sd35-medium", "sd35-large-turbo"))


def test_aliases_resolve():
    assert masuka_nb.get_model("black-forest-labs/FLUX.1-dev").id == "flux1-dev"
    assert masuka_nb.get_model(" SD3.5-Large ").id == "sd35-large"


def test_unknown_id_lists_the_closest():
    with pytest.raises(ModelNotFoundError) as info:
        masuka_nb.get_model("flux1-devv")
    err = info.value
    assert err.code == "MODEL_NOT_FOUND"
    assert err.argument == "model" and err.value == "flux1-devv"
    assert err.details["closest"][0] == "flux1-dev"
    assert "list_models" in err.hint


def test_list_models_can_hide_tiny_ones():
    assert all(not m.tiny for m in masuka_nb.list_models(include_tiny=False))
    assert any(m.tiny for m in masuka_nb.list_models())
