"""Training speed on tiny-flux: MASUKA's training loop vs a minimal plain peft loop.

Same transformer, same LoRA (rank 4 on to_q/k/v/out.0), same optimizer, same cached latents and
text embeddings, same flow-matching step; measured alternately in one run. MASUKA's loop adds
bucketed data order, gradient clipping, progress events and checkpoints (LoRA, optimizer,
scheduler, RNG) every quarter of the run. Goal: MASUKA steps/s ≥ 0.9 × plain steps/s.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-train")

import numpy as np
import torch
from harness import Comparison, exit_with, report
from PIL import Image

STEPS = 80
ROUNDS = 9  # steps are ~10 ms on tiny-flux: more rounds steady the medians
RESOLUTION = 64


def _dataset():
    from masuka_nb.lora import Dataset

    ds = Dataset.create("bench-train")
    rng = np.random.default_rng(0)
    files = []
    for k in range(4):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, format="PNG")
        files.append((f"i{k}.png", buf.getvalue()))
    ds.import_files(files)
    return ds


def plain_peft_loop(run_dir: Path, tiny: str) -> float:
    """The minimal loop: returns seconds for STEPS steps."""
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig
    from safetensors.torch import load_file

    latents = list(load_file(str(next((run_dir / "cache").glob("latents-*.safetensors")))).values())
    text = load_file(str(run_dir / "cache" / "text.safetensors"))
    embeds, pooled = text["p0.embeds"][None], text["p0.pooled"][None]
    model = FluxTransformer2DModel.from_pretrained(tiny, subfolder="transformer")
    model.requires_grad_(False)
    torch.manual_seed(0)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                 target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    model.train()
    start = None
    for step in range(-1, STEPS):  # step -1 warms up, as MASUKA's start-of-run evaluation does
        if step == 0:
            start = time.perf_counter()
        lat = latents[step % len(latents)][None]
        b, c, h, w = lat.shape
        noise = torch.randn_like(lat)
        sigma = torch.rand(b)
        noisy = (1 - sigma.view(b, 1, 1, 1)) * lat + sigma.view(b, 1, 1, 1) * noise
        pred = model(hidden_states=FluxPipeline._pack_latents(noisy, b, c, h, w), timestep=sigma,
                     guidance=torch.full((b,), 1.0), pooled_projections=pooled, encoder_hidden_states=embeds,
                     txt_ids=torch.zeros(embeds.shape[1], 3),
                     img_ids=FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, "cpu", torch.float32),
                     return_dict=False)[0]
        pred = FluxPipeline._unpack_latents(pred, h * 2, w * 2, 2)
        loss = torch.nn.functional.mse_loss(pred, noise - lat)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    # One thread: the machine is shared, and both contenders then see the same CPU.
    torch.set_num_threads(1)
    from masuka_nb.lora import train
    from masuka_nb.models.tiny import ensure_tiny

    tiny = str(ensure_tiny("tiny-flux"))
    ds = _dataset()
    counter = {"n": 0}

    def ours() -> float:
        counter["n"] += 1
        run = train(ds, base="tiny-flux", trigger_word="mk", steps=STEPS, resolution=RESOLUTION, rank=4,
                    learning_rate=1e-3, name=f"ours-{counter['n']}", checkpoint_every=STEPS // 4)
        ours.run_dir = run.run_dir
        return run.stats["train_s"]

    ours()  # warm-up (also fills the caches the plain loop reads)
    plain_peft_loop(ours.run_dir, tiny)
    comp = Comparison("MASUKA train()", "plain peft loop")
    for i in range(ROUNDS):
        order = ((ours, comp.a_times), (lambda: plain_peft_loop(ours.run_dir, tiny), comp.b_times))
        for fn, sink in order if i % 2 == 0 else reversed(order):
            sink.append(fn() / STEPS)  # seconds per step
    ratio = 1 / comp.ratio  # steps/s ours ÷ steps/s plain
    ok = report("train steps/s on tiny-flux (64 px, rank 4)", comp, goal="MASUKA steps/s ≥ 0.9 × plain",
                ok=ratio >= 0.9, extra={"steps/s ratio (ours / plain)": f"{ratio:.3f}",
                                        "MASUKA steps/s": f"{1 / comp.a_median:.2f}",
                                        "plain steps/s": f"{1 / comp.b_median:.2f}"})
    exit_with(ok)


if __name__ == "__main__":
    main()
