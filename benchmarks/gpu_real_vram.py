"""The memory planner against a real run: full-size models on an emulated free-Colab T4 (GPU only).

For sd35-medium, wan2.1-t2v-1.3b, flux1-schnell, flux2-klein and zimage-turbo, in that order (Qwen-Image is not
measured here: its full-size folder is 58 GB, more than the GPU machine's disk; its T4 plan is a refusal anyway):

1. a child process builds every component at FULL size from its real config (`models.real_configs`, text
   encoders included, random weights materialised directly on the GPU in bf16) and saves the pipeline as a
   diffusers folder where MASUKA keeps its session copy of that repo (with the tiny twin's tokenizers and
   scheduler, so no hub is needed), marked complete, so the engine finds it exactly as after a download;
2. a second, fresh child process (its host RAM is then a fresh runtime's) emulates a T4: the CUDA allocator is
   capped at 15 GiB (`torch.cuda.set_per_process_memory_fraction`), flash attention is off (Turing has none),
   takes `plan(model, gpu="t4")` and runs it through MASUKA's own `ImageEngine.generate` / `generate_local`
   for two steps at the model's default size, with the result cache off;
3. it records, as JSON: the plan's figures, VRAM after load and the peak of each phase (load; prompt encoding
   with the first step; the other steps; decoding), the process's host RAM per phase (peak RSS and peak
   anonymous RSS, sampled every 20 ms), and any out-of-memory fallback the engine took.

    python benchmarks/gpu_real_vram.py                 # on a CUDA machine (≈ 64 GB free disk), ≈ 10 min
    python benchmarks/gpu_real_vram.py --dry-run       # anywhere: the tiny twins' weights, CPU plans, small sizes

`--dry-run` walks the same road (folder in the session cache → planned download finds it → engine load →
generate / generate_local → JSON) with the tiny twins' weights in place of the full-size ones; the tests run it.
The engine needs no change for this: `hub.locate_model` answers from a complete session copy before any hub.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ORDER = ("sd35-medium", "wan2.1-t2v-1.3b", "flux1-schnell", "flux2-klein", "zimage-turbo")
# The tiny twin of each: same pipeline class; its tokenizers and scheduler go with the full-size weights,
# and in a dry run its weights stand in for them.
TWIN = {"sd35-medium": "tiny-sd3", "wan2.1-t2v-1.3b": "tiny-wan", "flux1-schnell": "tiny-flux",
        "flux2-klein": "tiny-flux2-klein", "zimage-turbo": "tiny-zimage"}
# Dry run: real widths cut to one block where a CPU can run them at the model's smallest size; the tiny
# twin's weights where it cannot (UMT5's 1.05 B-element embedding; FLUX.2 [klein] reads Qwen3 layer 27; Z-Image's
# 3840-wide blocks take minutes on a CPU).
DRY_DEPTH1 = ("sd35-medium", "flux1-schnell")
T4_VRAM_GIB = 15.0  # runtime.PROFILES["t4"]: what a T4 leaves to PyTorch
GIB = 1024**3
PROMPT = "a lighthouse on a cliff at dusk, waves below"


# ---- 1. the model folder ----

def session_folder(model: str) -> Path:
    """Where MASUKA looks first for `model`'s files (hub.locate_model's session copy)."""
    import masuka_nb as mk
    from masuka_nb.hub import download_plan
    from masuka_nb.models.registry import get_model

    spec = get_model(model)
    dplan = download_plan(spec, plan=mk.plan(model, gpu="h100"), listing=[])
    return mk.settings().cache_dir / "models" / dplan.repo.replace("/", "--") / dplan.revision


def write_model(model: str, *, dry_run: bool) -> dict[str, Any]:
    """Save `model` as a complete diffusers folder in its session-copy place: full-size real-config weights
    made on the GPU (dry run: the tiny twin's weights), the twin's tokenizers and scheduler."""
    import torch

    from masuka_nb.hub import MARKER, patterns_for
    from masuka_nb.models.registry import get_model
    from masuka_nb.models.tiny import build_tiny
    from masuka_nb.quiet import quiet_third_party
    from masuka_nb.storage import atomic_write_json

    spec = get_model(model)
    folder = session_folder(model)
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    with quiet_third_party():
        pipe = build_tiny(TWIN[model])
    depth = 1 if dry_run and model in DRY_DEPTH1 else None
    if not dry_run or depth:
        from masuka_nb.models.real_configs import build_component

        for comp in spec.components:  # setattr re-registers the component in the pipeline's model_index
            if dry_run:  # zeros, not random: a CPU spends its time on the road, not on drawing numbers
                part = build_component(model, comp.name, depth=depth, dtype=torch.bfloat16).to_empty(device="cpu")
                for tensor in (*part.parameters(), *part.buffers()):
                    tensor.data.zero_()
            else:
                part = build_component(model, comp.name, device="cuda", dtype=torch.bfloat16)
            setattr(pipe, comp.name, part)
    pipe.save_pretrained(folder, safe_serialization=True, max_shard_size="10GB")
    # The marker lists the patterns the folder was filled for (hub._complete): every component's.
    allow = list(patterns_for([c.name for c in spec.components]))
    atomic_write_json(folder / MARKER, {"repo": spec.repo, "revision": spec.revision, "allow": allow,
                                        "written_by": "benchmarks/gpu_real_vram.py",
                                        "weights": "full-size random (real configs)" if not dry_run else
                                        "depth-1 real configs" if depth else "tiny twin"})
    size = sum(f.stat().st_size for f in folder.rglob("*.safetensors"))
    return {"folder": str(folder), "bytes": size, "write_s": round(time.perf_counter() - t0, 1)}


# ---- 2. measuring ----

class HostRam:
    """Peak RSS and peak anonymous RSS (what the kernel cannot drop: a Colab runtime dies of that) of this
    process, sampled every 20 ms; `mark()` starts a new phase."""

    def __init__(self) -> None:
        self.rss = self.anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> tuple[int, int]:
        rss = anon = 0
        with contextlib.suppress(OSError), open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
        if not rss:
            import psutil

            rss = anon = psutil.Process().memory_info().rss
        return rss, anon

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            rss, anon = self.now()
            self.rss, self.anon = max(self.rss, rss), max(self.anon, anon)

    def mark(self) -> dict[str, float]:
        rss, anon = self.now()
        out = {"host_rss_peak_gib": round(max(self.rss, rss) / GIB, 2),
               "host_anon_peak_gib": round(max(self.anon, anon) / GIB, 2)}
        self.rss, self.anon = rss, anon
        return out

    def stop(self) -> None:
        self._stop.set()


class Phases:
    """VRAM (allocated and reserved peaks) and host RAM per phase."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.ram = HostRam()
        self.out: dict[str, dict[str, float]] = {}
        self.t = time.perf_counter()
        self._reset()

    def _reset(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def close(self, name: str) -> None:
        rec: dict[str, float] = {"seconds": round(time.perf_counter() - self.t, 2), **self.ram.mark()}
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            rec.update(vram_peak_gib=round(torch.cuda.max_memory_allocated() / GIB, 2),
                       vram_reserved_peak_gib=round(torch.cuda.max_memory_reserved() / GIB, 2),
                       vram_now_gib=round(torch.cuda.memory_allocated() / GIB, 2))
        self.out[name] = rec
        self.t = time.perf_counter()
        self._reset()

    def progress(self, total: int):
        """A progress callback that closes "encode + first step" at the first step and "steps" at the last."""
        state = {"first": False, "last": False}

        def on_event(event: Any) -> None:
            step = getattr(event, "step", 0)
            if step >= 1 and not state["first"]:
                state["first"] = True
                self.close("encode + first step")
            elif step >= total and not state["last"]:
                state["last"] = True
                self.close("other steps")

        return on_event


def emulate_t4() -> dict[str, Any]:
    """Cap this process's CUDA allocator at a T4's 15 GiB and turn flash attention off (Turing has none)."""
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, T4_VRAM_GIB * GIB / total))
    torch.backends.cuda.enable_flash_sdp(False)
    return {"gpu": torch.cuda.get_device_name(0), "gpu_total_gib": round(total / GIB, 1),
            "emulated_vram_gib": T4_VRAM_GIB, "flash_sdp": torch.backends.cuda.flash_sdp_enabled()}


