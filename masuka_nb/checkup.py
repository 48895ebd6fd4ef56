"""`masuka_nb.doctor()`: this runtime as a table, with what it means for MASUKA, for a person to read.

It joins the probe (`masuka_nb.runtime`, which reads no settings) with the settings (`masuka_nb.config`),
so that `runtime` stays a pure probe below `config` and neither imports the other for it.
"""

from __future__ import annotations

import sys

from masuka_nb.config import settings
from masuka_nb.runtime import RuntimeInfo, detect, meaning

__all__ = ["doctor"]


def doctor() -> RuntimeInfo:
    """Print this runtime as a table, with what it means for MASUKA, and return it."""
    info = detect()
    s = settings()
    rows = [
        ("Colab", "yes" if info.colab else "no"),
        ("Python", info.python),
        ("torch", f"{info.torch_version or 'not installed'}" + (f" (CUDA {info.cuda_version})" if info.cuda_version else "")),
        ("GPU", f"{info.gpu_name} ×{info.gpu_count}" if info.has_gpu else "none"),
        ("VRAM", f"{info.vram_gb:.1f} GiB" if info.has_gpu else "-"),
        ("compute capability", ".".join(map(str, info.compute_capability)) if info.compute_capability else "-"),
        ("bf16 (hardware)", "yes" if info.bf16 else "no"),
        ("RAM", f"{info.ram_gb:.1f} GiB"),
        ("free disk", f"{info.disk_free_gb:.1f} GiB"),
        ("Drive mounted", "yes" if info.drive_mounted else "no"),
        ("MASUKA home", str(s.home)),
    ]
    width = max(len(k) for k, _ in rows)
    lines = ["MASUKA doctor", "-" * 40]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("")
    lines += ["• " + m for m in meaning(info)]
    # doctor is the one place that is a report for a person, so it writes to stdout on purpose.
    sys.stdout.write("\n".join(lines) + "\n")
    return info
