"""Civitai as a source of LoRAs: ids, AIRs and civitai.com URLs to files in the LoRA library.

    fetch_lora("civitai:2514310")                                   # a model version id
    fetch_lora("urn:air:flux1:lora:civitai:827184@2514310")          # an AIR
    fetch_lora("https://civitai.com/models/827184?modelVersionId=2514310")
    CivitaiClient().by_hash("A5F58EB1C336")                         # AutoV1/V2/V3, SHA256, CRC32, BLAKE3

API facts (read 2026-12-05): https://developer.civitai.com/site/reference/model-versions (version JSON, by-hash),
https://developer.civitai.com/site/reference/models, https://developer.civitai.com/site/guide/authentication
(Bearer token), https://developer.civitai.com/site/guide/air (``urn:air:{ecosystem}:{type}:{source}:{id}@{version}``),
https://education.civitai.com/civitais-guide-to-downloading-via-api/ (the download redirects to a pre-signed URL),
github.com/civitai/civitai src/pages/api/download/models/[modelVersionId].ts (a JSON request without login gets
401, an early-access file 403 ``{"error": "Early Access", "deadline"}``; other requests are sent to a login page).

The token comes from Colab Secrets or the environment (`CIVITAI_API_TOKEN`), is registered with the redactor,
goes only to Civitai's own host as a header (never in a URL), and never to the CDN the download redirects to.
Bytes go through the one downloader (`hosted.download`): resumable, size-capped, checked against the API's SHA256.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from masuka_nb.config import settings
from masuka_nb.errors import (
    InvalidRequestError,
    MasukaError,
    ModelFilesMissingError,
    ModelNotFoundError,
    ProviderAuthError,
    ProviderBadResponseError,
    ProviderUnavailableError,
)
from masuka_nb.hosted.download import download
from masuka_nb.hosted.http import ProviderClient
from masuka_nb.hosted.providers.base import base_url_for
from masuka_nb.log import get_logger
from masuka_nb.models.matching import match_model
from masuka_nb.secrets import get_secret
from masuka_nb.storage import atomic_write_json, ensure_dir, read_json_guarded, safe_name

__all__ = ["CIVITAI_URL", "TOKEN_NAME", "CivitaiClient", "CivitaiFile", "CivitaiRef", "CivitaiVersion",
           "fetch_lora", "find_in_library", "is_civitai_source", "parse_civitai_source"]

log = get_logger(__name__)

CIVITAI_URL = "https://civitai.com"
TOKEN_NAME = "CIVITAI_API_TOKEN"
MAX_LORA_BYTES = 4 * 1024**3
_AIR = re.compile(r"^(?:urn:)?(?:air:)?(?:[\w.-]+:)?(?:[\w.-]+:)?civitai:(?P<model>\d+)(?:@(?P<version>\d+))?"
                  r"(?:\+\d+)?(?:\.[\w]+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class CivitaiRef:
    """What a source names: a model (its latest version) and/or one version."""

    model_id: int | None = None
    version_id: int | None = None


def _base_host() -> str:
    return urlsplit(base_url_for("civitai", CIVITAI_URL)).netloc


def parse_civitai_source(text: str) -> CivitaiRef | None:
    """`civitai:<versionId>`, `civitai:<modelId>@<versionId>`, an AIR, or a civitai.com model/download URL."""
    text = str(text).strip()
    low = text.lower()
    if low.startswith("civitai:"):
        rest = text.split(":", 1)[1]
        m = re.fullmatch(r"(\d+)@(\d+)", rest)
        if m:
            return CivitaiRef(int(m.group(1)), int(m.group(2)))
        return CivitaiRef(version_id=int(rest)) if rest.isdigit() else None
    m = _AIR.match(text)
    if m and ("air:" in low or low.count(":") >= 3):
        return CivitaiRef(int(m["model"]), int(m["version"]) if m["version"] else None)
    if low.startswith(("http://", "https://")):
        parts = urlsplit(text)
        host = parts.netloc.lower()
        if not (host == "civitai.com" or host.endswith(".civitai.com") or host == _base_host()):
            return None
        query = parse_qs(parts.query)
        version = (query.get("modelVersionId") or [None])[0]
        m = re.match(r"^/api/download/models/(\d+)", parts.path)
        if m:
            return CivitaiRef(version_id=int(m.group(1)))
        m = re.match(r"^/(?:api/v1/)?model-versions/(\d+)", parts.path)
        if m:
            return CivitaiRef(version_id=int(m.group(1)))
        m = re.match(r"^/(?:api/v1/)?models/(\d+)", parts.path)
        if m:
            return CivitaiRef(int(m.group(1)), int(version) if version and version.isdigit() else None)
    return None


def is_civitai_source(text: Any) -> bool:
    return isinstance(text, str) and parse_civitai_source(text) is not None


@dataclass
class CivitaiFile:
    name: str
    size_bytes: int
    sha256: str | None
    hashes: dict[str, str]
    download_url: str
    primary: bool
    type: str


@dataclass
class CivitaiVersion:
    id: int
    model_id: int
    name: str
    model_name: str
    model_type: str
    base_model: str
    trained_words: list[str]
    air: str
    download_url: str
    availability: str = "Public"
    early_access_ends_at: str | None = None
    files: list[CivitaiFile] = field(default_factory=list)

    @property
    def primary_file(self) -> CivitaiFile | None:
        models = [f for f in self.files if f.type == "Model"] or self.files
        return next((f for f in models if f.primary), models[0] if models else None)

    @property
    def page(self) -> str:
        return f"{CIVITAI_URL}/models/{self.model_id}?modelVersionId={self.id}"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CivitaiVersion:
        model = d.get("model") or {}
        files = [CivitaiFile(str(f.get("name")), int(float(f.get("sizeKB") or 0) * 1024),
                             ((f.get("hashes") or {}).get("SHA256") or "").lower() or None, dict(f.get("hashes") or {}),
                             str(f.get("downloadUrl") or d.get("downloadUrl") or ""), bool(f.get("primary")),
                             str(f.get("type") or "Model")) for f in d.get("files") or []]
        return cls(int(d["id"]), int(d.get("modelId") or 0), str(d.get("name") or ""), str(model.get("name") or ""),
                   str(model.get("type") or ""), str(d.get("baseModel") or ""), list(d.get("trainedWords") or []),
                   str(d.get("air") or ""), str(d.get("downloadUrl") or ""), str(d.get("availability") or "Public"),
                   d.get("earlyAccessEndsAt"), files)


class CivitaiClient:
    """Civitai's public REST API over real HTTP (retries honour Retry-After; errors are MasukaErrors)."""

    def __init__(self, *, base_url: str | None = None, token: str | None = None) -> None:
        self.base_url = (base_url or base_url_for("civitai", CIVITAI_URL)).rstrip("/")
        self.token = token if token is not None else get_secret(TOKEN_NAME, required=False)
        if self.token:
            from masuka_nb.secrets import register_secret

            register_secret(self.token)  # a token passed by hand is blanked out of errors and logs too
        headers = {"Content-Type": "application/json"}  # Civitai answers JSON errors (not a login page) to these
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.client = ProviderClient("civitai", self.base_url, headers=headers)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> CivitaiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, *, what: str, **params: Any) -> Any:
        try:
            return self.client.json("GET", path, op="get", params={k: v for k, v in params.items() if v is not None})
        except ProviderUnavailableError as exc:
            if exc.details.get("status") == 404:
                raise ModelNotFoundError(f"Civitai has no {what}.", argument="loras", value=what,
                                         hint="Check the id or URL on civitai.com; the creator may have removed it.",
                                         status=404) from exc
            raise

    def version(self, version_id: int) -> CivitaiVersion:
        return CivitaiVersion.from_json(self._get(f"/api/v1/model-versions/{int(version_id)}",
                                                  what=f"model version {version_id}"))

    def by_hash(self, file_hash: str) -> CivitaiVersion | None:
        """The version whose file has this hash, or None when Civitai does not know it."""
        try:
            return CivitaiVersion.from_json(self._get(f"/api/v1/model-versions/by-hash/{file_hash.strip()}",
                                                      what=f"file with hash {file_hash}"))
        except ModelNotFoundError:
            return None

    def model(self, model_id: int) -> dict[str, Any]:
        return self._get(f"/api/v1/models/{int(model_id)}", what=f"model {model_id}")

    def search(self, query: str | None = None, *, types: str | None = "LORA", base_models: str | None = None,
               limit: int = 20) -> list[dict[str, Any]]:
        body = self._get("/api/v1/models", what="models", query=query, types=types, baseModels=base_models,
                         limit=limit)
        return list(body.get("items") or [])

    def resolve(self, ref: CivitaiRef) -> CivitaiVersion:
        if ref.version_id is not None:
            return self.version(ref.version_id)
        versions = self.model(int(ref.model_id)).get("modelVersions") or []
        if not versions:
            raise ModelNotFoundError(f"Civitai model {ref.model_id} has no published version.", argument="loras",
                                     value=ref.model_id, hint="Pick a version on the model's page.")
        return self.version(int(versions[0]["id"]))

    def signed_url(self, version: CivitaiVersion) -> str:
        """Where the file really is: the pre-signed URL Civitai's download route redirects to."""
        route = f"/api/download/models/{version.id}"
        try:
            self.client.send("GET", route, op="get", expect_json=False)
        except ProviderBadResponseError as exc:
            location = self.client.last_headers.get("location")
            if exc.details.get("status") in (301, 302, 303, 307, 308) and location:
                if "/login" in location or "/pricing" in location:
                    raise self._login_error(version) from exc
                return location
            raise
        except ProviderAuthError as exc:
            if exc.details.get("status") == 403 or "early access" in exc.message.lower():
                until = version.early_access_ends_at or "the end of its early-access period"
                raise ProviderAuthError(
                    f"`{version.model_name}` ({version.name}) is in Civitai Early Access until {until}: only "
                    "supporters can download it now.", argument="loras", value=f"civitai:{version.id}",
                    hint=f"Wait until then, or unlock it on {version.page} and use that account's token "
                         f"({TOKEN_NAME}).", provider="civitai", status=403, code="CIVITAI_EARLY_ACCESS") from exc
            raise self._login_error(version, refused=bool(self.token)) from exc
        raise ProviderBadResponseError(f"Civitai's download route for {version.id} answered without a file.",
                                       provider="civitai", hint="Try again later.")

    def _login_error(self, version: CivitaiVersion, *, refused: bool = False) -> ProviderAuthError:
        if refused:
            return ProviderAuthError("Civitai refused the API token.", argument=TOKEN_NAME, value="(hidden)",
                                     hint=f"Make a new key in civitai.com › Account settings › API keys and store it "
                                          f"as {TOKEN_NAME} in Colab Secrets.", provider="civitai", status=401)
        return ProviderAuthError(
            f"The creator of `{version.model_name}` requires a Civitai login to download it.", argument=TOKEN_NAME,
            value=None, provider="civitai", status=401,
            hint=f"Make an API key in civitai.com › Account settings › API keys and store it as {TOKEN_NAME} in "
                 "Colab Secrets (key icon, notebook access on), or as an environment variable.")


