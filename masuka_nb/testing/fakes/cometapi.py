"""CometAPI: `/v1/videos` (Sora 2 / Veo 3.1, multipart) and `/runwayml/v1` (Runway, both task shapes).

References, checked 2026-12-01: the OpenAI-style video object https://platform.openai.com/docs/api-reference/videos
(as CometAPI serves it, https://apidoc.cometapi.com/), Runway's task object https://docs.dev.runwayml.com/api/.
`retired=` makes models answer as CometAPI does for a model it no longer routes (503, code `model_not_found`;
the envelope is CometAPI's documented error object, the code is the one-api family's, unverified).
"""

from __future__ import annotations

import io
import time

from masuka_nb.testing.fakes.base import FakeProvider, Request, Response

SORA_MODELS = {"sora-2", "sora-2-pro"}
SORA_SIZES = {"720x1280", "1280x720", "1024x1792", "1792x1024"}
VEO_ALIASES = {"veo3", "veo3-fast", "veo3-pro", "veo3.1", "veo3.1-fast"}
# Seedance on the same /v1/videos route (CometAPI update of 2026-04-20, https://github.com/orgs/cometapi-dev/
# discussions/91, and https://apidoc.cometapi.com/api/video/seedance/create): `seconds`, `size` (an aspect ratio),
# `resolution`, and `input_reference` only for 2.0 and later. 2.5's id and its 4-30 s / 480p-720p range follow
# ByteDance's naming and other resellers' docs (unverified at CometAPI).
SEEDANCE = {"doubao-seedance-2-0": (range(4, 16), ("480p", "720p"), True),
            "doubao-seedance-2-0-fast": (range(4, 16), ("480p", "720p"), True),
            "doubao-seedance-2-5": (range(4, 31), ("480p", "720p"), True),
            "doubao-seedance-1-5-pro": (range(4, 13), ("480p", "720p", "1080p"), False),
            "doubao-seedance-1-0-pro": (range(2, 11), ("480p", "720p", "1080p"), False)}
SEEDANCE_SIZES = {"21:9", "16:9", "4:3", "1:1", "3:4", "9:16"}
# Seedance 1.5 Pro answers as a model CometAPI no longer routes (retired after 2026-11-11 for Seedance 2.5).
RETIRED_BY_DEFAULT = ("doubao-seedance-1-5-pro",)
RUNWAY_RATIOS = {"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672", "1280:768", "768:1280"}


