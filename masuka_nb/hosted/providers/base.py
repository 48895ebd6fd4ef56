"""What every provider module implements, and the bits they share (keys, base URLs, clients)."""

from __future__ import annotations

from typing import Any

from masuka_nb.errors import (
    InvalidRequestError,
    JobFailedError,
    MasukaError,
    ProviderBadResponseError,
    ProviderRejectedContentError,
)
from masuka_nb.hosted.http import ProviderClient, is_policy, parse_retry_after
from masuka_nb.hosted.store import Download, JobRecord, Poll
from masuka_nb.secrets import get_secret

__all__ = ["Provider", "base_url_for"]

MP4_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")


def base_url_for(name: str, default: str) -> str:
    """The `<name>_base_url` setting (MASUKA_<NAME>_BASE_URL: tests, the offline simulator), else the provider's own."""
    from masuka_nb.config import settings

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

    def bad(self, what: str, body: Any) -> ProviderBadResponseError:
        return ProviderBadResponseError(f"{self.name} answered without {what}: {str(body)[:200]}",
                                        provider=self.name, hint="The provider's answer changed shape; report it.")
