"""Runway's API directly: `/v1/image_to_video`, `/v1/text_to_video`, `/v1/video_to_video` (Aleph), `/v1/tasks/{id}`
(version 2024-11-06; https://docs.dev.runwayml.com/api/)."""

from __future__ import annotations

from typing import Any

from masuka_nb.errors import JobFailedError, ProviderRejectedContentError
from masuka_nb.hosted.providers.base import MP4_TYPES, Provider
from masuka_nb.hosted.store import Download, JobRecord, Poll

RUNWAY_VERSION = "2024-11-06"
_STATES = {"PENDING": "queued", "THROTTLED": "queued", "QUEUED": "queued", "RUNNING": "running",
           "IN_PROGRESS": "running", "SUCCEEDED": "succeeded", "SUCCESS": "succeeded", "FAILED": "failed",
           "FAILURE": "failed", "CANCELLED": "cancelled", "CANCELED": "cancelled"}
DATA_URI_LIMIT = 5 * 1024 * 1024


def runway_body(plan: Any, prompt: str, image: Any, *, text_limit: int) -> dict[str, Any]:
    body: dict[str, Any] = {"model": plan.route.model, "promptText": prompt[:text_limit],
                            "ratio": plan.size, "duration": plan.seconds}
    if image is not None:
        body["promptImage"] = image.data_uri(DATA_URI_LIMIT)
    return body


def parse_runway_task(provider: str, body: dict[str, Any], wait: float | None) -> Poll:
    """Both documented shapes: plain Runway and CometAPI's wrapped `{"code", "data": {...}}`."""
    if isinstance(body.get("data"), dict) and "status" in body["data"]:
        data = body["data"]
        status = str(data.get("status", "")).upper()
        raw_progress = str(data.get("progress") or "0").rstrip("%")
        try:
            progress = float(raw_progress) / 100.0
        except ValueError:
            progress = None
        inner = data.get("data") if isinstance(data.get("data"), dict) else {}
        outputs = data.get("output") or inner.get("output")
        failure, code = data.get("fail_reason") or "", data.get("failure_code") or ""
    else:
        status = str(body.get("status", "")).upper()
        progress = body.get("progress")
        outputs = body.get("output")
        failure, code = body.get("failure") or "", body.get("failureCode") or ""
    state = _STATES.get(status, "running" if status else "queued")
    if isinstance(outputs, str):
        outputs = [outputs]
    err = None
    if state == "failed":
        cls = ProviderRejectedContentError if str(code).startswith("SAFETY") else JobFailedError
        err = cls(f"{provider} reports the task failed: {failure or 'no reason given'}" + (f" ({code})" if code else ""),
                  provider=provider, failure_code=code or None)
    return Poll(state=state, progress=float(progress) if isinstance(progress, (int, float)) else None,
                message=status.lower(), outputs={"urls": outputs or []}, error=err, wait=wait)


class RunwayProvider(Provider):
    name = "runway"
    key_names = ("RUNWAYML_API_SECRET",)
    default_base_url = "https://api.dev.runwayml.com"
    default_poll_interval = 6.0

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._keys[0]}", "X-Runway-Version": RUNWAY_VERSION}

    def submit_video(self, record: JobRecord, plan: Any, image: Any) -> None:
        if plan.mode == "v2v":  # Aleph: the clip's length follows the input video, so no duration is sent
            path = "/v1/video_to_video"
            body = {"model": plan.route.model, "promptText": record.prompt[:1000], "ratio": plan.size,
                    "videoUri": record.request["video"]}
        else:
            path = "/v1/image_to_video" if image is not None else "/v1/text_to_video"
            body = runway_body(plan, record.prompt, image, text_limit=1000)
        data = self.client.json("POST", path, op="submit", json=body)
        record.provider_job_id = self.accepted_id(record, data, path=("id",))

    def poll(self, record: JobRecord) -> Poll:
        body = self.client.json("GET", f"/v1/tasks/{record.provider_job_id}", op="poll")
        return parse_runway_task(self.name, body, self.asked_wait())

    def downloads(self, record: JobRecord) -> list[Download]:
        urls = record.outputs.get("urls") or []
        return [Download("video", urls[0], ".mp4", MP4_TYPES)] if urls else []

    def cancel(self, record: JobRecord) -> bool:
        self.client.send("DELETE", f"/v1/tasks/{record.provider_job_id}", op="cancel", expect_json=False)
        return True