class FakeCometAPI(FakeProvider):
    name = "cometapi"

    def __init__(self, *, runway_shape: str = "plain", task_not_exist_for: float = 0.0,
                 poll_after_ms: int | None = None, retired: tuple[str, ...] = (), **kw) -> None:
        super().__init__(**kw)
        self.retired = set(retired) | set(RETIRED_BY_DEFAULT)
        self.poll_after_ms = poll_after_ms
        self.runway_shape = runway_shape
        self.task_not_exist_for = task_not_exist_for

    def routes(self):
        return [
            ("POST", r"^/v1/videos$", "submit", self.submit_video),
            ("GET", r"^/v1/videos/(?P<id>[\w-]+)$", "status", self.video_status),
            ("GET", r"^/v1/videos/(?P<id>[\w-]+)/content$", "download", self.video_content),
            ("POST", r"^/runwayml/v1/image_to_video$", "submit", self.runway_submit),
            ("GET", r"^/runwayml/v1/tasks/(?P<id>[\w-]+)$", "status", self.runway_task),
            *self.cdn_routes(),
        ]

    def error(self, status: int, message: str, *, kind: str = "comet_api_error", code: str = "") -> Response:
        rid = f"req{int(time.time() * 1000)}"
        return Response(status, {"error": {"message": f"{message} (request id: {rid})", "type": kind,
                                           "param": "", "code": code}})

    def policy_error(self) -> Response:
        return self.error(422, "Your request was blocked by our moderation system (content policy).",
                          kind="invalid_request_error", code="moderation_blocked")

    def submit_video(self, req: Request) -> Response:
        form = req.form()
        if not form:
            return self.error(400, "Content-Type must be multipart/form-data", code="invalid_request")
        get = {k: v[0][1].decode(errors="replace") for k, v in form.items() if v[0][0] is None}
        model, prompt, size = get.get("model", ""), get.get("prompt", ""), get.get("size", "")
        refs = form.get("input_reference", [])
        if not prompt:
            return self.error(400, "prompt is required", code="invalid_request")
        if model in self.retired:
            return self.error(503, f"No available channel for model {model} under group default",
                              kind="new_api_error", code="model_not_found")
        if model in SORA_MODELS:
            if get.get("seconds", "4") not in ("4", "8", "12"):
                return self.error(400, f"invalid seconds {get.get('seconds')!r}", code="invalid_request")
            if size not in SORA_SIZES:
                return self.error(400, f"invalid size {size!r}", code="invalid_request")
            if len(refs) > 1:
                return self.error(400, "sora takes one input_reference", code="invalid_request")
            if refs:
                from PIL import Image

                w, h = Image.open(io.BytesIO(refs[0][1])).size
                if f"{w}x{h}" != size:
                    return self.error(400, f"input_reference must be {size}, got {w}x{h}", code="invalid_request")
            resolved = model
        elif model in SEEDANCE:
            durations, resolutions, takes_image = SEEDANCE[model]
            seconds = get.get("seconds", "5")
            if not seconds.isdigit() or int(seconds) not in durations:
                return self.error(400, f"InvalidParameter: duration {seconds!r} is out of range for {model}",
                                  code="invalid_request")
            if size not in SEEDANCE_SIZES or get.get("resolution", "720p") not in resolutions:
                return self.error(400, f"InvalidParameter: size {size!r} or resolution {get.get('resolution')!r}",
                                  code="invalid_request")
            if refs and not takes_image:
                return self.error(400, f"the specified task_type r2v does not support model {model}",
                                  code="invalid_request")
            resolved = model
        elif model in VEO_ALIASES:
            if size not in ("16x9", "9x16") or len(refs) > 2:
                return self.error(400, f"invalid veo request (size {size!r}, {len(refs)} images)", code="invalid_request")
            resolved = "veo_3_1-4K" if "fast" not in model else "veo_3_1-fast"
        else:
            return self.error(500, f"model {model!r} not supported", code="invalid_request")
        job = self.new_job("video", {"model": resolved, "prompt": prompt,
                                     "seconds": get.get("seconds", "5" if model in SEEDANCE else "8"),
                                     "size": size, "references": len(refs)}, prefix="video_")
        return Response(200, self._video(job))

    def _video(self, job) -> dict:
        phase, progress = job.phase()
        status = {"queued": "queued", "running": "in_progress", "cancelled": "failed"}.get(phase, "completed")
        out = {"id": job.id, "object": "video", "model": job.input["model"], "status": status,
               "progress": int(progress * 100), "seconds": job.input["seconds"], "size": job.input["size"],
               "created_at": int(time.time()), "prompt": job.input["prompt"], "remixed_from_video_id": None,
               "error": None, "expires_at": None, "completed_at": None}
        if job.input["model"].startswith("veo"):
            out["task_id"] = job.id
        if phase == "done" and job.outcome != "ok":
            out["status"] = "failed"
            out["error"] = ({"code": "moderation_blocked", "message": "The output was blocked by content policy moderation."}
                            if job.outcome == "policy" else {"code": "internal_error", "message": "Video generation failed."})
        elif phase == "done":
            out["completed_at"] = int(time.time())
            out["expires_at"] = int(time.time()) + 3600
        return out

    def video_status(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        if job is None:
            return self.error(404, f"video {req.match['id']} not found", kind="invalid_request_error")
        headers = {"openai-poll-after-ms": str(self.poll_after_ms)} if self.poll_after_ms is not None else {}
        return Response(200, self._video(job), headers)

    def video_content(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        if job is None:
            return self.error(404, "video not found", kind="invalid_request_error")
        if self._video(job)["status"] != "completed":
            return self.error(400, "Video is not ready yet", kind="invalid_request_error")
        if req.query.get("variant") == ["thumbnail"]:
            return Response(200, self.thumbnail, content_type="image/webp")
        return Response(200, self.video, content_type="video/mp4")

    # -- Runway through CometAPI --
    def runway_submit(self, req: Request) -> Response:
        if req.headers.get("x-runway-version") != "2024-11-06":
            return self.error(400, "X-Runway-Version header must be 2024-11-06", code="invalid_request")
        body = req.json() or {}
        if not body.get("promptImage") or not body.get("model"):
            return self.error(400, "promptImage and model are required", code="invalid_request")
        if len(body.get("promptText", "")) > 512 or body.get("duration") not in (5, 10) or body.get("ratio") not in RUNWAY_RATIOS:
            return self.error(400, "invalid promptText, duration or ratio", code="invalid_request")
        job = self.new_job("video", body)
        return Response(200, {"id": job.id})

    def runway_task(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        if job is not None and time.monotonic() - job.created < self.task_not_exist_for:
            job = None
        if job is None:
            return Response(200, {"code": "task_not_exist", "message": "task_not_exist", "data": None})
        phase, progress = job.phase()
        failed = phase == "done" and job.outcome != "ok"
        if self.runway_shape == "wrapped":
            status = "FAILURE" if failed else {"queued": "QUEUED", "running": "IN_PROGRESS", "done": "SUCCESS",
                                                "cancelled": "FAILURE"}[phase]
            data = {"task_id": job.id, "status": status, "progress": f"{int(progress * 100)}%",
                    "fail_reason": ("SAFETY.OUTPUT.VIDEO: content policy" if job.outcome == "policy" else "INTERNAL") if failed else "",
                    "failure_code": ("SAFETY.OUTPUT.VIDEO" if job.outcome == "policy" else "INTERNAL") if failed else "",
                    "output": [self.download_url(job)] if phase == "done" and not failed else []}
            return Response(200, {"code": "success", "message": "", "data": data})
        return Response(200, _runway_task(self, job))


def _runway_task(fake: FakeProvider, job) -> dict:
    phase, progress = job.phase()
    out: dict = {"id": job.id, "createdAt": "2026-11-25T00:00:00Z"}
    if phase == "cancelled":
        out["status"] = "CANCELLED"
    elif phase == "queued":
        out["status"] = "PENDING"
    elif phase == "running":
        out.update(status="RUNNING", progress=round(progress, 2))
    elif job.outcome == "ok":
        out.update(status="SUCCEEDED", output=[fake.download_url(job)])
    else:
        code = "SAFETY.OUTPUT.VIDEO" if job.outcome == "policy" else "INTERNAL.BAD_OUTPUT"
        out.update(status="FAILED", failure="The output did not pass moderation." if job.outcome == "policy"
                   else "An internal error occurred.", failureCode=code)
    return out
