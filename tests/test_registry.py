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
    assert masuka_nb.get_model("flux1-dev").component("transformer").params_b == pytest.approx(11.90)
    assert masuka_nb.get_model("flux1-schnell").component("transformer").params_b == pytest.approx(11.89)
    assert masuka_nb.get_model("sd35-large").component("transformer").params_b == pytest.approx(8.06)
    assert masuka_nb.get_model("flux1-dev").component("text_encoder_2").params_b == pytest.approx(4.76)


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
