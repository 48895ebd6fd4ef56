"""Replicate: predictions (official models) and trainings (`ostris/flux-dev-lora-trainer`), plus file uploads."""

from __future__ import annotations

import re
from typing import Any

from masuka_nb.errors import JobNotFoundError, ProviderUnavailableError
from masuka_nb.hosted.providers.base import MP4_TYPES, Provider
from masuka_nb.hosted.store import Download, JobRecord, Poll

_STATES = {"starting": "queued", "processing": "running", "succeeded": "succeeded", "failed": "failed",
           "canceled": "cancelled", "cancelled": "cancelled"}
DATA_URI_LIMIT = 256 * 1024  # Replicate's advice: larger inputs go through the files API


class ReplicateProvider(Provider):
    name = "replicate"
    key_names = ("REPLICATE_API_TOKEN",)
    default_base_url = "https://api.replicate.com"
    default_poll_interval = 3.0

    def _collection(self, record: JobRecord) -> str:
        return "trainings" if record.kind == "training" else "predictions"

    def submit_prediction(self, record: JobRecord, model: str, payload: dict[str, Any]) -> None:
        path = f"/v1/models/{model}/predictions" if ":" not in model else "/v1/predictions"
        body: dict[str, Any] = {"input": payload}
        if ":" in model:
            body["version"] = model.split(":", 1)[1]
        data = self.client.json("POST", path, op="submit", json=body)
        self._accept(record, data)

    def submit_video(self, record: JobRecord, plan: Any, image: Any) -> None:
        payload: dict[str, Any] = {"prompt": record.prompt, "duration": plan.seconds, "aspect_ratio": plan.size,
                                   "mode": plan.route.mode or "standard"}
        if image is not None:
            payload["start_image"] = image.url or self.image_url(image)
        self.submit_prediction(record, plan.route.model, payload)

    def image_url(self, image: Any) -> str:
        data, mime = image.limited(10 * 1024 * 1024)
        if len(data) <= DATA_URI_LIMIT:
            return image.data_uri(DATA_URI_LIMIT)
        return self.upload_bytes(data, mime, name="image.jpg")

    def submit_training(self, record: JobRecord, trainer: str, destination: str, payload: dict[str, Any]) -> None:
        version = record.extra.get("trainer_version") or self.latest_version(trainer)
        record.extra["trainer_version"] = version
        data = self.client.json("POST", f"/v1/models/{trainer}/versions/{version}/trainings", op="submit",
                                json={"destination": destination, "input": payload})
        self._accept(record, data)

    def _accept(self, record: JobRecord, data: Any) -> None:
        record.provider_job_id = self.accepted_id(record, data, path=("id",))

    def latest_version(self, model: str) -> str:
        data = self.client.json("GET", f"/v1/models/{model}", op="get")
        version = (data.get("latest_version") or {}).get("id") if isinstance(data, dict) else None
        if not version:
            raise self.bad("a latest version", data)
        return str(version)

    def ensure_destination(self, name: str) -> str:
        """`<username>/<name>`, created (private) when it does not exist: trainings need one."""
        account = self.client.json("GET", "/v1/account", op="get")
        owner = account.get("username") if isinstance(account, dict) else None
        if not owner:
            raise self.bad("a username", account)
        try:
            self.client.json("GET", f"/v1/models/{owner}/{name}", op="get")
        except (ProviderUnavailableError, JobNotFoundError) as exc:
            if exc.details.get("status") != 404:
                raise
            self.client.json("POST", "/v1/models", op="get",  # creating a model is free and idempotent-by-name
                             json={"owner": owner, "name": name, "visibility": "private", "hardware": "cpu",
                                   "description": "LoRA trained with MASUKA"})
        return f"{owner}/{name}"

    def poll(self, record: JobRecord) -> Poll:
        body = self.client.json("GET", f"/v1/{self._collection(record)}/{record.provider_job_id}", op="poll")
        if not isinstance(body, dict) or "status" not in body:
            raise self.bad("a status", body)
        state = _STATES.get(str(body["status"]), "running")
        logs = str(body.get("logs") or "").splitlines()
        err = None
        if state == "failed":
            reason = str(body.get("error") or "no reason given")
            err = self.job_failed(record, reason, what="prediction" if record.kind != "training" else "training")
        progress = None
        for line in reversed(logs):
            m = re.search(r"(\d{1,3})%\|", line) or re.search(r"(\d{1,3})%", line)
            if m:
                progress = min(1.0, int(m.group(1)) / 100.0)
                break
        out = body.get("output")
        return Poll(state=state, progress=progress, message=str(body["status"]), error=err, logs=logs,
                    outputs={"output": out, "metrics": body.get("metrics")}, wait=self.asked_wait())

    def downloads(self, record: JobRecord) -> list[Download]:
        out = record.outputs.get("output")
        if record.kind == "training":
            url = out.get("weights") if isinstance(out, dict) else None
            return [Download("weights", url, ".tar", ())] if url else []
        if isinstance(out, list):
            out = out[0] if out else None
        return [Download("video", out, ".mp4", MP4_TYPES)] if isinstance(out, str) else []

    def cancel(self, record: JobRecord) -> bool:
        self.client.send("POST", f"/v1/{self._collection(record)}/{record.provider_job_id}/cancel", op="cancel",
                         expect_json=False)
        return True

    def upload_bytes(self, data: bytes, content_type: str, *, name: str) -> str:
        body = self.client.json("POST", "/v1/files", op="upload", files={"content": (name, data, content_type)})
        url = ((body or {}).get("urls") or {}).get("get") if isinstance(body, dict) else None
        if not url:
            raise self.bad("a file URL", body)
        return str(url)
