"""Every error MASUKA raises, in one tree.

Each error has a stable ``code`` (for programs and for the history), a message that names the
argument and the value that caused it, and a ``hint`` that says how to fix it. Each also subclasses
the built-in it resembles, so generic ``except ValueError`` / ``except FileNotFoundError`` still work.

    MasukaError
    ├── ConfigError                      INVALID_SETTING            (ValueError)
    ├── InvalidRequestError              INVALID_REQUEST            (ValueError)
    │   ├── LoraIncompatibleError        LORA_INCOMPATIBLE
    │   └── RecipeUnsupportedError       RECIPE_UNSUPPORTED
    ├── ModelNotFoundError               MODEL_NOT_FOUND            (LookupError)
    │   └── ModelRetiredError            MODEL_RETIRED
    ├── GatedModelError                  GATED_MODEL                (PermissionError)
    ├── ModelFilesMissingError           MODEL_FILES_MISSING        (FileNotFoundError)
    ├── PlanDoesNotFitError              PLAN_DOES_NOT_FIT          (MemoryError)
    ├── OutOfMemoryError                 OUT_OF_MEMORY              (MemoryError)
    ├── GenerationFailedError            GENERATION_FAILED          (RuntimeError)
    ├── TrainingFailedError              TRAINING_FAILED            (RuntimeError)
    ├── CancelledError                   CANCELLED                  (RuntimeError)
    ├── SecretMissingError               SECRET_MISSING             (LookupError)
    ├── DependencyMissingError           DEPENDENCY_MISSING         (ImportError)
    ├── DatasetError                     DATASET_INVALID            (ValueError)
    ├── StorageError                     STORAGE_FAILED             (OSError)
    │   ├── DiskFullError                DISK_FULL
    │   └── NotWritableError             NOT_WRITABLE
    ├── BudgetExceededError              BUDGET_EXCEEDED            (ValueError)
    ├── DownloadError                    DOWNLOAD_FAILED            (ConnectionError)
    ├── ProviderError                    PROVIDER_ERROR             (ConnectionError)
    │   ├── ProviderAuthError            PROVIDER_AUTH
    │   ├── ProviderRateLimitedError     PROVIDER_RATE_LIMITED
    │   ├── ProviderRejectedContentError PROVIDER_REJECTED_CONTENT
    │   ├── ProviderUnavailableError     PROVIDER_UNAVAILABLE
    │   ├── ProviderBadResponseError     PROVIDER_BAD_RESPONSE
    │   └── ProviderTimeoutError         PROVIDER_TIMEOUT           (also TimeoutError)
    └── JobError                         JOB_ERROR                  (RuntimeError)
        ├── JobFailedError               JOB_FAILED
        ├── JobExpiredError              JOB_EXPIRED
        └── JobNotFoundError             JOB_NOT_FOUND              (also LookupError)

Messages pass through the secret redactor, so an API key that slips into a provider's reply or a
URL never reaches a traceback, a log line or the history.
"""

from __future__ import annotations

from typing import Any

from masuka_nb._redact import redact

__all__ = [
    "BudgetExceededError",
    "CancelledError",
    "ConfigError",
    "DatasetError",
    "DependencyMissingError",
    "DiskFullError",
    "DownloadError",
    "GatedModelError",
    "GenerationFailedError",
    "InvalidRequestError",
    "JobError",
    "JobExpiredError",
    "JobFailedError",
    "JobNotFoundError",
    "LoraIncompatibleError",
    "MasukaError",
    "ModelFilesMissingError",
    "ModelNotFoundError",
    "ModelRetiredError",
    "NotWritableError",
    "OutOfMemoryError",
    "PlanDoesNotFitError",
    "ProviderAuthError",
    "ProviderBadResponseError",
    "ProviderError",
    "ProviderRateLimitedError",
    "ProviderRejectedContentError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RecipeUnsupportedError",
    "SecretMissingError",
    "StorageError",
    "TrainingFailedError",
    "error_for_code",
]

