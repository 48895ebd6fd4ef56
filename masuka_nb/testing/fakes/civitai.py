"""Civitai's public REST API on loopback: model versions, by-hash, models, and the download redirect.

Contract (read 2026-12-05):
- https://developer.civitai.com/site/reference/model-versions — ``GET /api/v1/model-versions/{id}`` and
  ``/by-hash/{hash}`` (AutoV1, AutoV2, AutoV3, SHA256, CRC32 or BLAKE3; case-insensitive), the version JSON
  (id, modelId, name, baseModel, air, availability, trainedWords, earlyAccessEndsAt, model {name, type},
  files [{name, type, sizeKB, hashes, downloadUrl, primary}], downloadUrl); 404 when unknown.
- https://developer.civitai.com/site/reference/models — ``GET /api/v1/models`` (limit, page, query, types,
  baseModels; ``{"items": [...], "metadata": {...}}``) and ``/api/v1/models/{id}``.
- https://developer.civitai.com/site/guide/authentication — a Bearer token (or ``?token=``); a bad one gets
  401 ``{"error": "Unauthorized"}``.
- https://education.civitai.com/civitais-guide-to-downloading-via-api/ — ``/api/download/models/{versionId}``
  redirects to a pre-signed URL; the file name is in ``Content-Disposition``.
- github.com/civitai/civitai src/pages/api/download/models/[modelVersionId].ts — without a login, a JSON request
  gets 401 ``{"error": "Unauthorized"}`` (others are redirected to /login); an early-access file gets 403
  ``{"error": "Early Access", "deadline": …}`` (others are redirected to the membership page).

The pre-signed URL points at ``localhost`` while the API answers on ``127.0.0.1``: a different origin, as the
real CDN is, so a client that leaks its token to the CDN shows up in `cdn_auth_seen`.

    with FakeCivitai(key="tok").start() as civ:
        v = civ.add_version(model_name="Pixel Style", file_name="pixel.safetensors", data=lora_bytes,
                            base_model="Flux.1 D", trained_words=["pxl"])
        civ.inject("get", status=429, headers={"Retry-After": "0"})
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from masuka_nb.testing.fakes.base import FakeProvider, Request, Response

__all__ = ["FakeCivitai", "FakeVersion", "civitai_hashes"]

# Civitai's baseModel → the AIR ecosystem (developer.civitai.com/site/guide/air: sd15, sdxl, sd3, flux1, other, …)
_ECOSYSTEM = {"Flux.1 D": "flux1", "Flux.1 S": "flux1", "Flux.1 Krea": "flux1", "Flux.1 Kontext": "flux1",
              "SD 3.5": "sd3", "SD 3.5 Large": "sd3", "SD 3.5 Medium": "sd3", "SD 3.5 Large Turbo": "sd3",
              "SDXL 1.0": "sdxl", "SD 1.5": "sd1", "Flux.2 Klein 4B": "flux2", "Flux.2 D": "flux2"}
_AIR_TYPE = {"LORA": "lora", "Checkpoint": "checkpoint", "TextualInversion": "embedding", "VAE": "vae"}


def civitai_hashes(data: bytes) -> dict[str, str]:
    """The hashes Civitai lists for a file (BLAKE3 left out: the standard library has no BLAKE3).

    AutoV1: A1111's old hash (SHA-256 of 64 KiB at offset 1 MiB, 8 hex); AutoV2: SHA-256, 10 hex; AutoV3: the
    SHA-256 of a .safetensors file's tensor bytes (after its header, the "addnet" hash kohya writes as
    sshs_model_hash), 12 hex (github.com/kohya-ss/sd-scripts library/train_util.py)."""
    full = hashlib.sha256(data).hexdigest().upper()
    header = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
    addnet = hashlib.sha256(data[8 + header:]).hexdigest().upper()
    return {"AutoV1": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8].upper(), "AutoV2": full[:10],
            "SHA256": full, "CRC32": f"{zlib.crc32(data):08X}", "AutoV3": addnet[:12]}


@dataclass
class FakeVersion:
    version_id: int
    model_id: int
    model_name: str
    version_name: str
    file_name: str
    data: bytes
    base_model: str = "Flux.1 D"
    model_type: str = "LORA"
    trained_words: list[str] = field(default_factory=list)
    login_required: bool = False
    early_access_until: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime(2026, 11, 1, tzinfo=timezone.utc))

    @property
    def hashes(self) -> dict[str, str]:
        return civitai_hashes(self.data)

    @property
    def air(self) -> str:
        eco = _ECOSYSTEM.get(self.base_model, "other")
        return f"urn:air:{eco}:{_AIR_TYPE.get(self.model_type, 'other')}:civitai:{self.model_id}@{self.version_id}"


class FakeCivitai(FakeProvider):
    name = "civitai"

    def __init__(self, *, key: str | None = None, member_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(key=key, **kwargs)
        self.member_key = member_key  # a token whose user may download early-access files
        self.versions: dict[int, FakeVersion] = {}
        self.cdn_auth_seen: list[bool] = []
        self._next_model, self._next_version = 100_000, 2_000_000

    def routes(self):
        return [
            ("GET", r"^/api/v1/model-versions/by-hash/(?P<hash>[\w]+)$", "get", self.by_hash),
            ("GET", r"^/api/v1/model-versions/(?P<id>\d+)$", "get", self.version),
            ("GET", r"^/api/v1/models/(?P<id>\d+)$", "get", self.model),
            ("GET", r"^/api/v1/models$", "get", self.models),
            ("GET", r"^/api/download/models/(?P<id>\d+)$", "redirect", self.download),
            ("GET", r"^/cdn-signed/(?P<id>\d+)/(?P<name>[^/]+)$", "download", self.cdn),
            ("GET", r"^/login$", "page", self.page),
            ("GET", r"^/pricing$", "page", self.page),
        ]

    # ---- registering content ----
    def add_version(self, *, model_name: str, file_name: str, data: bytes, version_name: str = "v1.0",
                    model_id: int | None = None, version_id: int | None = None, **extra: Any) -> FakeVersion:
        if model_id is None:
            same = [v.model_id for v in self.versions.values() if v.model_name == model_name]
            model_id = same[0] if same else self._take("model")
        v = FakeVersion(version_id or self._take("version"), model_id, model_name, version_name, file_name, data,
                        **extra)
        self.versions[v.version_id] = v
        return v

    def _take(self, what: str) -> int:
        if what == "model":
            self._next_model += 1
            return self._next_model
        self._next_version += 1
        return self._next_version

    # ---- auth: every route is public, but a token that is sent must be a known one ----
    def authorized(self, req: Request) -> bool:
        token = self._token(req)
        return token is None or self.key is None or token in (self.key, self.member_key)

    def _token(self, req: Request) -> str | None:
        header = req.headers.get("authorization", "")
        if header.startswith("Bearer "):
            return header.removeprefix("Bearer ").strip() or None
        return (req.query.get("token") or [None])[0]

    def error(self, status: int, message: str, *, kind: str = "") -> Response:
        return Response(status, {"error": message})

    # ---- the API ----
    def version_json(self, v: FakeVersion) -> dict[str, Any]:
        stamp = v.created_at.isoformat().replace("+00:00", "Z")
        early = v.early_access_until is not None and v.early_access_until > datetime.now(timezone.utc)
        return {
            "id": v.version_id, "modelId": v.model_id, "name": v.version_name, "description": None,
            "baseModel": v.base_model, "baseModelType": "Standard", "air": v.air, "status": "Published",
            "availability": "EarlyAccess" if early else "Public", "nsfwLevel": 1,
            "createdAt": stamp, "updatedAt": stamp, "publishedAt": stamp, "uploadType": "Created",
            "usageControl": "Download", "trainedWords": list(v.trained_words),
            "earlyAccessConfig": {"timeframe": 7} if early else None,
            "earlyAccessEndsAt": v.early_access_until.isoformat().replace("+00:00", "Z") if early else None,
            "trainingStatus": None, "trainingDetails": None,
            "stats": {"downloadCount": 0, "thumbsUpCount": 0, "thumbsDownCount": 0},
            "model": {"name": v.model_name, "type": v.model_type, "nsfw": False, "poi": False},
            "files": [{"id": v.version_id + 7, "name": v.file_name, "type": "Model", "sizeKB": len(v.data) / 1024,
                       "metadata": {"format": "SafeTensor", "size": None, "fp": None},
                       "pickleScanResult": "Success", "virusScanResult": "Success", "hashes": v.hashes,
                       "downloadUrl": f"{self.url}/api/download/models/{v.version_id}", "primary": True}],
            "images": [], "downloadUrl": f"{self.url}/api/download/models/{v.version_id}",
        }

    def model_json(self, model_id: int) -> dict[str, Any] | None:
        versions = sorted((v for v in self.versions.values() if v.model_id == model_id), key=lambda v: -v.version_id)
        if not versions:
            return None
        first = versions[0]
        return {"id": model_id, "name": first.model_name, "description": "<p>A test resource.</p>",
                "type": first.model_type, "poi": False, "nsfw": False, "mode": None, "allowNoCredit": True,
                "allowCommercialUse": ["Image"], "allowDerivatives": True, "allowDifferentLicense": True,
                "stats": {"downloadCount": 0, "favoriteCount": 0, "thumbsUpCount": 0, "thumbsDownCount": 0,
                          "commentCount": 0, "ratingCount": 0, "rating": 0},
                "creator": {"username": "masuka-test", "image": None}, "tags": ["style"],
                "modelVersions": [{k: val for k, val in self.version_json(v).items() if k != "model"}
                                  for v in versions]}

    def version(self, req: Request) -> Response:
        v = self.versions.get(int(req.match["id"]))
        if v is None:
            return self.error(404, f"No model version with id {req.match['id']}")
        return Response(200, self.version_json(v))

    def by_hash(self, req: Request) -> Response:
        wanted = req.match["hash"].upper()
        for v in self.versions.values():
            if wanted in v.hashes.values():
                return Response(200, self.version_json(v))
        return self.error(404, "Model not found")

    def model(self, req: Request) -> Response:
        body = self.model_json(int(req.match["id"]))
        return Response(200, body) if body else self.error(404, f"No model with id {req.match['id']}")

    def models(self, req: Request) -> Response:
        q = {k: v[0] for k, v in req.query.items()}
        limit, page = int(q.get("limit", 100)), int(q.get("page", 1))
        if not 1 <= limit <= 100:
            return self.error(400, "limit must be between 1 and 100")
        ids = sorted({v.model_id for v in self.versions.values()})
        items = [m for m in (self.model_json(i) for i in ids) if m]
        if q.get("query"):
            items = [m for m in items if q["query"].lower() in m["name"].lower()]
        if q.get("types"):
            items = [m for m in items if m["type"] in q["types"].split(",")]
        if q.get("baseModels"):
            wanted = set(q["baseModels"].split(","))
            items = [m for m in items if any(mv["baseModel"] in wanted for mv in m["modelVersions"])]
        total = len(items)
        pages = max(1, -(-total // limit))
        chunk = items[(page - 1) * limit: page * limit]
        meta: dict[str, Any] = {"totalItems": total, "currentPage": page, "pageSize": limit, "totalPages": pages}
        if page < pages:
            meta["nextPage"] = f"{self.url}/api/v1/models?limit={limit}&page={page + 1}"
        return Response(200, {"items": chunk, "metadata": meta})

    def download(self, req: Request) -> Response:
        v = self.versions.get(int(req.match["id"]))
        if v is None:
            return self.error(404, "Model not found")
        token = self._token(req)
        wants_json = req.headers.get("content-type", "").startswith("application/json")
        if v.login_required and token is None:
            if wants_json:
                return self.error(401, "Unauthorized")
            return Response(307, b"", {"Location": f"{self.url}/login?returnUrl=/models/{v.model_id}"}, "text/plain")
        early = v.early_access_until is not None and v.early_access_until > datetime.now(timezone.utc)
        if early and token != self.member_key:
            if wants_json:
                return Response(403, {"error": "Early Access",
                                      "deadline": v.early_access_until.isoformat().replace("+00:00", "Z")})
            return Response(307, b"", {"Location": f"{self.url}/pricing?returnUrl=/models/{v.model_id}"},
                            "text/plain")
        expires = int((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp())
        signed = (f"http://localhost:{self.port}/cdn-signed/{v.version_id}/{quote(v.file_name)}"
                  f"?X-Amz-Expires=3600&X-Amz-Date={expires}&X-Amz-Signature={secrets.token_hex(16)}")
        return Response(307, b"", {"Location": signed}, "text/plain")

    def cdn(self, req: Request) -> Response:
        self.cdn_auth_seen.append("authorization" in req.headers)
        v = self.versions.get(int(req.match["id"]))
        if v is None:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml")
        return Response(200, v.data, {"Content-Disposition": f'attachment; filename="{v.file_name}"'},
                        "application/octet-stream")

    def page(self, req: Request) -> Response:
        return Response(200, b"<!DOCTYPE html><html><body>Log in to Civitai</body></html>",
                        content_type="text/html; charset=utf-8")
