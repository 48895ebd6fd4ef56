"""20 concurrent hosted jobs against a loopback fake that finishes each in 3 s.

Goal: total wall time (submit all, poll all, download all, record all) ≤ 1.3 × 3 s.
Also reports how many status requests each job cost (the politeness side of the same knob).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import exit_with, report

JOBS = 20
COMPLETE_AFTER = 3.0
POLL_INTERVAL = 0.25


def main() -> None:
    os.environ["MASUKA_HOME"] = tempfile.mkdtemp(prefix="bench-jobs-")
    os.environ["MASUKA_PROGRESS"] = "off"
    os.environ["RUNWAYML_API_SECRET"] = "sk-bench-runway-000000"
    from masuka_nb.testing.fakes import FakeRunway
    from masuka_nb.video.generator import VideoGenerator, _wait_all

    with FakeRunway(complete_after=COMPLETE_AFTER, key="sk-bench-runway-000000") as fake:
        os.environ["MASUKA_RUNWAY_BASE_URL"] = fake.base_url
        gen = VideoGenerator(poll_interval=POLL_INTERVAL)
        start = time.perf_counter()
        # Concurrent jobs are submitted side by side too: each submit waits on two fsynced record
        # writes (before and after the request) and one round trip, which 20 threads overlap.
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=JOBS) as pool:
            warnings.simplefilter("ignore")
            jobs = list(pool.map(lambda i: gen.submit(f"clip {i}", model="gen4.5", provider="runway", seconds=5,
                                                       resolution="720p"), range(JOBS)))
        results = _wait_all(jobs)
        wall = time.perf_counter() - start
        assert len(results) == JOBS and all(r.path.exists() for r in results)
        per_job = fake.counts["status"] / JOBS
        submits = fake.counts["submit"]
    goal = 1.3 * COMPLETE_AFTER
    ok = report("20 concurrent jobs", goal=f"wall <= {goal:.2f} s", ok=wall <= goal and submits == JOBS,
                extra={"wall_s": round(wall, 3), "job_duration_s": COMPLETE_AFTER, "ratio_to_job": round(wall / COMPLETE_AFTER, 3),
                       "status_requests_per_job": round(per_job, 2), "poll_interval_s": POLL_INTERVAL, "submits": submits})
    exit_with(ok)


if __name__ == "__main__":
    main()
