"""The batch entry point run unchanged as two CPU processes under a distributed launcher (torchrun;
`accelerate launch` sets the same variables): the items are split, each made exactly once, and gathered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from masuka_nb.history import query

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import masuka_nb as mk
    res = mk.batch([f"a kite number {i}" for i in range(6)], seeds=[3], model="tiny-flux", width=32, height=32,
                   steps=1, progress=False)
    rank = int(os.environ["RANK"])
    mine = [it.index for it in res.items if it.image is not None]
    out = {"rank": rank, "made": mine, "all": [str(it.path) for it in res.items], "record": res.history_id}
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
""")


def test_two_cpu_processes_make_each_prompt_exactly_once(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path)], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    made = [ranks[0]["made"], ranks[1]["made"]]
    assert made[0] and made[1] and sorted(made[0] + made[1]) == [0, 1, 2, 3, 4, 5]  # split, none twice
    assert ranks[0]["all"] == ranks[1]["all"] and all(Path(p).is_file() for p in ranks[0]["all"])  # gathered
    records = query(kind="image")
    assert sorted(r.recipe["batch"]["index"] for r in records) == [0, 1, 2, 3, 4, 5]
    assert sorted(r.prompt for r in records) == sorted(f"a kite number {i}" for i in range(6))
    (batch_record,) = query(kind="batch")  # written once, by the main process
    assert batch_record.id == ranks[0]["record"] and ranks[1]["record"] == ""
