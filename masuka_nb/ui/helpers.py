"""Pure helpers for the app: formatting, form parsing, upload normalising, error views, history sums.

No widgets here (and nothing heavy), so every rule the panels follow is a plain function a test can
call directly, under either ipywidgets version.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from masuka_nb._redact import redact
from masuka_nb.errors import CancelledError, InvalidRequestError, MasukaError

__all__ = [
    "ErrorInfo",
    "EtaSmoother",
    "HistoryStats",
    "Upload",
    "code_words",
    "engine_api",
    "error_info",
    "esc",
    "fmt_bytes",
    "fmt_duration",
    "fmt_money",
    "fmt_number",
    "history_stats",
    "parse_int",
    "parse_loras",
    "parse_number_list",
    "parse_seed",
    "plain",
    "png_bytes",
    "progress_text",
    "record_title",
    "upload_items",
]


def esc(text: object) -> str:
    """HTML-escape after redaction: nothing shown in the app may carry a known secret."""
    return html.escape(redact(text), quote=True)


def engine_api(package: str, name: str) -> Any:
    """`package.name` resolved when a panel needs it, so building the app imports no engine.
    (No submodule shares a public function's name: tests/test_public_api.py keeps it so.)"""
    import importlib

    return getattr(importlib.import_module(package), name)


# ---- formatting -----------------------------------------------------------------------------------

def fmt_duration(seconds: float | None) -> str:
    """`3.2` → "3.2 s", `65` → "1 min 05 s", `3725` → "1 h 02 min"; None or NaN → "–"."""
    if seconds is None or not isinstance(seconds, (int, float)) or math.isnan(seconds) or seconds < 0:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f} s"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, sec = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_bytes(n: float | None) -> str:
    if n is None or n < 0:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover  (the loop always returns)


def fmt_money(usd: float | None) -> str:
    """US dollars with cents; sub-cent amounts keep three decimals so a $0.004 call is not "$0.00"."""
    if usd is None or (isinstance(usd, float) and math.isnan(usd)):
        return "–"
    if 0 < abs(usd) < 0.01:
        return f"${usd:.3f}"
    return f"${usd:,.2f}"


def fmt_number(value: Any) -> str:
    """A number as a person writes it: 3.5000000000000004 → "3.5", 0.30000001 → "0.3", 7 → "7",
    1e-4 → "0.0001"; lists item by item; anything else as text."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        text = f"{value:.6g}"
        if "e" in text:
            text = f"{value:.8f}".rstrip("0").rstrip(".")
        return text
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_number(v) for v in value)
    return str(value)


def progress_text(stage: str, step: int, total: int, *, eta_s: float | None = None, message: str = "",
                  elapsed_s: float | None = None) -> str:
    """One status line: "denoise 3/8 · 38% · ETA 4.1 s · 2.0 s elapsed · message"."""
    parts = [f"{stage} {step}/{total}" if total > 0 else stage]
    if total > 0:
        parts.append(f"{min(100, round(100 * step / total))}%")
    if eta_s is not None and step < total:
        parts.append(f"ETA {round(eta_s)} s" if eta_s < 60 else f"ETA {fmt_duration(eta_s)}")
    if elapsed_s is not None:
        parts.append(f"{fmt_duration(elapsed_s)} elapsed")
    if message:
        parts.append(message)
    return " · ".join(parts)


# ---- form parsing (sliders clamp silently, so free-text fields are checked here) ---------------

def parse_seed(text: str | int | None) -> int | None:
    """Empty / "random" / -1 → None (the engine picks and records one); else 0 … 2³²−1."""
    if text is None:
        return None
    raw = str(text).strip().lower()
    if raw in ("", "random", "none", "-1"):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequestError(
            f"Seed “{text}” is not a whole number.", argument="seed", value=text,
            hint="Type a number from 0 to 4294967295, or leave it empty for a random seed.",
        ) from None
    if not 0 <= value < 2**32:
        raise InvalidRequestError(
            f"Seed {value} is out of range: seeds go from 0 to 4294967295.", argument="seed", value=value,
            hint="Type a number from 0 to 4294967295, or leave it empty for a random seed.",
        )
    return value


def parse_int(text: str | int | None, *, argument: str, low: int, high: int, allow_empty: bool = True) -> int | None:
    raw = "" if text is None else str(text).strip()
    if not raw:
        if allow_empty:
            return None
        raise InvalidRequestError(f"`{argument}` is empty.", argument=argument, value=text,
                                  hint=f"Type a whole number from {low} to {high}.")
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequestError(f"`{argument}` must be a whole number, not “{text}”.", argument=argument,
                                  value=text, hint=f"Type a whole number from {low} to {high}.") from None
    if not low <= value <= high:
        raise InvalidRequestError(f"`{argument}` {value} is out of range: {low} to {high}.", argument=argument,
                                  value=value, hint=f"Type a whole number from {low} to {high}.")
    return value


def parse_number_list(text: str, *, argument: str, integer: bool = False) -> list[float]:
    """ "1, 2 3" → [1.0, 2.0, 3.0]; at least one number."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [float(int(p)) if integer else float(p) for p in parts]
    except ValueError:
        raise InvalidRequestError(f"`{argument}` must be numbers separated by commas, not “{text}”.",
                                  argument=argument, value=text,
                                  hint="e.g. 1, 2" if integer else "e.g. 0.7, 1.0") from None
    if not values:
        raise InvalidRequestError(f"`{argument}` is empty.", argument=argument, value=text,
                                  hint="Give at least one value, e.g. 1" if integer else "e.g. 1.0")
    return values


