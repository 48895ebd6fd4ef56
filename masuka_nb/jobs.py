"""Paid hosted jobs, for a notebook: list them, carry them on after a restart, wait for one.

    masuka_nb.jobs.list()          # newest first, from MASUKA's home (Drive when mounted)
    masuka_nb.jobs.resume_all()    # after a restart: poll and download what was in flight
    masuka_nb.jobs.get(job_id).wait()

The work is done by the hosted layer (`masuka_nb.hosted.store` keeps the records,
`masuka_nb.hosted.runner` carries them on). This facade sits above the engines so it can make sure
every kind of job (video, cloud training) is registered before a record is turned into a job.
"""

from __future__ import annotations

import builtins

from masuka_nb.hosted.runner import (
    CancelToken,
    Job,
    ProgressCallback,
    poll_interval,
    register_kind,
    submit_recorded,
)
from masuka_nb.hosted.runner import get as _get
from masuka_nb.hosted.runner import list_jobs as _list_jobs
from masuka_nb.hosted.runner import resume_all as _resume_all
from masuka_nb.hosted.store import Download, JobRecord, Poll, jobs_dir, load, save
from masuka_nb.lora.cloud import CloudTrainingJob
from masuka_nb.video.generator import VideoJob

__all__ = ["Download", "Job", "JobRecord", "Poll", "get", "jobs_dir", "list", "load", "poll_interval",
           "resume_all", "save", "submit_recorded"]

# The registration seam: every Job subclass registers its kind when its module is imported, so this
# facade (above the engines) imports each one; the hosted layer below never names an engine's class.
KINDS = (VideoJob, CloudTrainingJob)


def _register_kinds() -> None:
    for cls in KINDS:
        register_kind(cls.kind, cls)


def get(id: str) -> Job:
    """The job `id` (a `VideoJob` or `CloudTrainingJob`), read from the store now."""
    _register_kinds()
    return _get(id)


def list_jobs(*, kind: str | None = None, state: str | None = None) -> builtins.list[Job]:
    """Every job kept in MASUKA's home, newest first; `kind` ("video"/"training") and `state` filter."""
    _register_kinds()
    return _list_jobs(kind=kind, state=state)


def resume_all(*, progress: ProgressCallback | bool | None = False, max_workers: int = 8,
               cancel: CancelToken | None = None) -> builtins.list[Job]:
    """Carry on every unfinished job (poll, download, finish), concurrently; return them all.

    A `cancel` token stops every wait at once (the jobs stay resumable)."""
    _register_kinds()
    return _resume_all(progress=progress, max_workers=max_workers, cancel=cancel)


# `masuka_nb.jobs.list()` is the public name; the module uses `builtins.list` for the type.
list = list_jobs
