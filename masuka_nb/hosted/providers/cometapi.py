"""CometAPI: Sora 2 and Veo 3 through the OpenAI-style multipart `/v1/videos`, Runway through `/runwayml/v1`."""

from __future__ import annotations

from typing import Any

from masuka_nb.hosted.providers.base import MP4_TYPES, Provider
from masuka_nb.hosted.providers.runway import RUNWAY_VERSION, parse_runway_task, runway_body
from masuka_nb.hosted.store import Download, JobRecord, Poll

_STATES = {"queued": "queued", "in_progress": "running", "processing": "running", "completed": "succeeded",
           "failed": "failed", "cancelled": "cancelled"}


class CometAPIProvider(Provider):
    name = "cometapi"
    key_names = ("COMETAPI_KEY",)
    default_base_url = "https://api.cometapi.com"
    default_poll_interval = 5.0

    def submit_video(self, record: JobRecord, plan: Any, image: Any) -> None:
        if plan.route.route == "runway":
            self._submit_runway(record, plan, image)
            return
        model = plan.route.model
        # Every field as a form part: httpx sends multipart only when `files` is given.
        fields: list[tuple[str, Any]] = [("prompt", (None, record.prompt)), ("model", (None, model)),
                                         ("size", (None, plan.size))]
        if model.startswith("sora"):
            fields.append(("seconds", (None, str(plan.seconds))))
        elif model.startswith("doubao-seedance"):  # seconds and resolution are chosen; `size` is the aspect ratio
            fields += [("seconds", (None, str(plan.seconds))), ("resolution", (None, plan.resolution))]
        if image is not None:
            if model.startswith("sora"):  # Sora wants the reference at exactly the clip's size
                w, h = (int(v) for v in plan.size.split("x"))
                fields.append(("input_reference", ("reference.png", image.fitted(w, h), "image/png")))
            elif model.startswith("doubao-seedance"):  # one reference image (Seedance 2.0 and later)
                data, mime = image.limited(10 * 1024 * 1024)
                fields.append(("input_reference", (f"frame.{'jpg' if mime == 'image/jpeg' else 'png'}", data, mime)))
            else:  # Veo: one image (image to video) or two (first and last frame)
                for i, frame in enumerate(f for f in (image, image.last) if f is not None):
                    data, mime = frame.limited(10 * 1024 * 1024)
                    fields.append(("input_reference", (f"frame{i}.{'jpg' if mime == 'image/jpeg' else 'png'}", data, mime)))
        data = self.client.json("POST", "/v1/videos", op="submit", files=fields)
        record.provider_job_id = self.accepted_id(record, data, path=("id",))
        record.extra["resolved_model"] = data.get("model") if isinstance(data, dict) else None

    def _submit_runway(self, record: JobRecord, plan: Any, image: Any) -> None:
        body = runway_body(plan, record.prompt, image, text_limit=512)
        data = self.client.json("POST", "/runwayml/v1/image_to_video", op="submit", json=body,
                                headers={"X-Runway-Version": RUNWAY_VERSION})
        record.provider_job_id = self.accepted_id(record, data, path=("id",))

    def poll(self, record: JobRecord) -> Poll:
        if record.route == "runway":
            body = self.client.json("GET", f"/runwayml/v1/tasks/{record.provider_job_id}", op="poll",
                                    headers={"X-Runway-Version": RUNWAY_VERSION})
            if isinstance(body, dict) and "task_not_exist" in str(body.get("code", "")) + str(body.get("message", "")):
                from masuka_nb.errors import JobNotFoundError

                raise JobNotFoundError(f"cometapi does not know task {record.provider_job_id} yet.", provider=self.name)
            return parse_runway_task(self.name, body, self.asked_wait())
        body = self.client.json("GET", f"/v1/videos/{record.provider_job_id}", op="poll")
        if not isinstance(body, dict) or "status" not in body:
            raise self.bad("a status", body)
        state = _STATES.get(str(body["status"]), "running")
        err = None
        if state == "failed":
            e = body.get("error") or {}
            reason = str(e.get("message") or e or "no reason given")
            err = self.job_failed(record, reason, what="video", signals=str(e.get("code", "")))
        progress = body.get("progress")
        return Poll(state=state, progress=progress / 100.0 if isinstance(progress, (int, float)) else None,
                    message=str(body["status"]), outputs={"id": body.get("id"), "expires_at": body.get("expires_at")},
                    error=err, wait=self.asked_wait())

    def downloads(self, record: JobRecord) -> list[Download]:
        if record.route == "runway":
            urls = record.outputs.get("urls") or []
            return [Download("video", urls[0], ".mp4", MP4_TYPES)] if urls else []
        vid = record.provider_job_id
        return [Download("video", f"/v1/videos/{vid}/content", ".mp4", MP4_TYPES),
                Download("thumbnail", f"/v1/videos/{vid}/content?variant=thumbnail", ".webp", ("image/",), required=False)]

    def cancel(self, record: JobRecord) -> bool:
        return False  # neither route documents a cancel: the clip runs to the end (and is kept)
