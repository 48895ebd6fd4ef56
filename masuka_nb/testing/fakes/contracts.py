"""The documented response objects of every endpoint MASUKA calls, field by field, transcribed from each
provider's public API reference (address and date beside each one). The fakes answer with exactly these
objects, and `tests/video/test_contracts.py` checks every answer against them, so a client that validates
responses works against the simulators as it would against the real service.

A field's value is the type (or tuple of types) the reference documents; ``None`` in a tuple means the
field is documented as nullable. Fields a state adds (a prediction's `output` when it succeeds) are
listed under that state.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONTRACTS", "check"]

NULL = type(None)
STR_OR_NULL = (str, NULL)

CONTRACTS: dict[str, dict[str, Any]] = {
    # https://replicate.com/docs/reference/http (checked 2026-12-01)
    "replicate.model": {
        "reference": "https://replicate.com/docs/reference/http#models.get", "checked": "2026-12-01",
        "fields": {"url": str, "owner": str, "name": str, "description": STR_OR_NULL, "visibility": str,
                   "github_url": STR_OR_NULL, "paper_url": STR_OR_NULL, "license_url": STR_OR_NULL,
                   "run_count": int, "cover_image_url": STR_OR_NULL, "default_example": (dict, NULL),
                   "latest_version": (dict, NULL)},
        "nested": {"latest_version": {"id": str, "created_at": str, "cog_version": str, "openapi_schema": dict}},
    },
    "replicate.prediction": {
        "reference": "https://replicate.com/docs/reference/http#predictions.get", "checked": "2026-12-01",
        "fields": {"id": str, "model": str, "version": str, "input": dict, "logs": str, "output": object,
                   "data_removed": bool, "error": STR_OR_NULL, "status": str, "created_at": str,
                   "started_at": STR_OR_NULL, "completed_at": STR_OR_NULL, "urls": dict, "metrics": (dict, NULL)},
        "nested": {"urls": {"get": str, "cancel": str, "web": str}},
        "statuses": ("starting", "processing", "succeeded", "failed", "canceled"),
    },
    "replicate.training": {
        "reference": "https://replicate.com/docs/reference/http#trainings.get", "checked": "2026-12-01",
        "fields": {"id": str, "model": str, "version": str, "input": dict, "logs": str, "output": object,
                   "error": STR_OR_NULL, "status": str, "created_at": str, "started_at": STR_OR_NULL,
                   "completed_at": STR_OR_NULL, "urls": dict, "metrics": (dict, NULL)},
        "nested": {"urls": {"get": str, "cancel": str, "web": str}},
        "statuses": ("starting", "processing", "succeeded", "failed", "canceled"),
    },
    "replicate.account": {
        "reference": "https://replicate.com/docs/reference/http#account.get", "checked": "2026-12-01",
        "fields": {"type": str, "username": str, "name": str, "github_url": STR_OR_NULL},
    },
    "replicate.file": {
        "reference": "https://replicate.com/docs/reference/http#files.create", "checked": "2026-12-01",
        "fields": {"id": str, "name": str, "content_type": str, "size": int, "etag": str, "checksums": dict,
                   "metadata": dict, "created_at": str, "expires_at": STR_OR_NULL, "urls": dict},
        "nested": {"checksums": {"sha256": str, "md5": str}, "urls": {"get": str}},
    },
    # https://docs.dev.runwayml.com/api/ (API version 2024-11-06; checked 2026-12-01)
    "runway.task_created": {
        "reference": "https://docs.dev.runwayml.com/api/#tag/Start-generating", "checked": "2026-12-01",
        "fields": {"id": str},
    },
    "runway.task": {
        "reference": "https://docs.dev.runwayml.com/api/#tag/Task-management", "checked": "2026-12-01",
        "fields": {"id": str, "createdAt": str, "status": str},
        "by_status": {"RUNNING": {"progress": (int, float)}, "SUCCEEDED": {"output": list},
                      "FAILED": {"failure": str, "failureCode": str}},
        "statuses": ("PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"),
    },
    # The OpenAI video object that CometAPI serves at /v1/videos (checked 2026-12-01)
    "cometapi.video": {
        "reference": "https://platform.openai.com/docs/api-reference/videos/object", "checked": "2026-12-01",
        "fields": {"id": str, "object": str, "model": str, "status": str, "progress": int, "created_at": int,
                   "completed_at": (int, NULL), "expires_at": (int, NULL), "seconds": str, "size": str,
                   "error": (dict, NULL), "remixed_from_video_id": STR_OR_NULL, "prompt": STR_OR_NULL},
        "statuses": ("queued", "in_progress", "completed", "failed"),
    },
    # https://app.klingai.com/global/dev/document-api (third-party transcriptions agree; checked 2026-12-01)
    "kling.task": {
        "reference": "https://app.klingai.com/global/dev/document-api", "checked": "2026-12-01",
        "fields": {"code": int, "message": str, "request_id": str, "data": dict},
        "nested": {"data": {"task_id": str, "task_status": str, "created_at": int, "updated_at": int}},
        "statuses": ("submitted", "processing", "succeed", "failed"),
    },
    # https://docs.fal.ai/model-endpoints/queue (checked 2026-12-01)
    "fal.queued": {
        "reference": "https://docs.fal.ai/model-endpoints/queue", "checked": "2026-12-01",
        "fields": {"request_id": str, "response_url": str, "status_url": str, "cancel_url": str},
    },
    "fal.status": {
        "reference": "https://docs.fal.ai/model-endpoints/queue", "checked": "2026-12-01",
        "fields": {"status": str},
        "by_status": {"IN_QUEUE": {"queue_position": int, "response_url": str},
                      "IN_PROGRESS": {"logs": (list, NULL), "response_url": str},
                      "COMPLETED": {"logs": (list, NULL), "metrics": dict, "response_url": str}},
        "statuses": ("IN_QUEUE", "IN_PROGRESS", "COMPLETED"),
    },
}


def _type_ok(value: Any, expected: Any) -> bool:
    if expected is object:
        return True
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in kinds:
        return False  # a bool is an int to Python, never to a JSON schema
    return isinstance(value, kinds)


def check(name: str, body: Any) -> list[str]:
    """Every way `body` differs from the documented object `name` (empty when it matches field by field)."""
    spec = CONTRACTS[name]
    if not isinstance(body, dict):
        return [f"{name}: not an object: {body!r:.80}"]
    problems = []
    fields = dict(spec["fields"])
    status = body.get("status") if "status" in body else (body.get("data") or {}).get("task_status")
    fields.update(spec.get("by_status", {}).get(status, {}))
    for field, expected in fields.items():
        if field not in body:
            problems.append(f"{name}: missing `{field}`")
        elif not _type_ok(body[field], expected):
            problems.append(f"{name}: `{field}` is {type(body[field]).__name__}, documented {expected}")
    for field, sub in spec.get("nested", {}).items():
        inner = body.get(field)
        if isinstance(inner, dict):
            for key, expected in sub.items():
                if key not in inner:
                    problems.append(f"{name}: missing `{field}.{key}`")
                elif not _type_ok(inner[key], expected):
                    problems.append(f"{name}: `{field}.{key}` is {type(inner[key]).__name__}, documented {expected}")
    if "statuses" in spec and status is not None and status not in spec["statuses"]:
        problems.append(f"{name}: status {status!r} is not one of {spec['statuses']}")
    return problems
