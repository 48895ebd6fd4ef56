"""Templates (choices, wildcard files, prompt files) and style presets (storage, mixing, reproduce)."""

from __future__ import annotations

import numpy as np
import pytest

import masuka_nb as mk
from masuka_nb.creative.presets import Preset, apply, mix
from masuka_nb.creative.templates import expand, read_prompts
from masuka_nb.errors import InvalidRequestError


def test_choices_expand_in_order_and_wildcards_come_from_files(tmp_path):
    (tmp_path / "style.txt").write_text("oil painting\n# a comment\n\nwatercolor\n{ink|pencil} sketch\n")
    (tmp_path / "time.txt").write_text("dawn\n__style__ at dusk\n")
    assert expand("a {red|blue} car") == ["a red car", "a blue car"]
    assert expand("a {red|blue} car, __style__", wildcards_dir=tmp_path) == [
        "a red car, oil painting", "a red car, watercolor", "a red car, ink sketch", "a red car, pencil sketch",
        "a blue car, oil painting", "a blue car, watercolor", "a blue car, ink sketch", "a blue car, pencil sketch"]
    assert len(expand("a cat, __time__", wildcards_dir=tmp_path)) == 1 + 4  # wildcards inside wildcard lines
    assert expand("a {big|} dog") == ["a big dog", "a dog"]  # an empty choice leaves no double space


def test_wildcards_default_to_the_home_folder_and_random_mode_is_reproducible(masuka_home):
    folder = masuka_home / "wildcards"
    folder.mkdir(parents=True)
    (folder / "animal.txt").write_text("cat\ndog\nfox\nowl\n")
    picks = expand("a __animal__ in {snow|rain}", mode="random", count=6, seed=3)
    assert len(picks) == 6 and picks == expand("a __animal__ in {snow|rain}", mode="random", count=6, seed=3)
    assert all(p.split()[1] in {"cat", "dog", "fox", "owl"} for p in picks)


def test_prompt_files_skip_blank_lines_and_comments(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("a cat\n\n# not this\na {red|blue} dog\n")
    assert read_prompts(f) == ["a cat", "a {red|blue} dog"]


@pytest.mark.parametrize("template, why", [("a {red|blue car", "never closed"), ("a red} car", "closes no"),
                                           ("", "empty")])
def test_unbalanced_or_empty_templates_are_refused(template, why):
    with pytest.raises(InvalidRequestError) as err:
        expand(template)
    assert why in str(err.value) and err.value.argument == "prompts_or_template" and err.value.hint


def test_an_unknown_wildcard_names_the_file_it_looked_for(tmp_path):
    with pytest.raises(InvalidRequestError) as err:
        expand("a __nope__ car", wildcards_dir=tmp_path)
    assert "nope.txt" in str(err.value) and err.value.value == "__nope__"


def test_presets_are_stored_in_the_home_listed_and_replace_builtins(masuka_home):
    names = [p.name for p in mk.presets.list()]
    assert {"cinematic", "photo", "watercolor", "anime", "product"} <= set(names)
    path = mk.presets.save(Preset(name="noir", prefix="film noir still,", settings={"guidance": 4.0},
                                  loras=[("my-style", 0.8)]))
    assert path.parent == masuka_home / "presets" and path.is_file()
    assert mk.presets.get("noir").loras == [("my-style", 0.8)]
    mk.presets.save(Preset(name="photo", prefix="polaroid of"))
    assert mk.presets.get("photo").prefix == "polaroid of"
    assert mk.presets.delete("photo") and mk.presets.get("photo").builtin
    with pytest.raises(InvalidRequestError):
        mk.presets.save(Preset(name="Bad Name!"))
    with pytest.raises(InvalidRequestError):
        mk.presets.save(Preset(name="ok", settings={"sampler": 1}))
    with pytest.raises(InvalidRequestError):
        mk.presets.get("missing")


def test_mixing_orders_text_by_weight_averages_settings_and_scales_loras():
    a = Preset(name="a", prefix="A,", suffix="sa", negative_prompt="na", settings={"guidance": 2.0, "steps": 10},
               loras=[("la", 1.0)])
    b = Preset(name="b", prefix="B,", suffix="sb", negative_prompt="nb", settings={"guidance": 5.0},
               loras=[("lb", 0.8)])
    m = mix([(a, 0.5), (b, 1.0)])
    assert m.prefix == "B, A," and m.suffix == "sb, sa" and m.negative_prompt == "nb, na"
    assert m.settings == {"guidance": pytest.approx((2.0 * 0.5 + 5.0) / 1.5, abs=1e-3), "steps": 10}
    assert m.loras == [("lb", 0.8), ("la", 0.5)]
    styled = apply("a harbour", [(a, 0.5), (b, 1.0)], negative_prompt="blurry")
    assert styled.prompt == "B, A, a harbour, sb, sa" and styled.negative_prompt == "blurry, nb, na"
    assert [p["name"] for p in styled.recipe] == ["a", "b"] and styled.recipe[0]["weight"] == 0.5
    with pytest.raises(InvalidRequestError):
        mix([("cinematic", 0)])
    with pytest.raises(InvalidRequestError):
        mix([])


def test_presets_are_in_the_recipe_and_reproduce_gives_the_same_image():
    from masuka_nb.image.metadata import read_recipe

    # tiny-flux reads 128 bytes of prompt: short presets (the built-ins are written for the real models)
    mk.presets.save(Preset(name="ink", prefix="ink,", suffix="bold", settings={"steps": 3}))
    mk.presets.save(Preset(name="dusk", prefix="dusk,", suffix="warm"))
    res = mk.batch("a lighthouse", model="tiny-flux", seeds=[4], presets=["ink", ("dusk", 0.5)],
                   width=32, height=32, progress=False)
    path = res.items[0].path
    mk.presets.delete("ink")  # reproduce needs only the recipe, not the preset files
    mk.presets.delete("dusk")
    recipe = read_recipe(path)
    assert [p["name"] for p in recipe["presets"]] == ["ink", "dusk"]
    assert recipe["prompt"] == "ink, dusk, a lighthouse, bold, warm" and recipe["steps"] == 3
    again = mk.reproduce(path)
    assert again.recipe["presets"] == recipe["presets"]
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(res.images[0]))
