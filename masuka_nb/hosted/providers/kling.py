"""Kling's official API (base ends in /v1): HS256 JWT from the access/secret key pair, sent as Bearer.

The JWT is made with the standard library (no PyJWT): header {alg: HS256, typ: JWT}, payload
{iss: access_key, exp: now + 1800, nbf: now - 5}. A fresh token goes with each request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from masuka_nb.errors import JobFailedError, ProviderRejectedContentError
from masuka_nb.hosted.http import is_policy
from masuka_nb.hosted.providers.base import MP4_TYPES, Provider
from masuka_nb.hosted.store import Download, JobRecord, Poll
from masuka_nb.secrets import register_secret

_STATES = {"submitted": "queued", "processing": "running", "succeed": "succeeded", "failed": "failed"}
IMAGE_LIMIT = 10 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def kling_jwt(access_key: str, secret_key: str, *, now: float | None = None, ttl: int = 1800) -> str:
    now = int(time.time() if now is None else now)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps({"iss": access_key, "exp": now + ttl, "nbf": now - 5}, separators=(",", ":")).encode())
    signing = f"{header}.{payload}".encode()
    sig = _b64(hmac.new(secret_key.encode(), signing, hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}"


class KlingProvider(Provider):
    name = "kling"
    key_names = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")
    default_base_url = "https://api.klingai.com/v1"
    default_poll_interval = 5.0

    def __init__(self, *, base_url: str | None = None, key: str | None = None) -> None:
        if key and ":" in key:  # "access:secret" in one string (the simulator's --key)
            self._pair = tuple(key.split(":", 1))
            key = None
        super().__init__(base_url=base_url, key=key)

    def auth_headers(self) -> dict[str, str]:
        if not hasattr(self, "_pair"):
            self._pair = (self._keys[0], self._keys[1] if len(self._keys) > 1 else self._keys[0])
        return {}

    def fresh_auth(self) -> dict[str, str]:
        token = kling_jwt(*self._pair)
        register_secret(token)  # a token is as good as the key for 30 minutes
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def _check(provider: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise JobFailedError(f"{provider} answered {str(body)[:100]!r}", provider=provider)
        if body.get("code", 0) != 0:
            reason = str(body.get("message", ""))
            cls = ProviderRejectedContentError if is_policy(reason) else JobFailedError
            raise cls(f"{provider} refused: {reason} (code {body.get('code')}, request id {body.get('request_id')})",
                      provider=provider, request_id=body.get("request_id"))
        return body.get("data") or {}

    def submit_video(self, record: JobRecord, plan: Any, image: Any) -> None:
        kind = "image2video" if image is not None else "text2video"
        body: dict[str, Any] = {"model_name": plan.route.model, "prompt": record.prompt, "mode": plan.route.mode or "std",
                                "aspect_ratio": plan.size, "duration": str(plan.seconds), "external_task_id": record.id}
        if image is not None:
            body["image"] = image.raw_base64(IMAGE_LIMIT)  # Kling takes a URL or bare base64 (no data: prefix)
        answer = self.client.json("POST", f"/videos/{kind}", op="submit", json=body)
        self._check(self.name, answer)
        # `request_id` names the HTTP request, never the task: it must not be taken for the job id
        record.provider_job_id = self.accepted_id(record, answer, path=("data", "task_id"))
        record.extra["endpoint"] = kind

    create_id_path = ("data", "task_id")

    def adopted(self, record: JobRecord, body: Any, entry: dict[str, Any]) -> None:
        record.extra["endpoint"] = "image2video" if "/image2video" in str(entry.get("url")) else "text2video"

    def poll(self, record: JobRecord) -> Poll:
        kind = record.extra.get("endpoint", "text2video")
        data = self._check(self.name, self.client.json("GET", f"/videos/{kind}/{record.provider_job_id}", op="poll"))
        status = str(data.get("task_status", ""))
        state = _STATES.get(status, "running")
        err = None
        if state == "failed":
            reason = str(data.get("task_status_msg") or "no reason given")
            err = self.job_failed(record, reason, what="task")
        videos = (data.get("task_result") or {}).get("videos") or []
        return Poll(state=state, message=status, outputs={"urls": [v.get("url") for v in videos if v.get("url")]},
                    error=err, wait=self.asked_wait())

    def downloads(self, record: JobRecord) -> list[Download]:
        urls = record.outputs.get("urls") or []
        return [Download("video", urls[0], ".mp4", MP4_TYPES)] if urls else []