def measure(model: str, *, dry_run: bool) -> dict[str, Any]:
    """Plan `model` for a T4 (dry run: for this CPU) and run it through MASUKA's own engine, phase by phase."""
    import torch

    import masuka_nb as mk
    from masuka_nb.errors import MasukaError
    from masuka_nb.models.registry import get_model

    spec = get_model(model)
    cuda = torch.cuda.is_available() and not dry_run
    rec: dict[str, Any] = {"model": model, "device": emulate_t4() if cuda else {"cpu": True}}
    if cuda:
        plan = mk.plan(model, gpu="t4")
        size: dict[str, Any] = {}
    else:  # the same road on the CPU, in fp32, at the smallest size (the weights are small: plan as if RAM were)
        size = {"width": spec.min_size, "height": spec.min_size}
        if spec.is_video:
            size["num_frames"] = 5
        plan = mk.plan(model, gpu="cpu", ram_gb=1024, dtype="float32", **size)
    rec["plan"] = {k: getattr(plan, k) for k in ("label", "after_load_vram_gb", "peak_vram_gb", "denoise_vram_gb",
                                                 "ram_gb", "load_ram_gb", "loading")}
    phases = Phases(cuda)
    try:
        if spec.is_video:
            from masuka_nb.video import local

            with local._lock:  # the video engine's own loader (what generate_local calls first)
                local._pipeline(spec, plan, i2v=False)
            phases.close("load")
            res = local.generate_local(PROMPT, model=model, plan=plan, steps=2, seed=0,
                                       progress=phases.progress(2), **size)
            rec["result"] = {"frames": res.num_frames, "size": [res.width, res.height],
                             "plan": res.plan.label if res.plan else plan.label,
                             "fallback": res.recipe.get("fallback")}
            local.unload()
        else:
            from masuka_nb.image.engine import ImageEngine

            engine = ImageEngine()
            engine.pipeline(model, plan=plan)
            phases.close("load")
            res = engine.generate(PROMPT, model=model, plan=plan, steps=2, seed=0, save=False, use_cache=False,
                                  progress=phases.progress(2), **size)
            rec["result"] = {"images": len(res.images), "cached": res.cached, "plan": res.plan.label,
                             "fallback": res.recipe.get("fallback")}
            engine.unload()
        phases.close("decode")
        rec["ok"] = True
    except MasukaError as err:
        phases.close("failed")
        rec.update(ok=False, error={"code": err.code, "message": str(err)[:500]})
    finally:
        phases.ram.stop()
    rec["phases"] = phases.out
    rec["after_load_vram_gib"] = phases.out.get("load", {}).get("vram_now_gib")
    return rec