_UNSET = object()


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MasukaError(Exception):
    """Base of every MASUKA error: ``code``, ``message``, ``argument``, ``value``, ``hint``, ``details``."""

    code: str = "MASUKA_ERROR"
    default_hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        argument: str | None = None,
        value: Any = _UNSET,
        hint: str | None = None,
        code: str | None = None,
        **details: Any,
    ) -> None:
        self.message = redact(message)
        self.argument = argument
        self.value = None if value is _UNSET else value
        self.has_value = value is not _UNSET
        self.hint = redact(hint if hint is not None else self.default_hint)
        if code is not None:
            self.code = code
        self.details = {k: v for k, v in details.items() if v is not None}
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [f"[{self.code}] {self.message}"]
        if self.argument is not None:
            where = f"`{self.argument}`"
            if self.has_value:
                where += f" = {redact(_short(self.value))}"
            parts.append(f"({where})")
        text = " ".join(parts)
        if self.hint:
            text += f"\nHint: {self.hint}"
        return text

    # Pickling (multiprocessing, accelerate launch) must keep the keyword-only fields.
    def __reduce__(self):
        state = {
            "argument": self.argument,
            "hint": self.hint,
            "code": self.code,
            **self.details,
        }
        if self.has_value:
            state["value"] = self.value
        return (_rebuild, (type(self), self.message, state))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly record of the error, for the history and the job store."""
        return {
            "code": self.code,
            "type": type(self).__name__,
            "message": self.message,
            "argument": self.argument,
            "value": redact(_short(self.value)) if self.has_value else None,
            "hint": self.hint,
        }


def _rebuild(cls, message, state):
    return cls(message, **state)


class ConfigError(MasukaError, ValueError):
    code = "INVALID_SETTING"
    default_hint = "Run `masuka_nb.settings()` to see every setting and its current value."


class InvalidRequestError(MasukaError, ValueError):
    code = "INVALID_REQUEST"


class LoraIncompatibleError(InvalidRequestError):
    code = "LORA_INCOMPATIBLE"


class RecipeUnsupportedError(InvalidRequestError):
    """An image whose metadata describes nothing MASUKA can make again (no recipe, an edit, video, a foreign family)."""

    code = "RECIPE_UNSUPPORTED"


class ModelNotFoundError(MasukaError, LookupError):
    code = "MODEL_NOT_FOUND"
    default_hint = "Run `masuka_nb.list_models()` to see the model ids."

    def __str__(self) -> str:  # LookupError/KeyError quirks: always our own text
        return MasukaError.__str__(self)


class ModelRetiredError(ModelNotFoundError):
    """The vendor retired the model; the message names the date and the nearest live models."""

    code = "MODEL_RETIRED"
    default_hint = "Pick one of the live models named in the message."


class GatedModelError(MasukaError, PermissionError):
    code = "GATED_MODEL"


class ModelFilesMissingError(MasukaError, FileNotFoundError):
    code = "MODEL_FILES_MISSING"

    def __str__(self) -> str:
        return MasukaError.__str__(self)


class PlanDoesNotFitError(MasukaError, MemoryError):
    code = "PLAN_DOES_NOT_FIT"


class OutOfMemoryError(MasukaError, MemoryError):
    code = "OUT_OF_MEMORY"


class GenerationFailedError(MasukaError, RuntimeError):
    code = "GENERATION_FAILED"


class TrainingFailedError(MasukaError, RuntimeError):
    code = "TRAINING_FAILED"


class CancelledError(MasukaError, RuntimeError):
    code = "CANCELLED"
    default_hint = "Nothing half-made was kept; run it again when you are ready."


class SecretMissingError(MasukaError, LookupError):
    code = "SECRET_MISSING"

    def __str__(self) -> str:
        return MasukaError.__str__(self)


class DependencyMissingError(MasukaError, ImportError):
    code = "DEPENDENCY_MISSING"

    def __str__(self) -> str:
        return MasukaError.__str__(self)


class DatasetError(MasukaError, ValueError):
    code = "DATASET_INVALID"


class StorageError(MasukaError, OSError):
    code = "STORAGE_FAILED"

    def __str__(self) -> str:
        return MasukaError.__str__(self)


class DiskFullError(StorageError):
    """No space left (ENOSPC, EDQUOT): nothing half-written was kept; ``details`` says what was saved and where."""

    code = "DISK_FULL"
    default_hint = "Free some space (delete old outputs, or empty Drive's bin), then run it again."


class NotWritableError(StorageError):
    """A read-only or forbidden place (EROFS, EACCES, EPERM); ``details`` says what was saved and where."""

    code = "NOT_WRITABLE"
    default_hint = "Choose a writable folder for MASUKA's home (Settings), or remount Drive, then run it again."


class BudgetExceededError(MasukaError, ValueError):
    code = "BUDGET_EXCEEDED"


class ProviderError(MasukaError, ConnectionError):
    """A hosted API refused or failed; ``details`` carries provider, status and request_id."""

    code = "PROVIDER_ERROR"
    retryable: bool = False

    def __str__(self) -> str:
        return MasukaError.__str__(self)


class DownloadError(MasukaError, ConnectionError):
    """A plain URL (a LoRA, a dataset zip) could not be fetched whole; a rerun resumes it."""

    code = "DOWNLOAD_FAILED"


class ProviderAuthError(ProviderError):
    code = "PROVIDER_AUTH"


class ProviderRateLimitedError(ProviderError):
    code = "PROVIDER_RATE_LIMITED"
    retryable = True


class ProviderRejectedContentError(ProviderError):
    code = "PROVIDER_REJECTED_CONTENT"


class ProviderUnavailableError(ProviderError):
    code = "PROVIDER_UNAVAILABLE"
    retryable = True


class ProviderBadResponseError(ProviderError):
    code = "PROVIDER_BAD_RESPONSE"


class ProviderTimeoutError(ProviderError, TimeoutError):
    code = "PROVIDER_TIMEOUT"
    retryable = True


class JobError(MasukaError, RuntimeError):
    code = "JOB_ERROR"


class JobFailedError(JobError):
    code = "JOB_FAILED"


class JobExpiredError(JobError):
    code = "JOB_EXPIRED"


class JobNotFoundError(JobError, LookupError):
    code = "JOB_NOT_FOUND"

    def __str__(self) -> str:
        return MasukaError.__str__(self)


def _all_error_classes() -> list[type[MasukaError]]:
    seen: list[type[MasukaError]] = []
    stack: list[type[MasukaError]] = [MasukaError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


def error_for_code(code: str) -> type[MasukaError]:
    """The error class that carries `code` (used to rebuild errors stored in the history or job store)."""
    for cls in _all_error_classes():
        if cls.code == code:
            return cls
    return MasukaError