# ---------------------------------------------------------------------------------------------------
# into the LoRA library

def find_in_library(*, version_id: int | None = None, sha256: str | None = None) -> Path | None:
    """The weight file of a library LoRA that came from this Civitai version (or has this SHA-256)."""
    root = settings().loras_dir
    if not root.is_dir():
        return None
    for meta_file in sorted(root.glob("*/masuka_lora.json")):
        meta = read_json_guarded(meta_file, default={}, expect=dict) or {}
        civ = meta.get("civitai") or {}
        if (version_id is not None and civ.get("version_id") == version_id) or \
                (sha256 and str(civ.get("sha256") or meta.get("sha256") or "").lower() == sha256.lower()):
            weight = meta_file.parent / str(civ.get("file") or meta.get("file") or "")
            if weight.is_file():
                return weight
    return None


def fetch_lora(source: str | CivitaiRef | CivitaiVersion, *, client: CivitaiClient | None = None,
               max_bytes: int = MAX_LORA_BYTES) -> Path:
    """The local file of a Civitai LoRA, downloaded once into the library with its page's name, trigger words
    and base model (``masuka_lora.json``); later calls (and offline sessions) use that copy."""
    ref = source if isinstance(source, (CivitaiRef, CivitaiVersion)) else parse_civitai_source(str(source))
    if ref is None:
        raise InvalidRequestError(f"`{source}` is not a Civitai id, AIR or URL.", argument="loras", value=source,
                                  hint="e.g. civitai:2514310, urn:air:flux1:lora:civitai:827184@2514310 or "
                                       "https://civitai.com/models/827184?modelVersionId=2514310")
    known = find_in_library(version_id=ref.id if isinstance(ref, CivitaiVersion) else ref.version_id)
    if known is not None:
        return known
    if settings().offline:
        raise ModelFilesMissingError(f"The Civitai LoRA {source} is not in the library and MASUKA is offline.",
                                     argument="loras", value=str(source), hint="Go online once to download it.")
    own = client is None
    client = client or CivitaiClient()
    try:
        version = ref if isinstance(ref, CivitaiVersion) else client.resolve(ref)
        known = find_in_library(version_id=version.id)
        return known if known is not None else _download(client, version, max_bytes)
    finally:
        if own:
            client.close()


