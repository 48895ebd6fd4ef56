"""fal.ai's queue (`queue.fal.run`): Kling on fal, LoRA training, and any other fal app.

Submit `POST /{owner}/{app}[/{path}]`; follow the `status_url` / `response_url` / `cancel_url` it
returns (they leave the sub-path out). Files go up through fal's storage: `initiate` then `PUT`.
"""

from __future__ import annotations

from typing import Any

from masuka_nb.config import settings
from masuka_nb.hosted import pricing as _cost
from masuka_nb.hosted.providers.base import ID_NAMES, MP4_TYPES, Provider, base_url_for
from masuka_nb.hosted.runner import Job, submit_recorded
from masuka_nb.hosted.runner import poll_interval as jobs_poll_interval
from masuka_nb.hosted.store import Download, JobRecord, Poll

_STATES = {"IN_QUEUE": "queued", "IN_PROGRESS": "running", "COMPLETED": "succeeded"}
DATA_URI_LIMIT = 8 * 1024 * 1024


class FalProvider(Provider):
    name = "fal"
    key_names = ("FAL_KEY",)
    default_base_url = "https://queue.fal.run"
    default_poll_interval = 3.0
    fal_proxy_rules = True

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._keys[0]}"}

    # -- generic --
    def submit_app(self, record: JobRecord, app: str, payload: dict[str, Any]) -> None:
        data = self.client.json("POST", f"/{app.strip('/')}", op="submit", json=payload)
        record.provider_job_id = self.accepted_id(record, data, path=("request_id",), names=("request_id", *ID_NAMES))
        self._follow(record, app, data)

    create_id_path = ("request_id",)

    def adopted(self, record: JobRecord, body: Any, entry: dict[str, Any]) -> None:
        self._follow(record, record.provider_model or record.model, body)

    def _follow(self, record: JobRecord, app: str, data: Any) -> None:
        base = "/".join(app.strip("/").split("/")[:2])
        rid = record.provider_job_id
        data = data if isinstance(data, dict) and data.get("request_id") == rid else {}  # URLs only from the documented shape
        record.extra.update({
            "app": app,
            "status_url": data.get("status_url") or f"{self.base_url}/{base}/requests/{rid}/status",
            "response_url": data.get("response_url") or f"{self.base_url}/{base}/requests/{rid}",
            "cancel_url": data.get("cancel_url") or f"{self.base_url}/{base}/requests/{rid}/cancel",
        })

    def submit_video(self, record: JobRecord, plan: Any, image: Any) -> None:
        if plan.route.model == "fal-ai/stable-video":
            # SVD takes no prompt or duration: 25 frames, so the length is the frame rate (fps = 25 / seconds).
            payload: dict[str, Any] = {"fps": max(1, round(25 / plan.seconds))}
        else:
            payload = {"prompt": record.prompt, "duration": str(plan.seconds)}
        payload.update(plan.controls)  # mapped controls (motion_intensity → motion_bucket_id)
        if image is not None:
            payload["image_url"] = image.url or self.upload_bytes(*image.limited(DATA_URI_LIMIT), name="image.jpg")
        if "text-to-video" in plan.route.model:
            payload["aspect_ratio"] = plan.size
        if plan.route.model.startswith("kling/v4/"):  # Kling 4.0 is priced (and made) per resolution
            payload["resolution"] = plan.resolution
        self.submit_app(record, plan.route.model, payload)

    def poll(self, record: JobRecord) -> Poll:
        body = self.client.json("GET", record.extra["status_url"] + "?logs=1", op="poll")
        if not isinstance(body, dict) or "status" not in body:
            raise self.bad("a status", body)
        status = str(body["status"])
        state = _STATES.get(status, "running")
        logs = [str(entry.get("message", entry)) if isinstance(entry, dict) else str(entry) for entry in body.get("logs") or []]
        progress = _progress_from_logs(logs)
        if state == "succeeded" and body.get("error"):
            reason = str(body["error"])
            etype = str(body.get("error_type", ""))
            return Poll(state="failed", error=self.job_failed(record, reason, what="request", signals=etype), logs=logs)
        outputs: dict[str, Any] = {}
        if state == "succeeded":
            outputs = self.client.json("GET", record.extra["response_url"], op="poll")
            if not isinstance(outputs, dict):
                raise self.bad("a result object", outputs)
        pos = body.get("queue_position")
        return Poll(state=state, progress=progress, message=status.lower() + (f" (#{pos} in queue)" if pos is not None else ""),
                    outputs=outputs, logs=logs, wait=self.asked_wait())

    def downloads(self, record: JobRecord) -> list[Download]:
        out = record.outputs
        if record.kind == "training":
            lora = out.get("diffusers_lora_file") if isinstance(out.get("diffusers_lora_file"), dict) else {}
            url = lora.get("url")
            return [Download("lora", url, ".safetensors", (), size=_size(lora))] if url else []
        video = out.get("video") if isinstance(out.get("video"), dict) else {}
        if record.kind == "video":
            url = video.get("url")
            return [Download("video", url, ".mp4", MP4_TYPES, size=_size(video))] if url else []
        return []  # a generic app: its JSON output is the result

    def cancel(self, record: JobRecord) -> bool:
        self.client.send("PUT", record.extra["cancel_url"], op="cancel", expect_json=False)
        return True

    # -- storage --
    def upload_bytes(self, data: bytes, content_type: str, *, name: str) -> str:
        """Put bytes on fal's storage; return the URL apps can read."""
        storage = base_url_for("fal_storage", "https://rest.alpha.fal.ai").rstrip("/")
        configured = settings()
        if configured.fal_base_url and not configured.fal_storage_base_url:
            storage = self.base_url  # the simulator serves storage on the same root
        init = self.client.json("POST", f"{storage}/storage/upload/initiate?storage_type=fal-cdn-v3", op="upload",
                                json={"content_type": content_type, "file_name": name},
                                headers=self.auth_headers())
        if not isinstance(init, dict) or not init.get("upload_url") or not init.get("file_url"):
            raise self.bad("an upload URL", init)
        # A presigned URL: no key goes with it.
        self.client.send("PUT", init["upload_url"], op="upload", expect_json=False, content=data,
                         headers={"Content-Type": content_type})
        return str(init["file_url"])


