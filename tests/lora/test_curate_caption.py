"""Curation (duplicates, blur, aesthetics, identity) and captioning (Florence-2, BLIP-2, sidecars)."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest
from PIL import ImageFilter

from masuka_nb.errors import InvalidRequestError
from masuka_nb.lora import Dataset
from masuka_nb.lora import caption as caption_module
from masuka_nb.lora.curate import ClipScorer, blur_score, curate, dataset_size_advice
from tests.lora.helpers import encode, gradient, photo


@pytest.fixture
def messy_dataset():
    ds = Dataset.create("messy")
    pics = [photo(k) for k in range(4)]
    ds.import_files([(f"p{k}.png", encode(im, "PNG")) for k, im in enumerate(pics)] + [
        ("resized-copy.png", encode(pics[0].resize((300, 300)), "PNG")),     # near duplicate of p0
        ("reencoded.jpg", encode(pics[1], "JPEG", quality=97)),               # near duplicate of p1
        ("blurry.png", encode(pics[2].filter(ImageFilter.GaussianBlur(8)), "PNG")),
    ])
    assert len(ds.items) == 7
    return ds, pics


def test_curation_flags_duplicates_and_blur_and_applies_suggestions(messy_dataset):
    ds, _ = messy_dataset
    report = ds.curate()
    by_source = {it.source: it for it in ds.items}
    drop = {by_source_name for by_source_name, it in by_source.items() if not it.keep}
    assert drop == {"resized-copy.png", "reencoded.jpg", "blurry.png"}
    assert "near duplicate" in "; ".join(report.verdict(by_source["resized-copy.png"].file).reasons)
    assert "blurry" in "; ".join(report.verdict(by_source["blurry.png"].file).reasons)
    assert sorted(len(g) for g in report.duplicate_groups) == [2, 2, 2]  # p0+copy, p1+jpeg, p2+blurry
    for it in ds.items:
        assert {"phash", "blur", "aesthetic", "suggest_keep", "reasons"} <= set(it.scores)
        assert 1.0 < it.scores["aesthetic"] < 10.0
    assert report.stats["count"] == 7 and report.stats["orientation"] == {"square": 7}
    assert report.advice and "images" in report.advice[0]
    assert Dataset.load("messy").item("blurry.png").keep is False  # written to dataset.json


def test_user_overrides_survive_recuration(messy_dataset):
    ds, _ = messy_dataset
    ds.curate()
    ds.set_keep("blurry.png", True)
    report = ds.curate()
    assert ds.item("blurry.png").keep is True
    assert report.verdict(ds.item("blurry.png").file).overridden


def test_identity_against_a_reference_image(messy_dataset):
    ds, pics = messy_dataset
    ds.curate(reference_image=pics[3])
    sims = {it.source: it.scores["identity"] for it in ds.items}
    assert sims["p3.png"] == pytest.approx(1.0, abs=1e-3)
    assert max(sims, key=sims.get) == "p3.png"


def test_batched_scores_equal_one_at_a_time(messy_dataset):
    ds, _ = messy_dataset
    scorer = ClipScorer("tiny-clip")
    one = curate(ds, batch_size=1, scorer=scorer, apply=False)
    many = curate(ds, batch_size=8, scorer=scorer, apply=False)
    for a, b in zip(one.verdicts, many.verdicts):
        assert a.scores["aesthetic"] == pytest.approx(b.scores["aesthetic"], abs=1e-3)
        assert a.keep == b.keep


def test_blur_score_and_size_advice():
    sharp = gradient(128, 128).convert("L")
    assert blur_score(sharp) > 10 * blur_score(sharp.filter(ImageFilter.GaussianBlur(4)))
    assert "very few" in dataset_size_advice(3)[0]
    assert "good size" in dataset_size_advice(20)[0]


def test_florence_captions_go_to_sidecars_with_the_trigger_word(messy_dataset):
    ds, _ = messy_dataset
    ds.set_caption("p0.png", "my own caption")
    report = ds.caption(trigger_word="mk", max_new_tokens=12)
    assert report.model == "tiny-florence-2" and report.tiny
    assert len(report.captioned) == 6 and report.kept_user == [ds.item("p0.png").file]
    for it in ds.items:
        side = (ds.images_dir / f"{it.stem}.txt").read_text().strip()
        assert side == it.caption
        if it.source == "p0.png":
            assert it.caption == "my own caption" and it.caption_source == "user"
        else:
            assert it.caption.startswith("mk, ") and len(it.caption) > 6 and it.caption_source == "florence-2"
    # The captioner was freed when the call returned.
    gc.collect()
    assert caption_module._loaded and caption_module._loaded[0]() is None


def test_overwrite_recaptions_user_text_only_when_asked(messy_dataset):
    ds, _ = messy_dataset
    ds.set_caption("p1.png", "hand written")
    ds.caption(model="blip-2", max_new_tokens=12)
    assert ds.item("p1.png").caption == "hand written"
    assert ds.item("p2.png").caption_source == "blip-2"
    ds.caption(model="blip-2", trigger_word="zz", overwrite=True, max_new_tokens=12)
    assert ds.item("p1.png").caption.startswith("zz, ") and ds.item("p1.png").caption_source == "blip-2"


def test_caption_rejects_unknown_models_and_tasks(messy_dataset):
    ds, _ = messy_dataset
    with pytest.raises(InvalidRequestError) as err:
        ds.caption(model="gpt-vision")
    assert err.value.argument == "model"
    with pytest.raises(InvalidRequestError) as err:
        ds.caption(task="<OD>")
    assert err.value.argument == "task"


def test_importing_the_package_loads_no_torch():
    code = ("import sys, masuka_nb.lora as lora; lora.Dataset; lora.ImportReport;"
            "heavy = {'torch', 'diffusers', 'transformers', 'httpx'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_resolve_lazily():
    import masuka_nb.lora as lora

    for name in lora.__all__:  # train_cloud / CloudTrainingJob come from the hosted-APIs room's cloud.py
        assert getattr(lora, name) is not None, name
    assert callable(lora.train) and callable(lora.compare)


def test_all_lists_exactly_the_lazy_names():
    import masuka_nb.lora as lora

    assert lora.__all__ == sorted(lora._LAZY)


@pytest.mark.parametrize("backend", ["pil", "torchvision"])
def test_batched_preprocessing_is_transformers_own_under_each_backend(backend):
    """Colab ships torchvision, so transformers preprocesses with its torchvision backend there (a resize that
    differs from PIL's by ~0.015); the scorer must give exactly what that processor gives, whichever it is."""
    if backend == "torchvision":
        pytest.importorskip("torchvision")
    from transformers import AutoImageProcessor

    from masuka_nb.models.tiny_vision import ensure_tiny_vision

    scorer = ClipScorer("tiny-clip")
    scorer.processor = AutoImageProcessor.from_pretrained(str(ensure_tiny_vision("tiny-clip")), backend=backend)
    images = [photo(k, w, h) for k, (w, h) in enumerate([(256, 300), (301, 257), (320, 320), (999, 333)])]
    ours = scorer.pixels(images)
    theirs = scorer.processor(images=images, return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-6
    # One batch of mixed sizes embeds each image as it would alone.
    together, _ = scorer.embed(images)
    alone = [scorer.embed([im])[0][0] for im in images]
    for a, b in zip(together, alone):
        assert (a - b).abs().max().item() < 1e-4


