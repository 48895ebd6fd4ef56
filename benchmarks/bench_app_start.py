"""App start: build and display `masuka_nb.app()` in a fresh interpreter vs `import diffusers`, fresh
interpreters, measured alternately in one run. Goal: ratio ≤ 0.25 (issue 8: the app starts light).

"Display" here is what a kernel does when it shows the app: the view's mimebundle, plus serialising
the state of every widget (what the front end receives). The child also checks that torch,
diffusers and transformers stayed unimported.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Comparison, exit_with, isolate, report, time_subprocess

ROOT = str(Path(__file__).resolve().parents[1])
APP = """
import sys
import masuka_nb as mk
import ipywidgets
ui = mk.app(display=False)
bundle = ui._repr_mimebundle_()
state = ipywidgets.Widget.get_manager_state()
assert bundle and state["state"], "nothing to display"
heavy = [m for m in ("torch", "diffusers", "transformers") if m in sys.modules]
assert not heavy, f"app() imported {heavy}"
"""


def main(repeat: int = 7) -> bool:
    isolate("bench-app-start")
    comp = Comparison("app() built + displayed", "import diffusers")
    for i in range(repeat + 1):
        pair = [(APP, comp.a_times), ("import diffusers", comp.b_times)]
        for code, sink in pair if i % 2 == 0 else reversed(pair):
            t = time_subprocess(code, cwd=ROOT)
            if i:  # the first round warms the OS file cache for both
                sink.append(t)
    return report("app() start vs import diffusers", comp, goal="ratio <= 0.25", ok=comp.ratio <= 0.25)


if __name__ == "__main__":
    exit_with(main())
