"""Runway's own API: `/v1/image_to_video`, `/v1/text_to_video`, `/v1/video_to_video`, `/v1/tasks/{id}` (GET, DELETE).

Reference: https://docs.dev.runwayml.com/api/ (API version 2024-11-06), checked 2026-12-01.
"""

from __future__ import annotations

from masuka_nb.testing.fakes.base import FakeProvider, Request, Response
from masuka_nb.testing.fakes.cometapi import _runway_task

GEN4_RATIOS = {"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"}
VEO_RATIOS = {"1280:720", "720:1280", "1080:1920", "1920:1080"}
I2V = {"gen4_turbo", "gen4.5", "veo3.1", "veo3.1_fast", "seedance2"}
T2V = {"gen4.5", "veo3", "veo3.1", "veo3.1_fast", "seedance2"}
# Seedance 2.0 on Runway (runwayml/sdk-python, text_to_video_create_params.py / image_to_video_create_params.py,
# model "seedance2" since 2026-04-15): promptText up to 3500 characters, an integer duration (4-15 s: ByteDance's
# range; Runway's own page says "up to 15 s"), and these output sizes.
SEEDANCE_RATIOS = {"992:432", "864:496", "752:560", "640:640", "560:752", "496:864", "1470:630", "1280:720",
                   "1112:834", "960:960", "834:1112", "720:1280", "2206:946", "1920:1080", "1664:1248", "1440:1440",
                   "1248:1664", "1080:1920", "3840:1646", "3840:2160", "3840:2880", "3840:3840", "2880:3840",
                   "2160:3840"}


class FakeRunway(FakeProvider):
    name = "runway"

    def routes(self):
        return [
            ("POST", r"^/v1/(?P<kind>image_to_video|text_to_video)$", "submit", self.submit),
            ("POST", r"^/v1/video_to_video$", "submit", self.submit_v2v),
            ("GET", r"^/v1/tasks/(?P<id>[\w-]+)$", "status", self.task),
            ("DELETE", r"^/v1/tasks/(?P<id>[\w-]+)$", "cancel", self.cancel),
            *self.cdn_routes(),
        ]

    def error(self, status: int, message: str, *, kind: str = "") -> Response:
        return Response(status, {"error": message})

    def policy_error(self) -> Response:
        return Response(422, {"error": "Your prompt did not pass our content moderation (safety) check.",
                              "code": "SAFETY.INPUT.TEXT"})

    def submit(self, req: Request) -> Response:
        if req.headers.get("x-runway-version") != "2024-11-06":
            return self.error(400, "Invalid or missing X-Runway-Version header")
        body = req.json() or {}
        model, kind = body.get("model"), req.match["kind"]
        if model not in (I2V if kind == "image_to_video" else T2V):
            return self.error(400, "Invalid parameter 'model'")
        if kind == "image_to_video":
            img = body.get("promptImage")
            if model == "seedance2" and isinstance(img, list) and img and all(isinstance(i, dict) for i in img):
                img = img[0].get("uri")
            if not isinstance(img, str) or not (img.startswith("https://") or img.startswith("data:image/")):
                return self.error(400, "Invalid parameter 'promptImage'")
            if img.startswith("data:") and len(img) > 5 * 1024 * 1024 * 4 // 3 + 64:
                return self.error(400, "Invalid parameter 'promptImage': data URI over 5 MB")
        if model == "seedance2":
            return self._seedance(body, kind)
        ratios = VEO_RATIOS if model.startswith("veo") else GEN4_RATIOS
        if body.get("ratio") not in ratios:
            return self.error(400, "Invalid parameter 'ratio'")
        durations = {4, 6, 8} if model.startswith("veo") else set(range(2, 11)) if model == "gen4.5" else {5, 10}
        if body.get("duration") not in durations:
            return self.error(400, "Invalid parameter 'duration'")
        if not body.get("promptText") and model != "gen4_turbo":
            return self.error(400, "Invalid parameter 'promptText'")
        if len(body.get("promptText", "")) > 1000:
            return self.error(400, "Invalid parameter 'promptText'")
        job = self.new_job("video", body)
        return Response(200, {"id": job.id})

    def _seedance(self, body: dict, kind: str) -> Response:
        text = body.get("promptText", "")
        if (kind == "text_to_video" and not text) or len(text) > 3500:
            return self.error(400, "Invalid parameter 'promptText'")
        if "ratio" in body and body["ratio"] not in SEEDANCE_RATIOS:
            return self.error(400, "Invalid parameter 'ratio'")
        duration = body.get("duration", 5)
        if isinstance(duration, bool) or not isinstance(duration, int) or not 4 <= duration <= 15:
            return self.error(400, "Invalid parameter 'duration'")
        if "audio" in body and not isinstance(body["audio"], bool):
            return self.error(400, "Invalid parameter 'audio'")
        job = self.new_job("video", body)
        return Response(200, {"id": job.id})

    def submit_v2v(self, req: Request) -> Response:
        """Aleph: `videoUri` (HTTPS URL or data URI), `promptText` (required), `ratio`; no `duration`."""
        if req.headers.get("x-runway-version") != "2024-11-06":
            return self.error(400, "Invalid or missing X-Runway-Version header")
        body = req.json() or {}
        if body.get("model") != "gen4_aleph":
            return self.error(400, "Invalid parameter 'model'")
        uri = body.get("videoUri")
        if not isinstance(uri, str) or not (uri.startswith("https://") or uri.startswith("http://")
                                            or uri.startswith("data:video/")):
            return self.error(400, "Invalid parameter 'videoUri'")
        if body.get("ratio") not in GEN4_RATIOS or not body.get("promptText") or "duration" in body:
            return self.error(400, "Invalid parameter " + ("'duration'" if "duration" in body else "'ratio'"))
        job = self.new_job("video", body)
        return Response(200, {"id": job.id})

    def task(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        if job is None:
            return self.error(404, "Task not found")
        return Response(200, _runway_task(self, job))

    def cancel(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        if job is None:
            return self.error(404, "Task not found")
        job.cancelled = True
        return Response(204, None)
