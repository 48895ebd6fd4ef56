"""What every provider module implements, and the bits they share (keys, base URLs, clients)."""

from __future__ import annotations

import re
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import (
    InvalidRequestError,
    JobFailedError,
    MasukaError,
    ProviderBadResponseError,
    ProviderRejectedContentError,
)
from masuka_nb.hosted.http import ProviderClient, is_policy, parse_retry_after
from masuka_nb.hosted.store import Download, JobRecord, Poll
from masuka_nb.log import get_logger
from masuka_nb.secrets import get_secret

__all__ = ["Provider", "base_url_for", "find_job_id"]

log = get_logger(__name__)

MP4_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")
# Where a reshaped create answer may have put the job id: one of these wrappers, under one of these names.
ID_WRAPPERS = ("data", "result", "task", "job", "output", "prediction", "video", "response", "body")
ID_NAMES = ("id", "task_id", "job_id", "prediction_id", "video_id", "generation_id", "uuid", "taskId", "jobId")
_ID_LIKE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")


def _id_like(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and bool(_ID_LIKE.match(str(value)))


def _dig(body: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def find_job_id(body: Any, *, documented: tuple[str, ...], names: tuple[str, ...] = ID_NAMES) -> tuple[str, str] | None:
    """(where, id) of the job id in a create answer: the documented place, else the documented name (or one
    of `names`) inside the wrappers providers use (``data``, ``result``...), up to three levels down.
    None when there is none, or when two different ids tie (guessing could follow someone else's job)."""
    value = _dig(body, documented)
    if _id_like(value):
        return ".".join(documented), str(value)
    keys = (documented[-1], *[n for n in names if n != documented[-1]])
    found: list[tuple[int, int, str, str]] = []
    frontier: list[tuple[str, Any]] = [("", body)]
    for depth in range(3):
        nxt: list[tuple[str, Any]] = []
        for where, node in frontier:
            if not isinstance(node, dict):
                continue
            for rank, key in enumerate(keys):
                if _id_like(node.get(key)):
                    found.append((rank, depth, f"{where}{key}", str(node[key])))
            nxt += [(f"{where}{k}.", v) for k, v in node.items() if k in ID_WRAPPERS and isinstance(v, dict)]
        frontier = nxt
    if not found:
        return None
    best = min(found)
    ties = {f[3] for f in found if f[:2] == best[:2]}
    return (best[2], best[3]) if len(ties) == 1 else None


def base_url_for(name: str, default: str) -> str:
    """The `<name>_base_url` setting (MASUKA_<NAME>_BASE_URL: tests, the offline simulator), else the provider's own."""
    return settings().base_url(name) or default


class Provider:
    """One hosted API. Subclasses set the class attributes and implement the four verbs."""

    name = ""
    key_names: tuple[str, ...] = ()
    default_base_url = ""
    default_poll_interval = 5.0
    fal_proxy_rules = False

    def __init__(self, *, base_url: str | None = None, key: str | None = None) -> None:
        self.base_url = (base_url or base_url_for(self.name, self.default_base_url)).rstrip("/")
        self._keys = [key] if key else [get_secret(n, purpose=f"{self.name} API calls") for n in self.key_names]
        self.client = ProviderClient(self.name, self.base_url, headers=self.auth_headers(),
                                     auth_header=self.fresh_auth, fal_proxy_rules=self.fal_proxy_rules)

    # -- auth --
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._keys[0]}"}

    fresh_auth = None  # Kling overrides it: a JWT per request

    # -- the verbs --
    def submit_video(self, record: JobRecord, plan: Any, image: Any) -> None:
        """Send the paid request; set `record.provider_job_id` (and `record.extra`). Raise on refusal."""
        raise InvalidRequestError(f"{self.name} does not make videos here.", argument="provider", value=self.name)

    def poll(self, record: JobRecord) -> Poll:
        raise NotImplementedError

    def downloads(self, record: JobRecord) -> list[Download]:
        raise NotImplementedError

    def cancel(self, record: JobRecord) -> bool:
        """Ask the provider to stop; False when it offers no way to."""
        return False

    def job_failed(self, record: JobRecord, reason: str, *, what: str = "job", signals: str = "") -> MasukaError:
        """The error for a job the provider reports failed: a content-policy refusal when the reason (or the
        provider's error type/code in `signals`) says so — never retried elsewhere — else JOB_FAILED."""
        cls = ProviderRejectedContentError if is_policy(f"{reason} {signals}") else JobFailedError
        return cls(f"{self.name} reports {what} {record.provider_job_id} failed: {reason}", provider=self.name,
                   request_id=record.provider_job_id)

    def close(self) -> None:
        self.client.close()

    # -- helpers --
    def asked_wait(self) -> float | None:
        return parse_retry_after(self.client.last_headers)

    def accepted_id(self, record: JobRecord, body: Any, *, path: tuple[str, ...] = ("id",),
                    names: tuple[str, ...] = ID_NAMES) -> str:
        """The job id from a 2xx answer to a paid create. The provider took the job whatever the shape, so an
        id found elsewhere than documented (a renamed field, a reply wrapped in `data`) is used and noted;
        none found raises PROVIDER_BAD_RESPONSE (the runner then records the job as needing attention)."""
        found = find_job_id(body, documented=path, names=names)
        if found is None:
            raise self.bad("a job id", body)
        where, job_id = found
        if where != ".".join(path):
            record.extra["id_from"] = where
            record.notes.append(f"{self.name} answered the paid request in an unexpected shape; its job id was read "
                                f"from `{where}` instead of `{'.'.join(path)}`")
            log.warning("hosted.id_from_unexpected_shape", provider=self.name, job=record.id, where=where)
        return job_id

    create_id_path: tuple[str, ...] = ("id",)  # where a create answer documents the job id

    def adopt_answer(self, record: JobRecord, entry: dict[str, Any]) -> bool:
        """Read the job id from a create answer kept in the submit ledger (after a restart); False if it has none."""
        import json

        try:
            body = json.loads(entry.get("answer") or "")
        except ValueError:
            return False
        found = find_job_id(body, documented=self.create_id_path)
        if found is None:
            return False
        record.provider_job_id = found[1]
        if found[0] != ".".join(self.create_id_path):
            record.extra["id_from"] = found[0]
        self.adopted(record, body, entry)
        return True

    def adopted(self, record: JobRecord, body: Any, entry: dict[str, Any]) -> None:
        """What else a provider needs from the create answer to follow the job (fal's URLs, Kling's endpoint)."""

    def bad(self, what: str, body: Any) -> ProviderBadResponseError:
        return ProviderBadResponseError(f"{self.name} answered without {what}: {str(body)[:200]}",
                                        provider=self.name, hint="The provider's answer changed shape; report it.")
