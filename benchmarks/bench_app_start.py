"""App start: build and display `masuka_nb.app()` in a fresh interpreter vs `import diffusers`, fresh
interpreters, measured alternately in one run. Goal: ratio ≤ 0.25 (issue 8: the app starts light).

"Display" here is what a kernel does when it shows the app: IPython's `display()` (which reaches the view's
mimebundle through `_repr_mimebundle_` on ipywidgets 8 and `_ipython_display_` on Colab's 7.7.1), plus
serialising the state of every widget (what the front end receives). Both children start as a kernel
does, with IPython's shell already made, so that cost is counted in neither. The app's child also checks
that torch, diffusers and transformers stayed unimported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Comparison, exit_with, isolate, report

ROOT = str(Path(__file__).resolve().parents[1])
KERNEL = """
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output
InteractiveShell.instance()
"""
APP = """
import sys
import masuka_nb as mk
import ipywidgets
ui = mk.app(display=False)
with capture_output() as shown:
    display(ui)
bundle = shown.outputs[0].data if shown.outputs else {}
state = ipywidgets.Widget.get_manager_state()
assert "application/vnd.jupyter.widget-view+json" in bundle, f"not displayed as a widget: {bundle}"
assert state["state"], "no widget state to send"
heavy = [m for m in ("torch", "diffusers", "transformers") if m in sys.modules]
assert not heavy, f"app() imported {heavy}"
"""


def time_in_kernel(code: str) -> float:
    """Wall time of `code` in a fresh interpreter that has already made IPython's shell (as a kernel has)."""
    wrapped = f"{KERNEL}\nimport time as _t; _s = _t.perf_counter()\n{code}\nprint(_t.perf_counter() - _s)"
    out = subprocess.run([sys.executable, "-c", wrapped], check=True, capture_output=True, text=True,
                         env=dict(os.environ), cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main(repeat: int = 7) -> bool:
    isolate("bench-app-start")
    comp = Comparison("app() built + displayed", "import diffusers")
    for i in range(repeat + 1):
        pair = [(APP, comp.a_times), ("import diffusers", comp.b_times)]
        for code, sink in pair if i % 2 == 0 else reversed(pair):
            t = time_in_kernel(code)
            if i:  # the first round warms the OS file cache for both
                sink.append(t)
    return report("app() start vs import diffusers", comp, goal="ratio <= 0.25", ok=comp.ratio <= 0.25)


if __name__ == "__main__":
    exit_with(main())
