"""The job store across processes: SIGKILL mid-poll and mid-download, then a new process finishes the job.

The fakes live in this test process; the clients run in child processes that really die (SIGKILL),
so only what reached the job store survives. The fake counts submits: exactly one each time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from video_helpers import fast_env

from masuka_nb import history, jobs
from masuka_nb.hosted.runner import JobRecord, save
from masuka_nb.testing.media import tiny_mp4

ROOT = Path(__file__).resolve().parents[2]

GENERATE = """
import warnings; warnings.simplefilter("ignore")
from masuka_nb.video.generator import VideoGenerator
VideoGenerator().generate("a lighthouse at dawn", model="gen4.5", provider="runway", duration=5)
"""
RESUME = """
import json
from masuka_nb import jobs
done = jobs.resume_all()
print(json.dumps([[j.id, j.state, j.record.paths.get("video")] for j in done]))
"""


def child(code: str) -> subprocess.Popen:
    env = {**os.environ, **fast_env(), "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def records() -> list[dict]:
    folder = Path(os.environ["MASUKA_HOME"]) / "jobs"
    out = []
    for p in folder.glob("*.json") if folder.is_dir() else []:
        try:
            out.append(json.loads(p.read_text()))
        except ValueError:
            pass  # mid-rename on some filesystems: read it next time
    return out


def resume_in_new_process() -> list:
    proc = child(RESUME)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_kill_while_polling_then_resume(fakes):
    fake = fakes("runway", complete_after=60)
    proc = child(GENERATE)
    try:
        wait_for(lambda: fake.counts["status"] >= 3)
        rec = wait_for(lambda: next((r for r in records() if r["provider_job_id"]), None))
        assert rec["state"] in ("submitted", "running")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    [job] = fake.jobs.values()
    job.duration = 0.0  # the provider finishes while nobody is watching
    [[job_id, state, path]] = resume_in_new_process()
    assert state == "completed" and job_id == rec["id"]
    assert Path(path).read_bytes() == fake.video
    assert fake.counts["submit"] == 1 and len(fake.jobs) == 1
    assert [h.status for h in history.query(kind="video")] == ["ok"]
    assert resume_in_new_process() == []  # nothing left to do, nothing submitted again
    assert fake.counts["submit"] == 1


def test_kill_while_downloading_then_resume_with_range(fakes):
    video = tiny_mp4(frames=8, pad_to=3_000_000)
    fake = fakes("runway", complete_after=0.1, video=video, download_chunk=64 * 1024, download_chunk_delay=0.03)
    proc = child(GENERATE)
    try:
        part = wait_for(lambda: next((p for p in (Path(os.environ["MASUKA_HOME"]) / "outputs" / "videos").glob("*.part")
                                      if p.stat().st_size > 200_000), None) if (Path(os.environ["MASUKA_HOME"]) / "outputs" / "videos").is_dir() else None)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    kept = part.stat().st_size
    assert 0 < kept < len(video)
    assert records()[0]["state"] == "downloading"
    fake.download_chunk_delay = 0.0
    [[_, state, path]] = resume_in_new_process()
    assert state == "completed"
    assert Path(path).read_bytes() == video
    assert not part.exists()
    assert any(r.startswith("bytes=") and int(r[6:].rstrip("-")) >= kept for r in fake.ranges)
    assert fake.counts["submit"] == 1


def test_record_left_in_submitting_is_never_resubmitted(fakes):
    fake = fakes("runway")
    rec = JobRecord.new("video", "runway", model="gen4.5", prompt="a fox", base_url=fake.base_url)
    save(rec)
    [job] = jobs.resume_all()
    assert job.state == "needs_attention" and "dashboard" in job.record.error["hint"]
    assert sum(fake.counts.values()) == 0
    with pytest.raises(Exception) as info:
        jobs.get(rec.id).wait()
    assert info.value.code == "JOB_ERROR"


def test_list_get_and_damaged_files(fakes):
    import warnings

    from masuka_nb.video.generator import VideoGenerator

    fakes("runway")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = VideoGenerator().submit("a fox", model="gen4.5", provider="runway")
    (Path(os.environ["MASUKA_HOME"]) / "jobs" / "broken.json").write_text("{not json")
    assert [j.id for j in jobs.list()] == [job.id]
    assert jobs.list(kind="training") == []
    again = jobs.get(job.id)
    result = again.wait()
    assert result.path.exists() and jobs.get(job.id).state == "completed"
    assert again.wait().path == result.path  # waiting on a finished job just returns it
    with pytest.raises(Exception) as info:
        jobs.get("v-nope")
    assert info.value.code == "JOB_NOT_FOUND"


def test_many_jobs_resume_concurrently(fakes):
    import warnings

    from masuka_nb.video.generator import VideoGenerator

    fake = fakes("runway", complete_after=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        submitted = [VideoGenerator().submit(f"fox {i}", model="gen4.5", provider="runway") for i in range(6)]
    done = jobs.resume_all()
    polled = [path.rsplit("/", 1)[-1] for _, path, op in fake.log if op == "status"]
    assert len(set(polled[:6])) > 1  # they were polled side by side, not one after another
    assert sorted(j.id for j in done) == sorted(j.id for j in submitted)
    assert all(j.state == "completed" for j in done)
    assert fake.counts["submit"] == 6


def test_cancel_from_another_thread_stops_a_waiting_job(fakes):
    import threading
    import warnings

    from masuka_nb.video.generator import VideoGenerator

    fake = fakes("runway", complete_after=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = VideoGenerator().submit("a fox", model="gen4.5", provider="runway")
    caught = []

    def waiter():
        try:
            job.wait()
        except Exception as exc:
            caught.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    wait_for(lambda: fake.counts["status"] >= 2)
    job.cancel()
    t.join(timeout=10)
    assert not t.is_alive() and caught and caught[0].code == "CANCELLED"
    assert fake.counts["cancel"] == 1 and jobs.get(job.id).state == "cancelled"


def test_a_live_process_holding_the_job_is_respected(fakes):
    """Another process owns the job (its lease is live): wait() waits for it, never polls beside it; once that
    process is gone, the job is taken over with a higher fencing token and finished here."""
    import warnings

    from masuka_nb.video.generator import VideoGenerator

    fake = fakes("runway")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = VideoGenerator().submit("a fox", model="gen4.5", provider="runway")
    code = ("import sys, time; from masuka_nb.hosted.lease import acquire; lease = acquire(sys.argv[1]); "
            "print(lease.token, flush=True); time.sleep(60)")
    env = {**os.environ, **fast_env(), "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    holder = subprocess.Popen([sys.executable, "-c", code, job.id], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        token = int(holder.stdout.readline())
        with pytest.raises(Exception) as info:
            jobs.get(job.id).wait(timeout=0.3)
        assert info.value.code == "JOB_ERROR" and str(holder.pid) in str(info.value)
        assert fake.counts["status"] == 0  # it waited for the owner instead of polling beside it
    finally:
        holder.kill()
        holder.wait()
    result = jobs.get(job.id).wait()  # its holder died: taken over
    assert result.path.read_bytes() == fake.video
    leases = sorted((Path(os.environ["MASUKA_HOME"]) / "jobs" / "leases" / job.id).glob("*.lease"))
    assert [int(p.name.split(".")[0]) for p in leases] == [token + 1]  # the newer owner's tombstone only


def test_two_waiters_in_one_process_download_once(fakes):
    import threading
    import warnings

    from masuka_nb.video.generator import VideoGenerator

    fake = fakes("runway", complete_after=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = VideoGenerator().submit("a fox", model="gen4.5", provider="runway")
    results = []
    threads = [threading.Thread(target=lambda: results.append(jobs.get(job.id).wait())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(results) == 2 and results[0].path == results[1].path
    assert fake.counts["download"] == 1


def test_a_fresh_process_finds_a_jobs_class_by_its_kind_through_the_jobs_facade(fakes):
    """hosted/ names no video or LoRA class: `masuka_nb.jobs` (above the engines) registers every kind, and a
    record's kind is the one way to find its class."""
    import warnings

    from masuka_nb.video.generator import VideoGenerator

    fakes("runway", complete_after=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = VideoGenerator().submit("a fox", model="gen4.5")
    assert job.record.kind == "video"
    code = ("import sys; from masuka_nb import jobs; j = jobs.get(sys.argv[1]); "
            "r = j.wait(); print(type(j).__name__, type(r).__name__)")
    env = {**os.environ, **fast_env(), "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code, job.id], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["VideoJob", "VideoResult"]
