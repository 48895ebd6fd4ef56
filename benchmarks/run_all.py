"""Run every benchmark in this folder, one after another, and print one summary line per goal.

    python benchmarks/run_all.py            # all
    python benchmarks/run_all.py import jobs   # those whose file name contains a word given

Exits non-zero when any goal was missed. Each script also stands alone (`python benchmarks/bench_X.py`).
Run on a quiet machine: the scripts measure both contenders alternately, but a neighbour that
saturates the cores still widens the spread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(words: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not words or any(w in p.stem for w in words))
    results = HERE / "results"
    failed = []
    for script in scripts:
        before = {p: p.stat().st_mtime for p in results.glob("*.json")} if results.is_dir() else {}
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        took = time.perf_counter() - start
        if code:
            failed.append(script.name)
        fresh = [p for p in results.glob("*.json") if before.get(p) != p.stat().st_mtime]
        for p in sorted(fresh):
            r = json.loads(p.read_text())
            ratio = f"ratio {r['ratio']:.4f}" if "ratio" in r else ""
            print(f"-- {script.name}: {r['title']}: {ratio} goal {r['goal'] or '-'}: "
                  f"{'MET' if r['ok'] else 'MISSED'}  ({took:.0f} s)", flush=True)
    print("all goals met" if not failed else "goals missed in: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
