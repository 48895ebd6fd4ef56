"""The front door for hosted video: price it, fit it, submit it once, wait, download, record it.

    gen = masuka_nb.VideoGenerator()
    gen.estimate("a fox in the snow")                                 # Veo 3.1 Fast, its own 8 s; nothing is sent
    result = gen.generate("a fox in the snow", model="kling-v3", seconds=10, max_cost=1.0)
    result.path, result.cost, result.provider

Routing: the model's routes in catalog order (or only `provider=`), skipping providers whose
circuit breaker is open or whose key is missing. A route is abandoned for the next only while
no provider may have accepted the job; a content-policy refusal is reported, never retried elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from masuka_nb.config import check_url, settings
from masuka_nb.errors import (
    InvalidRequestError,
    MasukaError,
    ModelNotFoundError,
    ProviderRejectedContentError,
    ProviderUnavailableError,
    SecretMissingError,
    StorageError,
)
from masuka_nb.hosted import pricing as _cost
from masuka_nb.hosted.catalog import RoutePlan, model_info, plan_routes, retired_error
from masuka_nb.hosted.http import breaker_for
from masuka_nb.hosted.providers import get_provider, provider_class
from masuka_nb.hosted.runner import (
    Download,
    Job,
    JobRecord,
    check_waiting,
    job_timings,
    save,
    submit_recorded,
)
from masuka_nb.hosted.runner import poll_interval as jobs_poll_interval
from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter
from masuka_nb.secrets import has_secret
from masuka_nb.storage import safe_name
from masuka_nb.video.local import is_local_model
from masuka_nb.video.media import ImageInput, first_frame, is_mp4
from masuka_nb.video.request import DEFAULT_MODEL, VideoRequest
from masuka_nb.video.result import VideoResult

__all__ = ["AdjustedRequestWarning", "IgnoredControlWarning", "RetiredModelWarning", "VideoGenerator", "VideoJob",
           "VideoRequest", "VideoResult"]

log = get_logger(__name__)


class AdjustedRequestWarning(UserWarning):
    """A request was changed to fit its model (seconds, resolution, aspect): shown before paying."""


class IgnoredControlWarning(UserWarning):
    """The user set a control (motion intensity) the chosen route does not have: it is ignored."""


class RetiredModelWarning(UserWarning):
    """The model was retired by its vendor; a reseller still serves it, for now."""


class VideoJob(Job):
    """A hosted video job (see `masuka_nb.jobs.Job`); `wait()` returns a `VideoResult`."""

    needs_download = True
    kind = "video"

    def _target_path(self, d: Download) -> Path:
        rec = self.record
        stem = f"{rec.created_at[:10]}-{safe_name(rec.prompt, max_len=40)}-{rec.id}"
        return settings().outputs_dir / "videos" / (stem + (".mp4" if d.role == "video" else f".{d.role}{d.suffix}"))

    def _check_file(self, d: Download, part: Path, content_type: str) -> None:
        if d.role == "video" and not is_mp4(part):
            part.unlink(missing_ok=True)  # a bad file is dropped so the next try starts clean
            from masuka_nb.errors import ProviderBadResponseError

            raise ProviderBadResponseError(f"{self.record.provider}'s result is not a complete MP4 ({content_type}).",
                                           provider=self.record.provider, request_id=self.record.provider_job_id,
                                           hint="Run `.wait()` again to download it afresh.")

    def _finish(self) -> None:
        rec = self.record
        if "thumbnail" in rec.paths or "video" not in rec.paths:
            return
        frame = first_frame(rec.paths["video"])
        if frame is not None:
            from masuka_nb.storage import atomic_open

            thumb = Path(rec.paths["video"]).with_suffix(".jpg")
            frame.thumbnail((320, 320))
            with atomic_open(thumb, "wb") as fh:
                frame.convert("RGB").save(fh, format="JPEG", quality=85)
            rec.paths["thumbnail"] = str(thumb)

    def _fail(self, err: MasukaError, state: str) -> None:
        _cost.refund(job=self.record.id)  # providers do not bill failed jobs
        self.record.cost_usd = 0.0
        super()._fail(err, state)

    def _history_fields(self) -> dict[str, Any]:
        rec = self.record
        return {"extra": {"cost_usd": rec.cost_usd, "estimate_usd": rec.estimate_usd, "notes": rec.notes,
                          "thumbnail": rec.paths.get("thumbnail"), "seconds": rec.request.get("seconds")}}

    def result(self) -> VideoResult:

        rec = self.record
        if rec.state != "completed":
            raise self._stored_error()
        thumb = rec.paths.get("thumbnail")
        return VideoResult(path=Path(rec.paths["video"]), provider=rec.provider, model=rec.model,
                           duration_s=float(rec.request.get("seconds", 0)), cost=rec.cost_usd, timings=job_timings(rec),
                           provider_model=rec.provider_model, thumbnail=Path(thumb) if thumb else None,
                           job_id=rec.id, notes=list(rec.notes), history_id=rec.history_id or "")


def _is_local(model: str) -> bool:
    """A registry video model (Wan, tiny-wan) runs on this machine instead of a hosted API."""
    return is_local_model(model)


class VideoGenerator:
    """Hosted text/image/video-to-video with cost checks, fallback routing and resumable jobs.

    `base_urls` maps provider -> base URL (the offline simulator, a proxy); `poll_interval`
    overrides each provider's polling pace (the `poll_interval` setting does too); `strict` refuses a
    request that would have to change to fit its model, a control it lacks, or a retired model
    (default: `settings().strict`). Every method takes the same `VideoRequest` fields (or one
    `VideoRequest` in place of the prompt); `seconds`, `resolution` and `aspect_ratio` default to the
    chosen model's own, so `generate("waves at night")` is sent exactly as asked.
    """

    def __init__(self, *, base_urls: dict[str, str] | None = None, poll_interval: float | None = None,
                 strict: bool | None = None) -> None:
        if base_urls is not None and not isinstance(base_urls, dict):
            raise InvalidRequestError("`base_urls` maps a provider name to its base URL.", argument="base_urls",
                                      value=base_urls, hint="e.g. base_urls={\"runway\": \"http://127.0.0.1:8000\"}")
        urls = {}
        for name, url in (base_urls or {}).items():
            if not isinstance(name, str):
                raise InvalidRequestError("`base_urls` keys are provider names.", argument="base_urls", value=name)
            urls[name] = check_url("base_urls", url)
        if poll_interval is not None and (isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float))
                                          or not poll_interval >= 0):
            raise InvalidRequestError("`poll_interval` must be a number of seconds ≥ 0, or None.",
                                      argument="poll_interval", value=poll_interval)
        if strict is not None and not isinstance(strict, bool):
            raise InvalidRequestError("`strict` must be True, False or None.", argument="strict", value=strict)
        self.base_urls = {k: v for k, v in urls.items() if v}
        self.poll_interval = poll_interval
        self.strict = strict

    # -- public --
    def estimate(self, prompt: str | VideoRequest = "", *, model: str = DEFAULT_MODEL, seconds: float | None = None,
                 resolution: str | None = None, aspect_ratio: str | None = None, image: Any = None,
                 video: str | None = None, motion_intensity: float | None = None, provider: str | None = None,
                 max_cost: float | None = None, duration: float | None = None) -> _cost.CostEstimate:
        """What `generate` would send and pay, with every change it would make. Sends nothing."""
        req = VideoRequest.build(prompt, model=model, seconds=seconds, resolution=resolution,
                                 aspect_ratio=aspect_ratio, image=image, video=video,
                                 motion_intensity=motion_intensity, provider=provider, max_cost=max_cost,
                                 duration=duration)
        if _is_local(req.model):  # local open-weight video: masuka_nb/video/local.py
            from masuka_nb.video.local import estimate_local

            return estimate_local(req.model, duration=req.seconds or 5, resolution=req.resolution,
                                  image=req.image, aspect_ratio=req.aspect_ratio)
        return self._estimate(req, self._plans(req, _image_input(req.image)))

    def submit(self, prompt: str | VideoRequest, *, model: str = DEFAULT_MODEL, seconds: float | None = None,
               resolution: str | None = None, aspect_ratio: str | None = None, image: Any = None,
               video: str | None = None, motion_intensity: float | None = None, provider: str | None = None,
               max_cost: float | None = None, progress: ProgressCallback | bool | None = None,
               duration: float | None = None) -> VideoJob:
        """Check the cost, then submit once (falling back while nothing is accepted); returns at once."""
        req = VideoRequest.build(prompt, model=model, seconds=seconds, resolution=resolution,
                                 aspect_ratio=aspect_ratio, image=image, video=video,
                                 motion_intensity=motion_intensity, provider=provider, max_cost=max_cost,
                                 duration=duration)
        check_waiting(progress=progress, cancel=None)
        if _is_local(req.model):
            raise InvalidRequestError(
                f"{req.model} runs on this machine: there is no hosted job to submit and wait for.",
                argument="model", value=req.model,
                hint="Use VideoGenerator().generate(...) for a local model (it returns the finished clip), or "
                     "pick a hosted model to submit.")
        if not req.prompt.strip():
            raise InvalidRequestError("`prompt` must be a non-empty string.", argument="prompt", value=req.prompt)
        img = _image_input(req.image)
        plans = self._plans(req, img)
        est = self._estimate(req, plans)
        _cost.check_budget(est.usd, max_cost=req.max_cost, what=f"This {est.seconds} s {est.model} clip")
        self._tell(est)
        reporter = ProgressReporter("submit", 1, progress=progress)
        job = self._route(req, plans, img)
        reporter.done(f"submitted to {job.provider} as job {job.id} (≈ ${job.record.estimate_usd or 0:.2f})")
        return job

    def generate(self, prompt: str | VideoRequest, *, model: str = DEFAULT_MODEL, seconds: float | None = None,
                 resolution: str | None = None, aspect_ratio: str | None = None, image: Any = None,
                 video: str | None = None, motion_intensity: float | None = None, provider: str | None = None,
                 max_cost: float | None = None, progress: ProgressCallback | bool | None = None,
                 cancel: CancelToken | None = None, duration: float | None = None) -> VideoResult:
        """Make a clip and return it downloaded (see `submit` and `VideoJob.wait`)."""
        req = VideoRequest.build(prompt, model=model, seconds=seconds, resolution=resolution,
                                 aspect_ratio=aspect_ratio, image=image, video=video,
                                 motion_intensity=motion_intensity, provider=provider, max_cost=max_cost,
                                 duration=duration)
        check_waiting(progress=progress, cancel=cancel)
        if _is_local(req.model):  # local open-weight video: masuka_nb/video/local.py
            from masuka_nb.video.local import generate_from_front_door

            self._local_controls(req)
            return generate_from_front_door(req.prompt, model=req.model, duration=req.seconds or 5,
                                            resolution=req.resolution, image=req.image,
                                            aspect_ratio=req.aspect_ratio, progress=progress, cancel=cancel,
                                            strict=self._strict())
        job = self.submit(req, progress=progress)
        return job.wait(progress=progress, cancel=cancel)

    def check(self, prompt: str | VideoRequest = "", *, model: str = DEFAULT_MODEL, seconds: float | None = None,
              resolution: str | None = None, aspect_ratio: str | None = None, image: Any = None,
              video: str | None = None, motion_intensity: float | None = None, provider: str | None = None,
              max_cost: float | None = None, duration: float | None = None) -> _cost.CostEstimate:
        """Every check `generate` makes before anything is sent or paid (the prompt, the model's limits, the
        price against `max_cost` and the session budget, a key for at least one route), then the estimate.
        A front end calls it before asking to confirm a payment, so nothing it asks to pay for fails after."""
        req = VideoRequest.build(prompt, model=model, seconds=seconds, resolution=resolution,
                                 aspect_ratio=aspect_ratio, image=image, video=video,
                                 motion_intensity=motion_intensity, provider=provider, max_cost=max_cost,
                                 duration=duration)
        if not req.prompt.strip():
            from masuka_nb.errors import InvalidRequestError

            raise InvalidRequestError("The prompt is empty.", argument="prompt", value=req.prompt,
                                      hint="Describe the clip: what is seen and how the camera moves.")
        est = self.estimate(req)
        if _is_local(req.model):
            return est
        _cost.check_budget(est.usd, max_cost=req.max_cost, what=f"This {est.seconds} s {est.model} clip")
        from masuka_nb.hosted.providers import provider_class
        from masuka_nb.secrets import has_secret

        routes = [est.provider, *[p for p, _, _ in est.alternatives]]
        if not any(self.simulated(p) or all(has_secret(n) for n in provider_class(p).key_names) for p in routes):
            names = sorted({n for p in routes for n in provider_class(p).key_names})
            raise SecretMissingError(f"No API key is set for {est.model} ({', '.join(routes)}).", argument="model",
                                     value=est.model, hint=f"Add one of {', '.join(names)} in Settings or in "
                                                           "Colab's Secrets panel, or pick another model.")
        return est

    def simulated(self, provider: str) -> bool:
        """True when `provider` is answered by the offline simulator here (its clips are free)."""
        from masuka_nb.hosted.providers import provider_class
        from masuka_nb.hosted.providers.base import base_url_for

        url = self.base_urls.get(provider)
        if not url:
            try:
                url = base_url_for(provider, provider_class(provider).default_base_url)
            except Exception:  # an unknown provider: not a simulator
                return False
        return _cost.simulated(url)

    # -- steps --
    def _strict(self) -> bool:
        return settings().strict if self.strict is None else self.strict

    def _local_controls(self, req: VideoRequest) -> None:
        """What a local model cannot honour (a motion intensity, a provider, a source video) is refused when
        strict, and said (IgnoredControlWarning) otherwise: never silently dropped."""
        unused = [(name, value) for name, value in (("motion_intensity", req.motion_intensity),
                                                    ("provider", req.provider), ("video", req.video))
                  if value is not None and not (name == "provider" and value == "local")]
        for name, value in unused:
            note = f"`{name}` is ignored: {req.model} runs on this machine, which has no such control"
            if self._strict():
                raise InvalidRequestError(f"{req.model}: `{name}` cannot be honoured by a local model.",
                                          argument=name, value=value,
                                          hint=f"Drop `{name}`, or pick a hosted model that has it (strict mode "
                                               "refuses what it would have to ignore).")
            log.info("video.control_ignored", model=req.model, note=note)
            warnings.warn(f"{req.model}: {note}", IgnoredControlWarning, stacklevel=3)

    def _plans(self, req: VideoRequest, img: ImageInput | None) -> list[RoutePlan]:
        strict = self._strict()
        mode = "v2v" if req.video else "i2v" if img is not None else "t2v"
        return plan_routes(req.model, seconds=req.seconds, resolution=req.resolution,
                           aspect_ratio=req.aspect_ratio, mode=mode, provider=req.provider,
                           motion_intensity=req.motion_intensity, strict=strict,
                           image_aspect=img.aspect() if img is not None else None,
                           images=img.frames if img is not None else 0)

    def _estimate(self, req: VideoRequest, plans: list[RoutePlan]) -> _cost.CostEstimate:
        first = plans[0]
        r = first.route
        info = model_info(req.model)
        notes = list(first.notes)
        if info.retired is not None:
            notes.insert(0, info.retired.sentence(req.model))
        for p in plans:
            missing = [n for n in provider_class(p.route.provider).key_names if not has_secret(n)]
            if missing:
                notes.append(f"no {' / '.join(missing)} set: the {p.route.provider} route will be skipped")
        usd = first.usd
        if self.simulated(r.provider):  # nothing is paid to the offline simulator
            usd = 0.0
            notes.insert(0, f"offline simulator: free (the real {r.provider} price is ${first.usd:.2f})")
        return _cost.CostEstimate(
            model=info.id, provider=r.provider, provider_model=r.model, seconds=first.seconds,
            resolution=first.resolution, aspect_ratio=first.aspect_ratio, usd=usd, price_date=r.price_date,
            price_source=r.price_source, changes=list(first.changes), notes=notes,
            alternatives=[(p.route.provider, p.route.model, p.usd) for p in plans[1:]],
            session_spent_usd=_cost.session_spent(), budget_usd=settings().budget_usd)

    @staticmethod
    def _tell(est: _cost.CostEstimate) -> None:
        """Warn once per request, before paying: what was changed, and what the user set that is ignored."""
        for change in est.changes:
            log.info("video.request_adjusted", model=est.model, change=change)
            warnings.warn(f"{est.model}: {change}", AdjustedRequestWarning, stacklevel=4)
        for note in est.notes:
            if "is ignored" in note:
                log.info("video.control_ignored", model=est.model, note=note)
                warnings.warn(f"{est.model}: {note}", IgnoredControlWarning, stacklevel=4)
            elif "was retired by" in note:
                log.info("video.model_retired", model=est.model)
                warnings.warn(note, RetiredModelWarning, stacklevel=4)

    def _route(self, req: VideoRequest, plans: list[RoutePlan], img: ImageInput | None) -> VideoJob:
        info = model_info(req.model)
        canonical, max_cost = info.id, req.max_cost
        first = plans[0]
        rec = JobRecord.new("video", first.route.provider, model=canonical, prompt=req.prompt)
        last_error: MasukaError | None = None
        missing_keys: list[str] = []  # every key a route lacked, so the error names them all
        for plan in plans:
            r = plan.route
            if plan.usd > first.usd:  # a dearer fallback must still respect the caller's limits
                try:
                    _cost.check_budget(plan.usd, max_cost=max_cost, what=f"Fallback {r.provider}:{r.model}")
                except MasukaError as exc:
                    rec.attempts.append({"provider": r.provider, "skipped": exc.code})
                    last_error = last_error or exc
                    continue
            try:
                provider = get_provider(r.provider, base_url=self.base_urls.get(r.provider))
            except SecretMissingError as exc:
                rec.attempts.append({"provider": r.provider, "skipped": exc.code})
                missing_keys.append(f"{exc.value} ({r.provider})")
                last_error = exc if len(missing_keys) == 1 else SecretMissingError(
                    f"No API key for any route of `{canonical}`: " + ", ".join(missing_keys) + ".",
                    argument="model", value=canonical,
                    hint="Add any one of these keys in Colab's Secrets panel (key icon, notebook access on) "
                         "or as an environment variable; or pick a `provider=` whose key you have.")
                continue
            if not breaker_for(r.provider).allow():
                provider.close()
                rec.attempts.append({"provider": r.provider, "skipped": "circuit open"})
                last_error = ProviderUnavailableError(f"{r.provider} is failing repeatedly; skipped for now.",
                                                      provider=r.provider,
                                                      hint="It is tried again after a cool-down; or pick another provider.")
                continue
            rec.provider, rec.provider_model, rec.route = r.provider, r.model, r.route
            rec.base_url = provider.base_url
            usd = 0.0 if _cost.simulated(provider.base_url) else plan.usd  # a simulator's clip is free
            rec.estimate_usd = usd
            rec.notes = plan.changes + plan.notes
            if info.retired is not None:  # the record (and the history) say so too, not only the warning
                rec.notes.insert(0, info.retired.sentence(req.model))
            if urlsplit(provider.base_url).hostname in ("127.0.0.1", "localhost", "::1"):
                rec.notes.append(f"SIMULATOR: made by the offline {r.provider} simulator at {provider.base_url}, "
                                 "not by the real service (the clip is a test pattern)")
            rec.poll_interval = jobs_poll_interval(provider_class(r.provider), self.poll_interval)
            rec.request = {"seconds": plan.seconds, "resolution": plan.resolution, "aspect_ratio": plan.aspect_ratio,
                           "size": plan.size, "mode": plan.mode, "image": _describe(img), "video": req.video,
                           "controls": plan.controls,
                           "price_date": r.price_date, "price_source": r.price_source}
            try:  # the record is saved before the request leaves: a crash from here on is never resubmitted
                submit_recorded(rec, functools.partial(provider.submit_video, rec, plan, img), usd=usd)
            except MasukaError as exc:
                provider.close()
                maybe = bool(exc.details.get("maybe_accepted") or exc.details.get("accepted"))
                rec.attempts.append({"provider": r.provider, "error": exc.code, "maybe_accepted": maybe})
                if maybe or isinstance(exc, StorageError):
                    # Accepted or possibly accepted: it may be paid, so never another route (the record says
                    # what to check). A full disk before sending stops every route alike, leaving no record.
                    if maybe:
                        with contextlib.suppress(StorageError):
                            save(rec)
                    raise
                if info.retired is not None and isinstance(exc, ModelNotFoundError):
                    # The reseller no longer answers for a model its vendor retired: say so plainly.
                    exc = retired_error(req.model, info, why=f"{r.provider} no longer serves it ({exc.message}).")
                    rec.error = exc.to_dict()
                rec.error = rec.error or exc.to_dict()
                rec.error["details"] = {k: str(v) for k, v in exc.details.items()}
                with contextlib.suppress(StorageError):
                    save(rec)
                if isinstance(exc, ProviderRejectedContentError):
                    VideoJob(rec).record_history("failed")
                    raise
                log.warning("video.fallback", provider=r.provider, code=exc.code)
                last_error = exc
                continue
            provider.close()
            log.info("video.submitted", job=rec.id, provider=r.provider, model=r.model, usd=usd)
            return VideoJob(rec)
        if rec.state == "submitting":  # nothing was sent at all
            rec.state = "failed"
        if last_error is not None:
            rec.error = last_error.to_dict()
        with contextlib.suppress(StorageError):  # the routes' refusals are the news here
            save(rec)
        VideoJob(rec).record_history("failed")
        assert last_error is not None
        raise last_error


def _image_input(image: Any) -> ImageInput | None:
    """`image` as the providers need it; whatever a notebook passed, a bad one is INVALID_REQUEST naming it."""
    try:
        return ImageInput.from_any(image)
    except MasukaError:
        raise
    except (OSError, ValueError, TypeError, AttributeError) as exc:  # a NUL in a path, (None, x), an odd object
        raise InvalidRequestError(f"`image` cannot be used: {type(exc).__name__}: {exc}.", argument="image",
                                  value=repr(image)[:80],
                                  hint="Give a file path, an https URL, a PIL image, bytes, or a (first, last) pair.") from None


def _describe(img: ImageInput | None) -> str | None:
    if img is None:
        return None
    first = img.url or f"local image {img.name} ({len(img.data or b'')} bytes)"
    return first if img.last is None else f"{first} → last frame {_describe(img.last)}"