def _download(client: CivitaiClient, version: CivitaiVersion, max_bytes: int) -> Path:
    if version.model_type and version.model_type.upper() not in ("LORA", "LOCON", "DORA", "LYCORIS"):
        raise InvalidRequestError(f"Civitai's `{version.model_name}` is a {version.model_type}, not a LoRA.",
                                  argument="loras", value=f"civitai:{version.id}",
                                  hint="Give a LoRA's id, AIR or page URL.")
    file = version.primary_file
    if file is None:
        raise ModelFilesMissingError(f"Civitai's `{version.model_name}` ({version.name}) lists no file.",
                                     argument="loras", value=f"civitai:{version.id}", hint=f"See {version.page}.")
    if file.size_bytes > max_bytes:
        raise InvalidRequestError(f"`{file.name}` is {file.size_bytes} bytes, above the limit of {max_bytes}.",
                                  argument="loras", value=f"civitai:{version.id}",
                                  hint="This is larger than any LoRA; check it is the file you meant.")
    folder = _library_folder(version, safe_name)
    target = folder / Path(file.name).name
    try:
        url = client.signed_url(version)
        download(url, target, max_bytes=max_bytes, argument="loras", sha256=file.sha256,
                 content_types=("application/", "binary/"))
    except MasukaError:
        log.info("civitai.download_failed", version=version.id)
        raise
    match = match_model(version.base_model)
    atomic_write_json(folder / "masuka_lora.json", {
        "name": folder.name, "title": version.model_name, "base_model": match.model,
        "trigger_word": version.trained_words[0] if version.trained_words else None,
        "trigger_words": version.trained_words, "source": "civitai", "file": target.name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "civitai": {"model_id": version.model_id, "version_id": version.id, "version_name": version.name,
                    "air": version.air, "base_model": version.base_model, "page": version.page,
                    "file": target.name, "sha256": file.sha256},
    })
    log.info("civitai.downloaded", version=version.id, name=folder.name, bytes=target.stat().st_size)
    return target


def _library_folder(version: CivitaiVersion, safe_name: Any) -> Path:
    root = settings().loras_dir
    base = safe_name(version.model_name or f"civitai-{version.id}", max_len=48)
    folder = root / base
    if folder.exists() and any(folder.iterdir()):
        folder = root / f"{base}-{version.id}"  # another version of the same model (or a namesake) is there
    return ensure_dir(folder)
