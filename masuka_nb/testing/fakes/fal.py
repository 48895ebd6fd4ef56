"""fal.ai's queue (`/{owner}/{app}[/{path}]`, `.../requests/{id}[/status|/cancel]`) and storage upload.

Reference: https://docs.fal.ai/model-endpoints/queue (checked 2026-12-01); the answers' fields are listed in
`masuka_nb.testing.fakes.contracts`.
"""

from __future__ import annotations

import io
import secrets
import zipfile

from masuka_nb.testing.fakes.base import FakeProvider, Request, Response

TRAINER = "fal-ai/flux-lora-fast-training"


def zip_problems(data: bytes, *, min_images: int) -> str | None:
    """What is wrong with a LoRA dataset zip, or None.

    Captions are optional, as at the services: a `name.txt` beside `name.jpg` is used when present,
    otherwise the trigger word stands in (fal's flux-lora-fast-training and Replicate's
    ostris/flux-dev-lora-trainer docs, checked 2026-12-01). Refused, as there: something that is not a
    zip, too few images, and caption files that are not UTF-8 text.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except zipfile.BadZipFile:
        return "images_data_url is not a zip archive"
    images = [n for n in names if n.lower().endswith((".png", ".jpg", ".jpeg", ".webp"))]
    if len(images) < min_images:
        return f"at least {min_images} images are needed, got {len(images)}"
    for name in (n for n in names if n.lower().endswith(".txt")):
        try:
            archive.read(name).decode("utf-8")
        except UnicodeDecodeError:
            return f"caption {name} is not UTF-8 text"
    return None


class FakeFal(FakeProvider):
    name = "fal"

    def routes(self):
        app = r"(?P<owner>[\w-]+)/(?P<app>[\w.-]+)"
        return [
            ("POST", r"^/storage/upload/initiate$", "upload", self.initiate),
            ("PUT", r"^/upload/(?P<fid>[\w-]+)$", "upload", self.put_upload),
            *self.upload_routes(),
            *self.cdn_routes(),
            ("GET", rf"^/{app}/requests/(?P<id>[\w-]+)/status$", "status", self.status),
            ("PUT", rf"^/{app}/requests/(?P<id>[\w-]+)/cancel$", "cancel", self.cancel),
            ("GET", rf"^/{app}/requests/(?P<id>[\w-]+)$", "result", self.result),
            ("POST", rf"^/{app}(?P<sub>/[\w./-]+)?$", "submit", self.submit),
        ]

    def authorized(self, req: Request) -> bool:
        token = req.headers.get("authorization", "")
        if req.path.startswith("/upload/"):
            return True  # a presigned URL
        if not token.startswith("Key "):
            return False
        return bool(token[4:].strip()) if self.key is None else token == f"Key {self.key}"

    def error(self, status: int, message: str, *, kind: str = "") -> Response:
        return Response(status, {"detail": message})

    def policy_error(self) -> Response:
        return Response(422, {"detail": [{"loc": ["body", "prompt"], "type": "content_policy_violation",
                                          "msg": "The content could not be processed because it was flagged by a content checker."}]},
                        {"x-fal-error-type": "content_policy_violation", "x-fal-request-id": "fal-req-policy"})

    # -- storage --
    def initiate(self, req: Request) -> Response:
        body = req.json() or {}
        if not body.get("content_type") or not body.get("file_name"):
            return Response(422, {"detail": [{"loc": ["body"], "msg": "content_type and file_name required", "type": "missing"}]})
        fid = secrets.token_hex(8)
        self.files[fid] = (b"", body["content_type"])
        return Response(200, {"upload_url": f"{self.url}/upload/{fid}", "file_url": f"{self.url}/files/{fid}/{body['file_name']}"})

    def put_upload(self, req: Request) -> Response:
        fid = req.match["fid"]
        if fid not in self.files:
            return Response(404, {"detail": "unknown upload"})
        self.files[fid] = (req.body, req.headers.get("content-type", "application/octet-stream"))
        return Response(200, {})

    def file_bytes(self, url: str) -> bytes | None:
        if not url.startswith(f"{self.url}/files/"):
            return None
        fid = url[len(f"{self.url}/files/"):].split("/")[0]
        item = self.files.get(fid)
        return item[0] if item else None

    # -- queue --
    def submit(self, req: Request) -> Response:
        owner, app, sub = req.match["owner"], req.match["app"], req.match["sub"] or ""
        full = f"{owner}/{app}{sub}"
        body = req.json()
        if not isinstance(body, dict):
            return Response(422, {"detail": [{"loc": ["body"], "msg": "Input should be an object", "type": "dict_type"}]})
        if full == TRAINER:
            data = self.file_bytes(body.get("images_data_url", ""))
            problem = "images_data_url must point at an uploaded zip" if data is None else zip_problems(data, min_images=4)
            if problem:
                return Response(422, {"detail": [{"loc": ["body", "images_data_url"], "msg": problem, "type": "value_error"}]})
            if not body.get("trigger_word") or not isinstance(body.get("steps"), int):
                return Response(422, {"detail": [{"loc": ["body", "steps"], "msg": "steps and trigger_word required", "type": "missing"}]})
            kind = "training"
        elif "kling-video" in full:
            missing = [k for k in ("prompt", "image_url") if not body.get(k)] if "image-to-video" in full else \
                [k for k in ("prompt",) if not body.get(k)]
            if missing or body.get("duration", "5") not in ("5", "10"):
                return Response(422, {"detail": [{"loc": ["body", m], "msg": "Field required", "type": "missing"} for m in missing]
                                      or [{"loc": ["body", "duration"], "msg": "must be '5' or '10'", "type": "enum"}]})
            kind = "video"
        elif full.startswith("kling/v4/"):
            # Kling 4.0 on fal (https://fal.ai/learn/tools/kling-api, checked 2026-12-01): 3-30 s at 720p or
            # 1080p; the field names follow fal's other Kling endpoints (unverified for v4).
            need = ["prompt"] if full.endswith("text-to-video") else ["image_url"]
            bad = [k for k in need if not body.get(k)]
            if body.get("duration", "5") not in {str(n) for n in range(3, 31)}:
                bad.append("duration")
            if body.get("resolution", "720p") not in ("720p", "1080p"):
                bad.append("resolution")
            if full.endswith("text-to-video") and body.get("aspect_ratio", "16:9") not in ("16:9", "9:16", "1:1", "21:9"):
                bad.append("aspect_ratio")
            if bad:
                return Response(422, {"detail": [{"loc": ["body", k], "msg": "invalid value", "type": "value_error"}
                                                 for k in bad]})
            kind = "video"
        elif full == "fal-ai/stable-video":  # image_url required; motion_bucket_id 1-255; fps 1-25; no prompt
            bucket, fps = body.get("motion_bucket_id", 127), body.get("fps", 25)
            bad = [k for k, ok in (("image_url", bool(body.get("image_url"))),
                                   ("motion_bucket_id", isinstance(bucket, int) and 1 <= bucket <= 255),
                                   ("fps", isinstance(fps, int) and 1 <= fps <= 25)) if not ok]
            if bad:
                return Response(422, {"detail": [{"loc": ["body", k], "msg": "invalid value", "type": "value_error"}
                                                 for k in bad]})
            kind = "video"
        else:
            kind = "app"
        job = self.new_job(kind, body)
        job.extra["app"] = f"{owner}/{app}"
        base = f"{self.url}/{owner}/{app}/requests/{job.id}"
        return Response(200, {"request_id": job.id, "response_url": base, "status_url": base + "/status",
                              "cancel_url": base + "/cancel", "queue_position": 0},
                        {"x-fal-request-id": job.id})

    def _job(self, req: Request):
        job = self.jobs.get(req.match["id"])
        return job if job is not None and job.extra.get("app") == f"{req.match['owner']}/{req.match['app']}" else None

    def status(self, req: Request) -> Response:
        job = self._job(req)
        if job is None:
            return Response(404, {"detail": "Request not found"})
        phase, progress = job.phase()
        logs = [{"message": f"step {int(progress * 100)}%", "level": "INFO"}] if req.query.get("logs") == ["1"] else []
        base = f"{self.url}/{req.match['owner']}/{req.match['app']}/requests/{job.id}"
        if phase == "queued":
            return Response(202, {"status": "IN_QUEUE", "queue_position": 1, "response_url": base})
        if phase == "running":
            return Response(202, {"status": "IN_PROGRESS", "logs": logs, "response_url": base})
        out = {"status": "COMPLETED", "logs": logs, "metrics": {"inference_time": job.duration}, "response_url": base}
        if job.outcome == "policy":
            out.update(error="Output flagged by the content checker", error_type="content_policy_violation")
        elif job.outcome != "ok" or phase == "cancelled":
            out.update(error="Internal error while running the app", error_type="internal_server_error")
        return Response(200, out)

    def result(self, req: Request) -> Response:
        job = self._job(req)
        if job is None:
            return Response(404, {"detail": "Request not found"})
        if job.phase()[0] != "done":
            return Response(400, {"detail": "Request is still in progress"})
        if job.kind == "training":
            return Response(200, {"diffusers_lora_file": {"url": self.download_url(job, "pytorch_lora_weights.safetensors"),
                                                          "content_type": "application/octet-stream",
                                                          "file_name": "pytorch_lora_weights.safetensors",
                                                          "file_size": len(self.lora)},
                                  "config_file": {"url": self.download_url(job, "config.json"), "content_type": "application/json",
                                                  "file_name": "config.json", "file_size": 2}})
        if job.kind == "video":
            return Response(200, {"video": {"url": self.download_url(job), "content_type": "video/mp4",
                                            "file_name": "output.mp4", "file_size": len(self.video)}})
        return Response(200, {"echo": job.input, "seed": 42})

    def cancel(self, req: Request) -> Response:
        job = self._job(req)
        if job is None:
            return Response(404, {"detail": "Request not found"})
        job.cancelled = True
        return Response(202, {"status": "CANCELLATION_REQUESTED"})
