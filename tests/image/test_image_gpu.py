"""GPU-only paths: NF4 loading, CUDA offload modes and regional compile (skipped without CUDA)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import masuka_nb as mk
from masuka_nb.image.engine import ImageEngine

pytestmark = pytest.mark.gpu


def _cuda_plan(**changes):
    base = mk.plan("tiny-flux", gpu="l4")
    return replace(base, **changes)


def test_nf4_quantized_load_on_cuda():
    pytest.importorskip("bitsandbytes")
    from masuka_nb.image.engine import nf4_config

    config = nf4_config(mk.plan("flux1-dev", gpu="t4"))
    assert config.load_in_4bit
    plan = _cuda_plan(quantization="nf4", quantized_components=("transformer",))
    engine = ImageEngine()
    res = engine.generate("a gpu", model="tiny-flux", plan=plan, width=64, height=64, steps=2, save=False)
    pipe = engine.pipeline("tiny-flux", plan=plan)
    assert "Params4bit" in {type(p).__name__ for p in pipe.transformer.parameters()}
    assert res.images


@pytest.mark.parametrize("offload", ["model", "group", "group-to-disk"])
def test_cuda_offload_modes_give_the_same_image(offload):
    engine = ImageEngine()
    plain = engine.generate("a gpu", model="tiny-flux", plan=_cuda_plan(), seed=1, width=64, height=64,
                            steps=2, save=False)
    engine.unload()
    off = engine.generate("a gpu", model="tiny-flux", plan=_cuda_plan(offload=offload), seed=1, width=64,
                          height=64, steps=2, save=False)
    assert np.abs(np.asarray(off.image, dtype=int) - np.asarray(plain.image, dtype=int)).max() <= 2


def test_regional_compile_runs():
    engine = ImageEngine()
    res = engine.generate("a gpu", model="tiny-flux", plan=_cuda_plan(compile=True), width=64, height=64,
                          steps=2, save=False)
    assert res.images and res.plan.compile