# ---- 3. the run ----

def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], env=env, capture_output=True,
                         text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        return {"ok": False, "error": {"code": f"exit {out.returncode}", "message": out.stderr[-2000:]}}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny twins' weights, CPU plans, smallest sizes")
    ap.add_argument("--models", nargs="*", default=list(ORDER))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gpu_real_vram.json")
    ap.add_argument("--budget-s", type=float, default=570.0, help="skip the models that would start after this")
    ap.add_argument("--keep", action="store_true", help="keep the written model folders")
    ap.add_argument("--in-process", action="store_true",
                    help="no child processes (quicker; host RAM then includes what the writing left behind)")
    ap.add_argument("--write", help=argparse.SUPPRESS)  # child: write one model's folder
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # child: measure one model
    args = ap.parse_args(argv)
    os.environ.setdefault("MASUKA_PROGRESS", "off")  # MASUKA's and the libraries' loading bars
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.write or args.measure:
        import masuka_nb as mk

        mk.configure(offline=True, result_cache=False)
        result = (write_model(args.write, dry_run=args.dry_run) if args.write
                  else measure(args.measure, dry_run=args.dry_run))
        print(json.dumps(result, default=str), flush=True)
        return 0

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_real_vram.py measures on a CUDA GPU; use --dry-run elsewhere.", file=sys.stderr)
        return 2
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MASUKA_PROGRESS": "off", "PYTHONPATH": str(ROOT)}
    flag = ["--dry-run"] if args.dry_run else []
    start = time.perf_counter()
    report: dict[str, Any] = {"dry_run": args.dry_run, "order": args.models, "models": []}
    for model in args.models:
        if time.perf_counter() - start > args.budget_s:
            report["models"].append({"model": model, "ok": False, "skipped": "time budget spent"})
            continue
        if args.in_process:
            import masuka_nb as mk

            mk.configure(offline=True, result_cache=False)
            wrote = write_model(model, dry_run=args.dry_run)
            rec = measure(model, dry_run=args.dry_run)
        else:
            wrote = _child(["--write", model, *flag], env)
            rec = _child(["--measure", model, *flag], env) if "folder" in wrote else {"ok": False}
        rec.setdefault("model", model)
        rec["written"] = wrote
        if not args.keep and "folder" in wrote:
            shutil.rmtree(wrote["folder"], ignore_errors=True)
        report["models"].append(rec)
        print(_line(rec), flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {args.out} ({report['seconds']} s)")
    return 0 if all(m.get("ok") for m in report["models"]) else 1


def _line(rec: dict[str, Any]) -> str:
    if not rec.get("ok"):
        return f"{rec.get('model')}: FAILED {rec.get('skipped') or rec.get('error')}"
    plan, ph = rec["plan"], rec["phases"]
    peak = max((p.get("vram_peak_gib", 0.0) for p in ph.values()), default=0.0)
    ram = max(p["host_anon_peak_gib"] for p in ph.values())
    return (f"{rec['model']}: {plan['label']}\n   planned peak {plan['peak_vram_gb']:.1f} GiB, after load "
            f"{plan['after_load_vram_gb']:.1f}, RAM while loading {plan['load_ram_gb']:.1f}; measured peak "
            f"{peak:.1f} GiB, after load {rec.get('after_load_vram_gib')}, host anon RAM peak {ram:.1f} GiB; "
            f"fallback {rec.get('result', {}).get('fallback')}")


if __name__ == "__main__":
    raise SystemExit(main())
