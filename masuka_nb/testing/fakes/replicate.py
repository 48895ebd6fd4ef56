"""Replicate: predictions, trainings (destination must exist), models, account and the files API.

Every answer is the full documented object (https://replicate.com/docs/reference/http, checked 2026-12-01);
`masuka_nb.testing.fakes.contracts` lists the fields and `tests/video/test_contracts.py` checks them.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from masuka_nb.testing.fakes.base import FakeProvider, Request, Response
from masuka_nb.testing.fakes.fal import zip_problems
from masuka_nb.testing.media import tar_with

TRAINER = "ostris/flux-dev-lora-trainer"
TRAINER_VERSION = "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497"


class FakeReplicate(FakeProvider):
    name = "replicate"
    username = "masuka-tester"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.models: set[str] = {TRAINER}
        self.visibility: dict[str, str] = {}

    def routes(self):
        return [
            ("GET", r"^/v1/account$", "get", self.account),
            ("POST", r"^/v1/files$", "upload", self.upload),
            *self.upload_routes(),
            *self.cdn_routes(),
            ("POST", r"^/v1/models$", "get", self.create_model),
            ("GET", r"^/v1/models/(?P<owner>[\w-]+)/(?P<name>[\w.-]+)$", "get", self.get_model),
            ("POST", r"^/v1/models/(?P<owner>[\w-]+)/(?P<name>[\w.-]+)/predictions$", "submit", self.predict),
            ("POST", r"^/v1/predictions$", "submit", self.predict),
            ("POST", r"^/v1/models/(?P<owner>[\w-]+)/(?P<name>[\w.-]+)/versions/(?P<version>\w+)/trainings$", "submit", self.train),
            ("GET", r"^/v1/(?P<coll>predictions|trainings)/(?P<id>[\w-]+)$", "status", self.status),
            ("POST", r"^/v1/(?P<coll>predictions|trainings)/(?P<id>[\w-]+)/cancel$", "cancel", self.cancel),
        ]

    def error(self, status: int, message: str, *, kind: str = "") -> Response:
        if status == 401:
            return Response(401, {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token",
                                  "status": 401})
        if status == 429:
            return Response(429, {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429})
        return Response(status, {"detail": message, "status": status})

    def policy_error(self) -> Response:
        return Response(422, {"title": "Input rejected", "detail": "The input was flagged as sensitive by the content policy (E005).",
                              "status": 422})

    def account(self, req: Request) -> Response:
        return Response(200, {"type": "user", "username": self.username, "name": "Tester",
                              "github_url": f"https://github.com/{self.username}"})

    def upload(self, req: Request) -> Response:
        parts = req.form().get("content")
        if not parts:
            return self.error(400, "multipart field `content` is required")
        name, data = parts[0]
        fid = secrets.token_hex(8)
        self.files[fid] = (data, "application/zip" if (name or "").endswith(".zip") else "application/octet-stream")
        ctype = self.files[fid][1]
        return Response(201, {"id": fid, "name": name or "file", "content_type": ctype, "size": len(data),
                              "etag": hashlib.md5(data).hexdigest(),
                              "checksums": {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()},
                              "metadata": {}, "created_at": _stamp(), "expires_at": _stamp(86400),
                              "urls": {"get": f"{self.url}/files/{fid}/{name or 'file'}"}})

    def create_model(self, req: Request) -> Response:
        body = req.json() or {}
        if not body.get("owner") or not body.get("name") or body.get("visibility") not in ("public", "private"):
            return self.error(400, "owner, name and visibility are required")
        self.models.add(f"{body['owner']}/{body['name']}")
        self.visibility[f"{body['owner']}/{body['name']}"] = body["visibility"]
        return Response(201, self._model(body["owner"], body["name"], with_version=False,
                                         description=body.get("description")))

    def _model(self, owner: str, name: str, *, with_version: bool, description: str | None = None) -> dict:
        full = f"{owner}/{name}"
        version = None
        if with_version:
            version = {"id": TRAINER_VERSION if full == TRAINER else hashlib.sha256(full.encode()).hexdigest(),
                       "created_at": "2026-11-01T00:00:00.000000Z", "cog_version": "0.14.0",
                       "openapi_schema": {"openapi": "3.0.2", "components": {"schemas": {"Input": {"type": "object"}}}}}
        return {"url": f"https://replicate.com/{full}", "owner": owner, "name": name, "description": description,
                "visibility": self.visibility.get(full, "public"), "github_url": None, "paper_url": None,
                "license_url": None, "run_count": 0 if full != TRAINER else 123456, "cover_image_url": None,
                "default_example": None, "latest_version": version}

    def get_model(self, req: Request) -> Response:
        full = f"{req.match['owner']}/{req.match['name']}"
        if full not in self.models:
            return self.error(404, "Not found.")
        return Response(200, self._model(req.match["owner"], req.match["name"], with_version=True))

    def _prediction(self, job, coll: str) -> dict:
        phase, progress = job.phase()
        status = {"queued": "starting", "running": "processing", "done": "succeeded", "cancelled": "canceled"}[phase]
        out = {"id": job.id, "model": job.extra.get("model", ""), "version": job.extra.get("version", ""),
               "input": job.input, "logs": f"flux_train_replicate: {int(progress * 100)}%|##" if phase != "queued" else "",
               "error": None, "status": status, "created_at": "2026-11-25T00:00:00.000000Z", "output": None,
               "started_at": "2026-11-25T00:00:01.000000Z" if phase != "queued" else None, "completed_at": None,
               "metrics": None,
               "urls": {"get": f"{self.url}/v1/{coll}/{job.id}", "cancel": f"{self.url}/v1/{coll}/{job.id}/cancel",
                        "web": f"https://replicate.com/p/{job.id}"}}
        if coll == "predictions":
            out["data_removed"] = False
        if phase == "done" and job.outcome != "ok":
            out.update(status="failed", error="NSFW content detected. Try a different prompt." if job.outcome == "policy"
                       else "CUDA error: an illegal memory access was encountered")
        elif phase == "done":
            out["completed_at"] = "2026-11-25T00:00:10.000000Z"
            out["metrics"] = {"predict_time": job.duration, "total_time": job.duration + 1.0}
            if coll == "trainings":
                out["output"] = {"version": f"{job.extra['destination']}:{secrets.token_hex(32)}",
                                 "weights": self.download_url(job, "trained_model.tar")}
            else:
                out["output"] = self.download_url(job)
        return out

    def predict(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return self.error(422, "- input: Invalid type. Expected: object")
        model = f"{req.match['owner']}/{req.match['name']}" if req.match.groupdict().get("owner") else ""
        if not model and not body.get("version"):
            return self.error(422, "version is required")
        job = self.new_job("prediction", body["input"])
        job.extra.update(model=model, version=body.get("version", ""))
        return Response(201, self._prediction(job, "predictions"))

    def train(self, req: Request) -> Response:
        full = f"{req.match['owner']}/{req.match['name']}"
        if full != TRAINER or req.match["version"] != TRAINER_VERSION:
            return self.error(404, "The requested model version does not exist")
        body = req.json() or {}
        if body.get("destination") not in self.models:
            return Response(404, {"detail": "The specified training destination does not exist", "status": 404})
        inp = body.get("input") or {}
        url = inp.get("input_images", "")
        fid = url[len(f"{self.url}/files/"):].split("/")[0] if url.startswith(f"{self.url}/files/") else ""
        data = self.files.get(fid, (None,))[0]
        problem = "input_images must be an uploaded zip" if data is None else zip_problems(data, min_images=1)
        if problem or not (3 <= int(inp.get("steps", 1000)) <= 6000):
            return self.error(422, f"- input.input_images: {problem}" if problem else "- input.steps: out of range")
        job = self.new_job("training", inp)
        job.extra.update(model=full, version=TRAINER_VERSION, destination=body["destination"],
                         tar=tar_with({"output/flux_train_replicate/lora.safetensors": self.lora,
                                       "output/flux_train_replicate/config.yaml": b"steps: 1\n"}))
        return Response(201, self._prediction(job, "trainings"))

    def status(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        coll = req.match["coll"]
        if job is None or (coll == "trainings") != (job.kind == "training"):
            return self.error(404, "Not found.")
        return Response(200, self._prediction(job, coll))

    def cancel(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        if job is None:
            return self.error(404, "Not found.")
        job.cancelled = True
        return Response(200, self._prediction(job, req.match["coll"]))




def _stamp(offset: float = 0.0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() + offset))