def _size(file: dict[str, Any]) -> int | None:
    """fal's `file_size` for a result file, checked against the download (absent or odd: not checked)."""
    size = file.get("file_size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def _progress_from_logs(logs: list[str]) -> float | None:
    import re

    for line in reversed(logs):
        m = re.search(r"(\d{1,3})%", line)
        if m:
            return min(1.0, int(m.group(1)) / 100.0)
    return None


def run_app(app: str, arguments: dict[str, Any], *, wait: bool = True, max_cost: float | None = None,
            estimate_usd: float | None = None, base_url: str | None = None, poll_interval: float | None = None,
            progress: Any = None) -> Any:
    """Run any fal app through the queue as a resumable job; return its JSON output (or the job when `wait=False`).

    fal does not price arbitrary apps up front: pass `estimate_usd` (from the app's page) to have
    `max_cost` and the session budget checked before it is sent.
    """
    if estimate_usd is not None:
        _cost.check_budget(estimate_usd, max_cost=max_cost, what=f"fal app {app}")
    provider = FalProvider(base_url=base_url)
    rec = JobRecord.new("app", "fal", model=app, provider_model=app, prompt=str(arguments.get("prompt", "")))
    rec.base_url, rec.estimate_usd = provider.base_url, estimate_usd
    rec.poll_interval = jobs_poll_interval(provider, poll_interval)
    rec.request = {"arguments": arguments}
    try:
        submit_recorded(rec, lambda: provider.submit_app(rec, app, arguments), usd=estimate_usd)
    finally:
        provider.close()
    job = Job(rec)
    return job.wait(progress=progress) if wait else job
