"""Kling's official API under `/v1`: JWT (HS256) auth, `/videos/text2video|image2video` and their polls.

Reference: https://app.klingai.com/global/dev/document-api (checked 2026-12-01; field shapes agree with
third-party transcriptions). The answers' fields are listed in `masuka_nb.testing.fakes.contracts`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from masuka_nb.testing.fakes.base import FakeProvider, Request, Response


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeKling(FakeProvider):
    """`key` is "ACCESS:SECRET": tokens must be signed with SECRET and issued by ACCESS."""

    name = "kling"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def routes(self):
        return [
            # Kling's base URL ends in /v1; the simulator also answers without it, so a base URL of
            # just the root (as a notebook may build it) works too.
            ("POST", r"^(?:/v1)?/videos/(?P<kind>text2video|image2video)$", "submit", self.submit),
            ("GET", r"^(?:/v1)?/videos/(?P<kind>text2video|image2video)/(?P<id>[\w-]+)$", "status", self.task),
            *self.cdn_routes(),
        ]

    def authorized(self, req: Request) -> bool:
        token = req.headers.get("authorization", "").removeprefix("Bearer ").strip()
        parts = token.split(".")
        if len(parts) != 3:
            return False
        try:
            payload = json.loads(_unb64(parts[1]))
        except ValueError:
            return False
        now = time.time()
        if not (payload.get("nbf", 0) <= now < payload.get("exp", 0)):
            return False
        if self.key is None:
            return bool(payload.get("iss"))
        access, secret = self.key.split(":", 1)
        sig = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        return payload.get("iss") == access and hmac.compare_digest(sig, _unb64(parts[2]))

    def error(self, status: int, message: str, *, kind: str = "") -> Response:
        code = {401: 1000, 403: 1103, 404: 1203, 429: 1302}.get(status, 5000)
        return Response(status, {"code": code, "message": message, "request_id": f"kreq-{int(time.time() * 1000)}"})

    def policy_error(self) -> Response:
        return Response(422, {"code": 1301, "message": "Failure to pass the risk control system: content policy",
                              "request_id": "kreq-policy"})

    def submit(self, req: Request) -> Response:
        body = req.json() or {}
        if not body.get("model_name") or not body.get("prompt"):
            return self.error(400, "model_name and prompt are required")
        # Kling 3 takes 3-15 s; earlier models 5 or 10 (https://app.klingai.com/global/dev/document-api, 2026-12-01).
        durations = {str(n) for n in range(3, 16)} if str(body.get("model_name", "")).startswith("kling-v3") else {"5", "10"}
        if body.get("duration") not in durations or body.get("aspect_ratio") not in ("16:9", "9:16", "1:1"):
            return self.error(400, "invalid duration or aspect_ratio")
        if body.get("mode", "std") not in ("std", "pro"):
            return self.error(400, "invalid mode")
        if req.match["kind"] == "image2video":
            img = body.get("image", "")
            if not img or img.startswith("data:"):
                return self.error(400, "image must be a URL or bare base64")
        job = self.new_job(req.match["kind"], body)
        now = int(time.time() * 1000)
        job.extra["created_ms"] = now
        return Response(200, {"code": 0, "message": "SUCCEED", "request_id": f"kreq-{job.id}",
                              "data": {"task_id": job.id, "task_status": "submitted", "created_at": now, "updated_at": now}})

    def task(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        if job is None or job.kind != req.match["kind"]:
            return self.error(404, "task not found")
        phase, _ = job.phase()
        status = {"queued": "submitted", "running": "processing", "done": "succeed", "cancelled": "failed"}[phase]
        made = int(job.extra.get("created_ms") or time.time() * 1000)
        data = {"task_id": job.id, "task_status": status, "task_status_msg": "", "created_at": made,
                "updated_at": int(time.time() * 1000),
                "task_info": {"external_task_id": job.input.get("external_task_id")}}
        if phase == "done" and job.outcome != "ok":
            data["task_status"] = "failed"
            data["task_status_msg"] = ("The generated content was flagged by the content policy (risk control)."
                                       if job.outcome == "policy" else "Generation failed, please retry")
        elif phase == "done":
            data["task_result"] = {"videos": [{"id": "v1", "url": self.download_url(job), "duration": job.input["duration"]}]}
        return Response(200, {"code": 0, "message": "SUCCEED", "request_id": f"kreq-{job.id}", "data": data})