def parse_loras(text: str) -> list[tuple[str, float]]:
    """One LoRA per line or comma: "name", "name:0.8", "https://…/x.safetensors @ 0.6".

    The weight separator is " @ " or the last ":" when what follows is a number (so URLs and
    Windows-free paths with colons survive).
    """
    out: list[tuple[str, float]] = []
    for chunk in text.replace("\n", ",").split(","):
        item = chunk.strip()
        if not item:
            continue
        source, weight = item, 1.0
        if " @ " in item:
            source, _, w = item.rpartition(" @ ")
            weight = _weight(w, item)
        elif ":" in item and not re.fullmatch(r"(?i)civitai:\d+", item):  # civitai:<versionId> is a source
            head, _, tail = item.rpartition(":")
            try:
                weight = float(tail)
                source = head
            except ValueError:
                pass  # a URL's colon, not a weight
        source = source.strip()
        if not source:
            raise InvalidRequestError(f"The LoRA line “{item}” has no name.", argument="loras", value=item,
                                      hint='Write one LoRA per line, e.g. "my-style:0.8".')
        out.append((source, weight))
    return out


def _weight(text: str, item: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidRequestError(f"The weight “{text}” in “{item}” is not a number.", argument="loras",
                                  value=item, hint='Write e.g. "my-style @ 0.8".') from None


# ---- uploads (FileUpload.value: dict in ipywidgets 7.7.1, tuple of dicts in 8.x) -----------------

@dataclass(frozen=True)
class Upload:
    name: str
    content: bytes


def upload_items(value: Any) -> list[Upload]:
    """Normalise `FileUpload.value` from either ipywidgets version into `Upload`s."""
    if not value:
        return []
    if isinstance(value, Mapping):  # 7.x: {name: {"metadata": {...}, "content": bytes}}
        items: Iterable[Any] = (
            {"name": name, **(entry if isinstance(entry, Mapping) else {"content": entry})}
            for name, entry in value.items()
        )
    else:  # 8.x: ({"name", "type", "size", "last_modified", "content": memoryview}, ...)
        items = value
    out = []
    for entry in items:
        meta = entry.get("metadata") or {}
        name = entry.get("name") or meta.get("name") or "upload"
        out.append(Upload(str(name), bytes(entry.get("content") or b"")))
    return out


# ---- errors in plain words ------------------------------------------------------------------------

# One-click fixes a panel can offer under an error (it decides which ones it can act on).
FIX_RESUME, FIX_SWITCH_MODEL, FIX_DEFAULT = "resume", "switch_model", "use_default"
_FIXES_BY_CODE = {"PLAN_DOES_NOT_FIT": (FIX_SWITCH_MODEL,), "OUT_OF_MEMORY": (FIX_SWITCH_MODEL,),
                  "INVALID_REQUEST": (FIX_DEFAULT,), "INVALID_SETTING": (FIX_DEFAULT,), "BUDGET_EXCEEDED": (FIX_DEFAULT,),
                  "PROVIDER_TIMEOUT": (FIX_RESUME,), "JOB_ERROR": (FIX_RESUME,), "PROVIDER_UNAVAILABLE": (FIX_RESUME,),
                  "DOWNLOAD_FAILED": (FIX_RESUME,)}
_SPAN = re.compile(r"`([^`]*)`")
_SYMBOL = re.compile(r"^[^\w\s]{1,3}$")  # a `{` or `|` quoted in a message: a character, not code
_WORDISH = re.compile(r"^[A-Za-z][\w\- .]*$")
_CODEISH = re.compile(r"[()\[\]{}=<>]|\w\.\w+\(|\bmk\.|masuka_nb|\bpip\b|\bimport\b|--\w|\.wait\b|\bNone\b")


@dataclass(frozen=True)
class ErrorInfo:
    """What the app shows for a failure: a plain sentence, what to do (plain too), the one-click fixes the
    panel may offer, and everything technical (code, argument, value, the engine's own words) in `details`,
    shown only inside a closed "Details" disclosure."""

    code: str
    message: str
    hint: str = ""
    level: str = "error"  # "error" | "warning" (stopped)
    details: str = ""
    argument: str | None = None
    fixes: tuple[str, ...] = ()

    def to_html(self) -> str:
        hint = f'<div class="mk-hint">{esc(self.hint)}</div>' if self.hint else ""
        details = (f'<details class="mk-details"><summary>Details</summary><pre>{esc(self.details)}</pre></details>'
                   if self.details else "")
        return (f'<div class="mk-notice mk-{self.level}" data-testid="mk-error" data-code="{esc(self.code)}">'
                f'<span class="mk-msg">{esc(self.message)}</span>{hint}{details}</div>')


def visible_text(html_text: str) -> str:
    """What a person reads without opening a disclosure: tags and <details> bodies removed (tests use it)."""
    text = re.sub(r"<details.*?</details>", " ", html_text, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def plain(text: str, labels: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """(what a person reads, sentences moved to the details): a `name` in backticks becomes its label
    ("num_images" → "Images"); a sentence holding code (a call, an assignment, a shell line) moves out."""
    labels = labels or {}
    keep, moved = [], []
    for sentence in _sentences(text or ""):
        sentence = _SPAN.sub(lambda m: f"“{m.group(1)}”" if _SYMBOL.match(m.group(1)) else m.group(0), sentence)
        spans = _SPAN.findall(sentence)
        if any(not _WORDISH.match(span) or _CODEISH.search(span) for span in spans) or (
                not spans and _CODEISH.search(sentence) and re.search(r"\w\(|\w=\w", sentence)):
            moved.append(sentence)
            continue
        sentence = re.sub(r"`(\w+)` = ", lambda m: "`" + m.group(1) + "` ", sentence)  # "`width` = 9" → "Width 9"
        sentence = _SPAN.sub(lambda m: labels.get(m.group(1), _label(m.group(1))), sentence)
        keep.append(sentence[:1].upper() + sentence[1:])
    return " ".join(keep).strip(), moved


def _label(name: str) -> str:
    return name.replace("_", " ")


def _sentences(text: str) -> list[str]:
    """Split on sentence ends outside backticks (a code span may hold a full stop)."""
    out, buf, in_code = [], "", False
    for i, ch in enumerate(text):
        buf += ch
        if ch == "`":
            in_code = not in_code
        elif ch in ".!?" and not in_code and (i + 1 == len(text) or text[i + 1] == " ") and \
                not buf.lower().endswith(("e.g.", "i.e.", "etc.", "vs.")):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def error_info(exc: BaseException, *, labels: Mapping[str, str] | None = None) -> ErrorInfo:
    """Turn anything a run raised into plain words a person can act on; the technical part goes to details."""
    if isinstance(exc, KeyboardInterrupt):
        return ErrorInfo("CANCELLED", "Stopped. Nothing half-made was kept.", level="warning")
    if isinstance(exc, MasukaError):
        message, moved_m = plain(exc.message, labels)
        hint, moved_h = plain(exc.hint or "", labels)
        tech = [f"code: {exc.code}"]
        if exc.argument is not None:
            tech.append(f"argument: {exc.argument}" + (f" = {_short(exc.value)}" if exc.has_value else ""))
        if moved_m or moved_h or message != exc.message or hint != (exc.hint or ""):
            tech += [f"message: {exc.message}"] + ([f"fix: {exc.hint}"] if exc.hint else [])
        if isinstance(exc, CancelledError):
            return ErrorInfo(exc.code, "Stopped. Nothing half-made was kept." if not hint else "Stopped.",
                             hint, "warning", "\n".join(tech), exc.argument)
        return ErrorInfo(exc.code, message or "That did not work.", hint, "error", "\n".join(tech), exc.argument,
                         _FIXES_BY_CODE.get(exc.code, ()))
    import traceback

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])
    return ErrorInfo("UNEXPECTED", "Something went wrong inside MASUKA (a bug, not something you did).",
                     "Try again; if it happens again, open Details and include them in a report.",
                     details=f"{type(exc).__name__}: {exc}\n{tb}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EtaSmoother:
    """A steady "time left": the mean step time smoothed over the steps seen (an exponential average), so
    one slow step (a model load, a checkpoint) does not make the estimate jump; shown rounded."""

    def __init__(self, *, weight: float = 0.25) -> None:
        self._weight = weight
        self._key: tuple[str, int] | None = None
        self._last: tuple[int, float] | None = None
        self._per_step: float | None = None

    def __call__(self, stage: str, step: int, total: int, elapsed_s: float) -> float | None:
        if (stage, total) != self._key:  # a new stage starts its own estimate
            self._key, self._last, self._per_step = (stage, total), None, None
        if self._last is not None and step > self._last[0]:
            per = (elapsed_s - self._last[1]) / (step - self._last[0])
            self._per_step = per if self._per_step is None else (
                self._weight * per + (1 - self._weight) * self._per_step)
        if self._last is None or step > self._last[0]:
            self._last = (step, elapsed_s)
        if self._per_step is None or total <= 0 or step >= total:
            return None
        return round_eta(self._per_step * (total - step))


def round_eta(seconds: float) -> float:
    """Round a time left the way a person says it: to the second below 20 s, 5 s below 2 min, then 30 s."""
    for limit, unit in ((20, 1), (120, 5), (float("inf"), 30)):
        if seconds < limit:
            return max(unit, round(seconds / unit) * unit)
    return seconds  # pragma: no cover


# ---- images -----------------------------------------------------------------------------------------

def png_bytes(image: Any, *, max_side: int | None = None) -> bytes:
    """PNG bytes of a PIL image (optionally downscaled), for `widgets.Image(value=...)`."""
    img = image
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def upscale_for_display(image: Any, *, min_side: int = 192) -> Any:
    """Tiny outputs (32–64 px) become unreadable blobs in a gallery: enlarge them with nearest-neighbour
    so pixels stay honest."""
    side = min(image.size)
    if side >= min_side or side <= 0:
        return image
    factor = math.ceil(min_side / side)
    from PIL import Image  # pillow is a core dependency; imported here to keep this module light

    return image.resize((image.size[0] * factor, image.size[1] * factor), Image.NEAREST)


# ---- history ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HistoryStats:
    total: int
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    spend_usd: float = 0.0
    last_at: str = ""
    images: int = 0  # image files (a batch of 4 is 4; a record without a file is none)
    success_rate: float | None = None  # ok / (ok + failed); cancelled runs are the user's choice
    seconds_by_model: dict[str, float] = field(default_factory=dict)  # mean seconds per successful run
    errors_by_code: dict[str, int] = field(default_factory=dict)
    spend_by_provider: dict[str, float] = field(default_factory=dict)
    spend_by_day: dict[str, float] = field(default_factory=dict)  # "YYYY-MM-DD" → USD, oldest first
    made_by_kind: dict[str, int] = field(default_factory=dict)  # finished ("ok") records per kind


def _cost_of(rec: Any) -> float:
    """Money actually charged, as the hosted-jobs engine records it (`extra.cost_usd`; estimates are
    kept apart as `estimate_usd` and never counted; a failed job is refunded to 0)."""
    extra = getattr(rec, "extra", None) or {}
    value = extra.get("cost_usd")  # the engine records $0 for the offline simulator and local runs
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _seconds_of(rec: Any) -> float | None:
    # The history's one timing schema (older records' names are read by history.seconds): no guessing here.
    from masuka_nb.history import seconds

    value = seconds(getattr(rec, "timings", None), "total")
    return value if value is not None and value >= 0 else None


IMAGE_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def history_stats(records: Iterable[Any]) -> HistoryStats:
    """Counts by kind and status, success rate, mean time per model, errors by code, and the money
    spent per provider and per day."""
    records = list(records)
    kinds = Counter(getattr(r, "kind", "?") for r in records)
    statuses = Counter(getattr(r, "status", "?") for r in records)
    spend = sum(_cost_of(r) for r in records)
    last = max((getattr(r, "created_at", "") or "" for r in records), default="")
    ok, failed = statuses.get("ok", 0), statuses.get("failed", 0)
    times: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    providers: dict[str, float] = {}
    days: dict[str, float] = {}
    images = 0
    for r in records:
        if getattr(r, "kind", "") == "image":
            images += sum(1 for p in getattr(r, "paths", []) or [] if str(p).lower().endswith(IMAGE_FILE_SUFFIXES))
        if getattr(r, "status", "") == "ok":
            sec = _seconds_of(r)
            if sec is not None:
                times.setdefault(getattr(r, "model", "") or "?", []).append(sec)
        err = getattr(r, "error", None)
        if getattr(r, "status", "") == "failed":
            errors[(err or {}).get("code") or "UNKNOWN"] += 1
        cost = _cost_of(r)
        if cost:
            provider = (getattr(r, "recipe", None) or {}).get("provider") or getattr(r, "model", "") or "?"
            providers[provider] = round(providers.get(provider, 0.0) + cost, 4)
            day = (getattr(r, "created_at", "") or "")[:10] or "?"
            days[day] = round(days.get(day, 0.0) + cost, 4)
    return HistoryStats(
        len(records), dict(kinds), dict(statuses), round(spend, 4), last, images,
        ok / (ok + failed) if ok + failed else None,
        {m: sum(v) / len(v) for m, v in sorted(times.items())},
        dict(errors.most_common()), dict(sorted(providers.items(), key=lambda kv: -kv[1])), dict(sorted(days.items())),
        dict(Counter(getattr(r, "kind", "?") for r in records if getattr(r, "status", "") == "ok")),
    )


CODE_WORDS = {
    "OUT_OF_MEMORY": "ran out of memory", "PLAN_DOES_NOT_FIT": "model too big for this machine",
    "INVALID_REQUEST": "a setting was out of range", "GATED_MODEL": "licence not accepted",
    "MODEL_NOT_FOUND": "unknown model", "MODEL_RETIRED": "model retired", "SECRET_MISSING": "missing API key",
    "BUDGET_EXCEEDED": "over budget", "PROVIDER_AUTH": "API key refused", "PROVIDER_RATE_LIMITED": "provider busy",
    "PROVIDER_REJECTED_CONTENT": "prompt refused by the provider", "PROVIDER_UNAVAILABLE": "provider down",
    "PROVIDER_TIMEOUT": "provider too slow", "PROVIDER_BAD_RESPONSE": "provider sent a bad answer",
    "DOWNLOAD_FAILED": "download failed", "DISK_FULL": "disk full", "NOT_WRITABLE": "folder not writable",
    "STORAGE_FAILED": "could not save", "DATASET_INVALID": "dataset problem", "TRAINING_FAILED": "training failed",
    "GENERATION_FAILED": "generation failed", "JOB_FAILED": "job failed", "JOB_ERROR": "job problem",
    "DEPENDENCY_MISSING": "a package is missing", "LORA_INCOMPATIBLE": "LoRA does not fit the model",
    "UNEXPECTED": "a bug", "UNKNOWN": "unknown",
}


def code_words(code: str) -> str:
    """An error code as a person would say it ("OUT_OF_MEMORY" → "ran out of memory")."""
    return CODE_WORDS.get(code, code.replace("_", " ").lower())


def record_title(rec: Any, *, limit: int = 60) -> str:
    """A one-line label for a history record: "image · tiny-flux · a lighthouse at d…"."""
    prompt = (getattr(rec, "prompt", "") or "").strip().replace("\n", " ")
    if len(prompt) > limit:
        prompt = prompt[: limit - 1] + "…"
    bits = [getattr(rec, "kind", "?"), getattr(rec, "model", "") or "", prompt]
    return " · ".join(b for b in bits if b)
