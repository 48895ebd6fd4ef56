"""A small shared benchmark harness: warm-up, repeats, medians, and ratios of two contenders
measured alternately in one run (so machine load affects both alike).

    from harness import compare, report
    r = compare("ours", ours_fn, "raw diffusers", raw_fn, repeat=15, warmup=2)
    report("generate overhead", r, goal="<= 1.05", ok=r.ratio <= 1.05)

Each script in benchmarks/ prints its ratios and exits non-zero when a goal is missed, so a run
of `python benchmarks/<name>.py` is a yes/no answer with the numbers beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def isolate(prefix: str, *, fresh_cache: bool = False) -> Path:
    """Before importing masuka_nb: run offline, quietly, against this checkout, in a throwaway MASUKA
    home (and, with `fresh_cache`, a throwaway local cache so nothing cached earlier answers a call)."""
    import atexit
    import shutil
    import tempfile

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["MASUKA_PROGRESS"] = "off"
    keys = ["MASUKA_HOME"] + (["MASUKA_CACHE_DIR"] if fresh_cache else [])
    for key in keys:
        os.environ[key] = tempfile.mkdtemp(prefix=f"{prefix}-{key.lower()}-")
        atexit.register(shutil.rmtree, os.environ[key], True)
    return Path(os.environ["MASUKA_HOME"])


@dataclass
class Comparison:
    a_name: str
    b_name: str
    a_times: list[float] = field(default_factory=list)
    b_times: list[float] = field(default_factory=list)
    # This process's CPU time over the same calls: what the work cost, whatever the neighbours on a shared
    # machine do to the wall clock (the image scripts pin torch to one thread, so CPU time is the work).
    a_cpu: list[float] = field(default_factory=list)
    b_cpu: list[float] = field(default_factory=list)

    @property
    def a_median(self) -> float:
        return statistics.median(self.a_times)

    @property
    def b_median(self) -> float:
        return statistics.median(self.b_times)

    @property
    def ratio(self) -> float:
        """median(a) / median(b)."""
        return self.a_median / self.b_median if self.b_median else float("inf")

    @property
    def cpu_ratio(self) -> float:
        """median CPU time of a / of b."""
        b = statistics.median(self.b_cpu) if self.b_cpu else 0.0
        return statistics.median(self.a_cpu) / b if b else float("inf")


def time_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(a_name: str, a: Callable[[], object], b_name: str, b: Callable[[], object], *,
            repeat: int = 10, warmup: int = 1) -> Comparison:
    """Run a and b alternately (a, b, b, a, ...) after `warmup` rounds each; keep every timing."""
    for _ in range(warmup):
        a()
        b()
    result = Comparison(a_name, b_name)
    for i in range(repeat):
        order = ((a, result.a_times, result.a_cpu), (b, result.b_times, result.b_cpu))
        for fn, sink, cpu in order if i % 2 == 0 else reversed(order):
            c = time.process_time()
            sink.append(time_call(fn))
            cpu.append(time.process_time() - c)
    return result


def time_subprocess(code: str, *, env: dict[str, str] | None = None, cwd: str | None = None) -> float:
    """Wall time of `python -c code` measured inside the child (excludes interpreter start-up noise)."""
    wrapped = f"import time as _t; _s = _t.perf_counter()\n{code}\nprint(_t.perf_counter() - _s)"
    out = subprocess.run([sys.executable, "-c", wrapped], check=True, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, cwd=cwd)
    return float(out.stdout.strip().splitlines()[-1])


def report(title: str, comp: Comparison | None = None, *, goal: str = "", ok: bool = True,
           extra: dict[str, object] | None = None) -> bool:
    lines = [f"== {title}"]
    if comp is not None:
        lines.append(f"   {comp.a_name:<28} median {comp.a_median * 1000:9.2f} ms  (n={len(comp.a_times)})")
        lines.append(f"   {comp.b_name:<28} median {comp.b_median * 1000:9.2f} ms  (n={len(comp.b_times)})")
        lines.append(f"   ratio {comp.a_name} / {comp.b_name} = {comp.ratio:.4f}")
        if comp.a_cpu:
            lines.append(f"   CPU-time ratio (this process) = {comp.cpu_ratio:.4f}")
    for key, value in (extra or {}).items():
        lines.append(f"   {key}: {value}")
    if goal:
        lines.append(f"   goal {goal}: {'MET' if ok else 'MISSED'}")
    print("\n".join(lines), flush=True)
    RESULTS.mkdir(exist_ok=True)
    record = {"title": title, "goal": goal, "ok": ok, "extra": {k: str(v) for k, v in (extra or {}).items()}}
    if comp is not None:
        record.update(asdict(comp), ratio=comp.ratio)
    (RESULTS / (title.replace(" ", "_").replace("/", "-") + ".json")).write_text(json.dumps(record, indent=1))
    return ok


def exit_with(*oks: bool) -> None:
    raise SystemExit(0 if all(oks) else 1)
