"""The memory planner's bytes against the real models' bytes, beside the held-out published peaks.

For every registry model × profile (t4, l4, a100-40) × (16-bit, NF4): each component's bytes as the planner
counts them under that profile's dtypes, against the same component built at full size from its real config
on the meta device and weighed by the loaders' own rules (`masuka_nb.models.real_configs.loaded_weights`:
transformers' keep-in-fp32 and not-to-convert lists, diffusers' keep-in-fp32 modules, bitsandbytes' NF4
layout). Goal: worst |error| ≤ 5 %. Beside it, the held-out published peaks (memory_figures.py), where the
goal is one-sided: never more than 5 % under a published peak (≥ −5 %).

    python benchmarks/bench_planner_real.py
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-planner-real")

from harness import exit_with, report

PROFILES = ("t4", "l4", "a100-40")
BYTES_GOAL = 0.05
PEAK_GOAL = -0.05


def _variants(spec, prof):
    """The profile's own dtypes, unquantized and with NF4 on every component the planner would quantize."""
    from masuka_nb.memory import NF4_MIN_PARAMS_B, candidates

    base = candidates(spec, prof)[0]
    big = tuple(c.name for c in spec.components if c.role != "vae" and c.params_b >= NF4_MIN_PARAMS_B)
    yield "16-bit", replace(base, quantization="none", quantized_components=())
    yield "NF4", replace(base, quantization="nf4", quantized_components=big)


def bytes_rows():
    from masuka_nb.memory import component_gb
    from masuka_nb.models.real_configs import loaded_weights
    from masuka_nb.models.registry import MODELS
    from masuka_nb.runtime import PROFILES as ALL

    rows, worst = [], (0.0, "")
    for spec in MODELS.values():
        if spec.tiny:
            continue
        for name in PROFILES:
            for label, plan in _variants(spec, ALL[name]):
                planned = real = 0.0
                for comp in spec.components:
                    dtype = {"vae": plan.vae_dtype, "text_encoder": plan.text_encoder_dtype}.get(comp.role, plan.dtype)
                    mine = component_gb(spec, comp.name, plan)
                    theirs = loaded_weights(spec.id, comp.name, dtype=dtype,
                                            nf4=comp.name in plan.quantized_components).gib
                    err = (mine - theirs) / theirs
                    if abs(err) > abs(worst[0]):
                        worst = (err, f"{spec.id}/{comp.name} on {name} {label} ({dtype}): planned {mine:.3f} "
                                      f"GiB, real {theirs:.3f} GiB")
                    planned, real = planned + mine, real + theirs
                rows.append(f"{spec.id:18s} {name:8s} {label:6s} planned {planned:6.2f} GiB  real {real:6.2f} GiB  "
                            f"{(planned - real) / real * 100:+5.2f} %")
    return rows, worst


def heldout_rows():
    import masuka_nb as mk
    from masuka_nb.memory_figures import held_out
    from masuka_nb.runtime import PROFILES as ALL
    from masuka_nb.runtime import GpuProfile

    rows, worst = [], (0.0, "")
    for fig in held_out():
        if fig.kind == "fits":
            prof = ALL.get(fig.gpu) if fig.gpu != "h100" else GpuProfile("published", fig.value, 51.0, (8, 6))
            plan = mk.plan(fig.model, gpu=prof, **fig.choices)
            ok = plan.fits and plan.peak_vram_gb <= fig.value
            rows.append(f"{fig.name:48s} plan {plan.peak_vram_gb:6.2f} ≤ {fig.value:5.1f} GB: {'yes' if ok else 'NO'}")
            dev = 0.0 if ok else -1.0
        else:
            est = getattr(mk.plan(fig.model, gpu=fig.gpu, **fig.choices), fig.field)
            dev = (est - fig.value) / fig.value
            rows.append(f"{fig.name:48s} est {est:6.2f} vs {fig.value:6.2f} GB  {dev * 100:+6.1f} %  ({fig.kind})")
            if fig.kind not in ("peak", "denoise_peak"):
                continue  # RAM figures are shown; the verdict is on peaks
        if dev < worst[0]:
            worst = (dev, fig.name)
    return rows, worst


def main() -> None:
    rows, (err, where) = bytes_rows()
    print("\n".join(rows))
    ok_bytes = report("planner bytes vs real configs", goal=f"worst |error| ≤ {BYTES_GOAL * 100:.0f} %",
                      ok=abs(err) <= BYTES_GOAL, extra={"worst error": f"{err * 100:+.2f} %", "where": where,
                                                        "cases": len(rows)})
    rows, (dev, name) = heldout_rows()
    print("\n".join(rows))
    ok_peaks = report("planner held-out peaks", goal=f"worst peak deviation ≥ {PEAK_GOAL * 100:.0f} %",
                      ok=dev >= PEAK_GOAL, extra={"worst peak deviation": f"{dev * 100:+.1f} %", "figure": name})
    exit_with(ok_bytes, ok_peaks)


if __name__ == "__main__":
    main()
