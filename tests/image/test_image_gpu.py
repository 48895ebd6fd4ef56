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
    """The tiny twin really quantizes (it used to skip quantization while its recipe said nf4): every
    Linear of the transformer becomes a bnb Linear4bit."""
    bnb = pytest.importorskip("bitsandbytes")
    import torch

    from masuka_nb.image.engine import nf4_config

    config = nf4_config(mk.plan("flux1-dev", gpu="t4"))
    assert config.load_in_4bit
    plan = _cuda_plan(quantization="nf4", quantized_components=("transformer",))
    engine = ImageEngine()
    res = engine.generate("a gpu", model="tiny-flux", plan=plan, width=64, height=64, steps=2, save=False,
                          use_cache=False)
    pipe = engine.pipeline("tiny-flux", plan=plan)
    linears = [m for m in pipe.transformer.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, bnb.nn.Linear4bit) for m in linears)
    assert "Params4bit" in {type(p).__name__ for p in pipe.transformer.parameters()}
    assert res.images and not res.cached and res.recipe["compute"]["quantized_components"] == ["transformer"]


def test_nf4_text_encoder_keeps_t5_wo_unquantized_in_fp32_on_cuda():
    """As transformers does for the real T5-XXL (what the planner counts): under an fp16 plan the NF4 T5's
    `wo` layers are neither quantized nor cast to fp16."""
    bnb = pytest.importorskip("bitsandbytes")
    import torch

    plan = replace(mk.plan("tiny-flux", gpu="t4"), quantization="nf4", quantized_components=("text_encoder_2",))
    assert plan.dtype == "float16"
    engine = ImageEngine()
    res = engine.generate("a gpu", model="tiny-flux", plan=plan, width=64, height=64, steps=2, save=False,
                          use_cache=False)
    t5 = engine.pipeline("tiny-flux", plan=plan).text_encoder_2
    four_bit = {n for n, m in t5.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert four_bit and not any(n.endswith(".wo") for n in four_bit)
    wo = next(m for n, m in t5.named_modules() if n.endswith(".wo"))
    assert type(wo) is torch.nn.Linear and wo.weight.dtype == torch.float32
    assert res.images and not res.cached


@pytest.mark.parametrize("offload", ["model", "group", "group-to-disk"])
def test_cuda_offload_modes_give_the_same_image(offload):
    engine = ImageEngine()
    # use_cache=False: the second image is computed, not a cache hit on the first one's recipe.
    plain = engine.generate("a gpu", model="tiny-flux", plan=_cuda_plan(), seed=1, width=64, height=64,
                            steps=2, save=False, use_cache=False)
    engine.unload()
    off = engine.generate("a gpu", model="tiny-flux", plan=_cuda_plan(offload=offload), seed=1, width=64,
                          height=64, steps=2, save=False, use_cache=False)
    assert not plain.cached and not off.cached and engine.load_count == 2
    assert off.recipe["compute"]["offload"] == offload
    assert np.abs(np.asarray(off.image, dtype=int) - np.asarray(plain.image, dtype=int)).max() <= 2


def test_freeing_text_encoders_on_cuda_gives_the_same_image():
    """The run pipeline's freed text encoders on a GPU: they visit the GPU, encode, and go back to RAM."""
    import torch

    engine = ImageEngine()
    plain = engine.generate("a gpu", model="tiny-flux", plan=_cuda_plan(), seed=2, width=64, height=64, steps=2,
                            save=False, use_cache=False)
    freed = engine.generate("a gpu", model="tiny-flux", plan=_cuda_plan(free_text_encoders=True), seed=2, width=64,
                            height=64, steps=2, save=False, use_cache=False)
    pipe = engine.pipeline("tiny-flux", plan=_cuda_plan(free_text_encoders=True))
    assert next(pipe.text_encoder_2.parameters()).device == torch.device("cpu")
    assert next(pipe.transformer.parameters()).device.type == "cuda"
    assert not freed.cached and freed.recipe["compute"]["free_text_encoders"]
    assert np.abs(np.asarray(freed.image, dtype=int) - np.asarray(plain.image, dtype=int)).max() <= 2


def test_regional_compile_runs():
    engine = ImageEngine()
    res = engine.generate("a gpu", model="tiny-flux", plan=_cuda_plan(compile=True), width=64, height=64,
                          steps=2, save=False)
    assert res.images and res.plan.compile
