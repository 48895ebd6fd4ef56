"""Run by test_load_ram.py in a fresh process: load one model's downloaded twin the way a plan says, so the
parent can watch this process's anonymous memory (RssAnon) from outside while it loads.

    python tests/real/load_ram_child.py MODEL PROFILE PATH      # PROFILE "cpu" or a GPU profile run on the CPU

Protocol on stdout/stdin: after the imports it prints "ready", waits for a line, loads, prints "done <json>"
(what was loaded, in which dtypes); then on "touch" it reads every weight once (as a first step would) and
prints "touched"; it exits on the next line (the parent reads each peak first).
"""

from __future__ import annotations

import json
import sys


def main(model: str, profile: str, path: str) -> None:
    import dataclasses

    import diffusers
    import torch
    import transformers

    import masuka_nb as mk
    from masuka_nb.image.loading import load_pipeline
    from masuka_nb.models.registry import get_model

    spec = get_model(model)
    plan = mk.plan(model, gpu=profile, ram_gb=64 if profile == "cpu" else None)
    if plan.device != "cpu":
        plan = dataclasses.replace(plan, device="cpu", offload="none", compile=False, first_block_cache=None)
    with open(f"{path}/model_index.json") as fh:
        index = json.load(fh)
    getattr(diffusers, spec.pipeline_class)  # every class the load will use, imported before the baseline
    for name in (c.name for c in spec.components):
        library, cls = index[name]
        getattr(diffusers if library == "diffusers" else transformers, cls)
    torch.ones(1) @ torch.ones(1)
    print("ready", flush=True)
    sys.stdin.readline()
    pipe = load_pipeline(spec, plan, path=path)
    loaded = {c.name: sorted({str(p.dtype) for p in getattr(pipe, c.name).parameters()}) for c in spec.components}
    print("done " + json.dumps({"loading": plan.loading, "dtypes": loaded}), flush=True)
    if sys.stdin.readline().strip() == "touch":  # read every weight once, as the first step does
        with torch.inference_mode():
            for c in spec.components:
                for p in getattr(pipe, c.name).parameters():
                    p.sum()
        print("touched", flush=True)
        sys.stdin.readline()


if __name__ == "__main__":
    main(*sys.argv[1:4])
