"""Cold start: median `import masuka_nb` time vs median `import diffusers` time, fresh interpreters,
measured alternately in one run. Goal: ratio ≤ 0.10."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Comparison, exit_with, report, time_subprocess

ROOT = str(Path(__file__).resolve().parents[1])


def main(repeat: int = 7) -> bool:
    comp = Comparison("import masuka_nb", "import diffusers")
    for i in range(repeat + 1):
        pair = [("import masuka_nb", comp.a_times), ("import diffusers", comp.b_times)]
        for code, sink in pair if i % 2 == 0 else reversed(pair):
            t = time_subprocess(code, cwd=ROOT)
            if i:  # the first round warms the OS file cache for both
                sink.append(t)
    first_use = [time_subprocess("import masuka_nb as m; m.settings(); m.get_model('flux1-dev')", cwd=ROOT)
                 for _ in range(3)]
    return report("import masuka_nb vs import diffusers", comp, goal="ratio <= 0.10", ok=comp.ratio <= 0.10,
                  extra={"import + settings() + registry lookup (median)": f"{statistics.median(first_use) * 1000:.1f} ms"})


if __name__ == "__main__":
    exit_with(main())
