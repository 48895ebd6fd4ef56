"""The Video tab: a form for `VideoGenerator` beside the live result, the cost in sight before
anything is paid (a paid run asks to confirm once), live job progress, a player for the clip (with
its poster, a message and a download link where the browser cannot play it), and the hosted jobs
with a resume button.

The form offers only what the chosen model takes: its durations, its resolutions and aspect ratios;
the start image only where it does image-to-video; motion is shown disabled (no provider contract
has such a control). A new run clears the previous clip.

Jobs are persisted by `masuka_nb.jobs` before they are submitted, so after a runtime restart the
"Resume unfinished jobs" button picks them up instead of paying twice.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import InvalidRequestError
from masuka_nb.ui.components import LABEL_STYLE, Panel, ProgressView, card, field_row, section, split, wide
from masuka_nb.ui.helpers import esc, fmt_duration, fmt_money

__all__ = ["ModelControls", "VideoPanel", "model_controls", "video_models"]

# Shown when the engine's catalog cannot be read (the seed's ids; the engine maps them to routes).
FALLBACK_MODELS = ("veo3-pro", "veo3-fast", "sora-2", "sora-2-hd", "runway-gen4")
RESOLUTIONS = ("720p", "1080p")
RATIOS = ("auto", "16:9", "9:16", "1:1")


def video_models() -> list[tuple[str, str]]:
    """(label, id) from the video engine's catalog (its data), unavailable models left out; the
    documented seed ids when the engine is not installed."""
    try:
        from masuka_nb.video import list_video_models
    except ImportError:
        return [(m, m) for m in FALLBACK_MODELS]
    out = []
    for mid, title in list_video_models().items():
        if title.startswith("unavailable"):
            continue
        short = title.split(" (")[0]  # the catalog's titles carry route details: the chip below shows them
        out.append((f"{mid} — {short}" if short and short != mid else mid, mid))
    out += [(f"{spec.id} — local, $0", spec.id) for spec in local_video_models()]
    return out or [(m, m) for m in FALLBACK_MODELS]


def local_video_models() -> list[Any]:
    """The registry's open-weight video models (Wan; tiny-wan everywhere), run on this machine's GPU at $0."""
    from masuka_nb.models.registry import list_models

    return [*list_models(task="text-to-video"), *list_models(task="image-to-video")]


class ModelControls:
    """What a video model takes, from the catalog: durations, resolutions, ratios, image modes."""

    def __init__(self, durations: tuple[int, ...], resolutions: tuple[str, ...], ratios: tuple[str, ...],
                 text: bool, image: bool) -> None:
        self.durations, self.resolutions, self.ratios = durations, resolutions, ratios
        self.text, self.image = text, image


def model_controls(model_id: str) -> ModelControls:
    local = {spec.id: spec for spec in local_video_models()}.get(model_id)
    if local is not None:  # seconds become frames at the model's rate, up to its most frames
        longest = max(1, local.max_frames // max(1, local.fps))
        sides = sorted({f"{min(size)}p" for size in local.sizes}, key=lambda x: int(x[:-1]))
        ratios = tuple(sorted({"16:9" if w > h else "9:16" if w < h else "1:1" for w, h in local.sizes}))
        return ModelControls(tuple(range(1, longest + 1)), tuple(sides), ratios, local.task == "text-to-video",
                             local.task == "image-to-video" or "i2v" in local.id or "ti2v" in local.id)
    try:
        from masuka_nb.hosted.catalog import resolve_model

        _, routes, _ = resolve_model(model_id)
    except Exception:  # no engine, or a model the catalog refuses: offer the generic controls
        return ModelControls((4, 5, 6, 8, 10), RESOLUTIONS, RATIOS[1:], True, True)
    first = routes[0]  # the route an estimate picks: offer what it takes, so nothing is silently changed
    durations = sorted(first.durations)
    resolutions = sorted(first.sizes, key=lambda x: (len(x), x))
    ratios = sorted({ratio for table in first.sizes.values() for ratio in table})
    modes = set(first.modes)
    return ModelControls(tuple(durations), tuple(resolutions), tuple(ratios), "t2v" in modes, "i2v" in modes)


def model_title(model_id: str) -> str:
    try:
        from masuka_nb.video import list_video_models
    except ImportError:
        return ""
    return list_video_models().get(model_id, "")


class VideoPanel(Panel):
    title = "Video"

    def __init__(self, *, generator: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._generator = generator
        self.result: Any = None
        self.estimate_result: Any = None
        models = video_models()
        self.prompt = widgets.Textarea(placeholder="A slow dolly shot through a neon-lit market in the rain…",
                                       layout=widgets.Layout(width="100%", height="84px"))
        ids = [mid for _, mid in models]
        from masuka_nb.hosted.catalog import (
            DEFAULT_VIDEO_MODEL as DEFAULT_MODEL,  # the engine's default is the form's
        )

        self.model = widgets.Dropdown(options=models, value=DEFAULT_MODEL if DEFAULT_MODEL in ids else ids[0],
                                      description="Model", style=LABEL_STYLE, layout=wide("440px"))
        self.model_info = widgets.HTML("")
        self.duration = widgets.Dropdown(options=[("5 s", 5)], value=5, description="Seconds", style=LABEL_STYLE,
                                         layout=wide("200px"))
        self.resolution = widgets.Dropdown(options=RESOLUTIONS, value="1080p", description="Resolution",
                                           style=LABEL_STYLE, layout=wide("220px"))
        self.ratio = widgets.Dropdown(options=RATIOS, value="auto", description="Aspect", style=LABEL_STYLE,
                                      layout=wide("200px"))
        self.motion = widgets.FloatSlider(value=0.7, min=0.0, max=1.0, step=0.05, description="Motion",
                                          style=LABEL_STYLE, layout=wide("320px"), disabled=True)
        self.motion_note = widgets.HTML('<span class="mk-muted">no provider\'s API has a motion control</span>')
        self.image = widgets.Text(placeholder="optional: image path or https URL (image-to-video)",
                                  description="Start image", style=LABEL_STYLE, layout=wide())
        self.max_cost = widgets.FloatText(value=0.0, step=0.5, description="Max $ (0 = none)", style=LABEL_STYLE,
                                          layout=wide("220px"))
        self.estimate_button = widgets.Button(description="Estimate cost", icon="calculator",
                                              layout=widgets.Layout(width="auto"))
        self.generate_button = widgets.Button(description="Generate video", button_style="primary", icon="film",
                                              layout=widgets.Layout(width="170px"))
        self.generate_button.add_class("mk-primary")
        self.confirm_html = widgets.HTML("")
        self.confirm_button = widgets.Button(description="Confirm and pay", button_style="warning", icon="check",
                                             layout=widgets.Layout(width="auto", display="none"))
        self.cost = widgets.HTML("")
        self.cost_badge = widgets.HTML("")
        self.progress = ProgressView()
        self.player = widgets.Video(format="mp4", autoplay=False, loop=False, controls=True,
                                    layout=widgets.Layout(width="100%", display="none"))
        self.player.add_class("mk-player")
        self.fallback = widgets.HTML("")
        self.result_info = widgets.HTML("")
        self.jobs_html = widgets.HTML("")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             layout=widgets.Layout(width="auto"))
        self.resume_button = widgets.Button(description="Resume unfinished jobs", icon="play",
                                            layout=widgets.Layout(width="auto"))
        self.fields = {"prompt": self.prompt, "model": self.model, "seconds": self.duration, "duration": self.duration,
                       "resolution": self.resolution, "aspect_ratio": self.ratio, "image": self.image,
                       "max_cost": self.max_cost}
        self._confirmed: tuple[Any, ...] | None = None  # the paid request the user said yes to
        self.model.observe(self._on_model_change, names="value")
        for box in (self.duration, self.resolution, self.ratio, self.image):
            box.observe(self._on_form_change, names="value")
        self.prompt.observe(self._on_prompt_change, names="value")
        self.estimate_button.on_click(self._on_estimate_button_click)
        self.generate_button.on_click(self._on_generate_button_click)
        self.confirm_button.on_click(self._on_confirm_button_click)
        self.refresh_button.on_click(self._on_refresh_button_click)
        self.resume_button.on_click(self._on_resume_button_click)
        form = widgets.VBox([
            card(section("Prompt"), self.prompt, self.cost_badge,
                 field_row(self.estimate_button, self.generate_button, self.cancel_button), self.stop_hint,
                 self.confirm_html, field_row(self.confirm_button), self.notice),
            card(section("Model & settings"), self.model, self.model_info,
                 field_row(self.duration, self.resolution, self.ratio), field_row(self.motion, self.motion_note), self.image,
                 field_row(self.max_cost)),
            card(section("Hosted jobs"), field_row(self.refresh_button, self.resume_button), self.jobs_html),
        ], layout=widgets.Layout(width="100%"))
        live = card(section("Result"), self.progress, self.player, self.fallback, self.result_info, self.cost)
        live.add_class("mk-live")
        self.split_box = split(form, live)
        self.children = [self.split_box]
        self._busy_buttons = [self.estimate_button, self.generate_button, self.resume_button, self.confirm_button]
        # The cost badge and the jobs table load the hosted layer (pydantic, httpx): they fill in when the
        # tab is first opened or the form changes, so building the app stays light.
        self._live = False
        self._on_model_change({"new": self.model.value})
        self._live = True

    def opened(self) -> None:
        """The tab came into view: show the current cost and the job store (once, then they follow the form)."""
        if not self.cost_badge.value:
            self._on_form_change({})
        self.refresh()

    @property
    def generator(self) -> Any:
        if self._generator is None:
            from masuka_nb.video import VideoGenerator

            self._generator = VideoGenerator()
        return self._generator

    def request(self) -> dict[str, Any]:
        image = self.image.value.strip() or None
        controls = model_controls(self.model.value)
        if image is None and not controls.text:
            raise InvalidRequestError(f"{self.model.value} makes video from a start image only.", argument="image",
                                      value=None, hint="Give a start image (a path or an https URL).")
        return {
            "prompt": self.prompt.value,
            "model": self.model.value,
            "seconds": int(self.duration.value),
            "resolution": self.resolution.value,
            "aspect_ratio": None if self.ratio.value == "auto" else self.ratio.value,
            "motion_intensity": None,  # no provider has the control (see the catalog's notes)
            "image": image if controls.image else None,
        }

    def _max_cost(self) -> float | None:
        value = float(self.max_cost.value)
        if not 0 <= value <= 1000:
            raise InvalidRequestError(f"`max_cost` = {value:g} is outside 0 … 1000.", argument="max_cost", value=value,
                                      hint="Type 0 for no limit, or a dollar amount up to 1000.")
        return value or None

    # ---- handlers ---------------------------------------------------------------------------------
    def _on_model_change(self, change: dict[str, Any]) -> None:
        title = model_title(change["new"])
        self.model_info.value = f'<div class="mk-muted">{esc(title)}</div>' if title else ""
        c = model_controls(change["new"])
        keep = self.duration.value
        self.duration.options = [(f"{d} s", d) for d in c.durations]
        self.duration.value = keep if keep in c.durations else c.durations[0]
        keep = self.resolution.value
        self.resolution.options = list(c.resolutions)
        self.resolution.value = keep if keep in c.resolutions else c.resolutions[-1]
        keep = self.ratio.value
        self.ratio.options = ["auto", *c.ratios]
        self.ratio.value = keep if keep in self.ratio.options else "auto"
        self.image.disabled = not c.image
        self.image.placeholder = ("required: a start image (path or https URL)" if not c.text else
                                  "optional: image path or https URL (image-to-video)" if c.image else
                                  "this model makes video from text only")
        self._on_form_change({})

    def _on_prompt_change(self, _change: dict[str, Any]) -> None:
        """A changed request needs a new yes (the price does not depend on the words)."""
        self._confirmed = None
        self.confirm_button.layout.display = "none"
        self.confirm_html.value = ""

    def _on_form_change(self, _change: dict[str, Any]) -> None:
        """The cost follows the form: a quick local estimate (no network), shown next to the prompt."""
        self._confirmed = None
        self.confirm_button.layout.display = "none"
        self.confirm_html.value = ""
        if not self._live:
            return
        try:
            est = self.generator.estimate(**{**self.request(), "prompt": self.prompt.value or "a clip"})
        except Exception:  # a form mid-edit must not fail on the estimate
            self.cost_badge.value = ""
            return
        self.estimate_result = est
        self.cost_badge.value = _cost_badge(est)

    def _on_estimate_button_click(self, _b: widgets.Button) -> None:
        self._run("estimate", self._estimate)

    def _on_generate_button_click(self, _b: widgets.Button) -> None:
        self._run("video", self._generate)

    def _on_confirm_button_click(self, _b: widgets.Button) -> None:
        self._confirmed = self._key()
        self.confirm_button.layout.display = "none"
        self.confirm_html.value = ""
        self._run("video", self._generate)

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self._run("refresh", self.refresh)

    def _on_resume_button_click(self, _b: widgets.Button) -> None:
        self._run("resume", self._resume)

    # ---- work ---------------------------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        req = self.request()
        return tuple(sorted((k, str(v)) for k, v in req.items()))

    def _estimate(self) -> None:
        est = self.generator.estimate(**self.request())
        self.estimate_result = est
        self.cost.value = _estimate_html(est)
        self.cost_badge.value = _cost_badge(est)

    def clear_result(self) -> None:
        self.player.value = b""
        self.player.layout.display = "none"
        self.fallback.value = ""
        self.result_info.value = ""
        self.cost.value = ""
        self.progress.reset()

    def _generate(self) -> None:
        max_cost = self._max_cost()
        request = self.request()
        est = self.generator.estimate(**request)
        self.estimate_result = est
        over_budget = max_cost is not None and est.usd > max_cost  # the engine refuses it before paying
        if est.usd and not over_budget and not _simulated(self.generator, est.provider) \
                and self._confirmed != self._key():
            # a paid run asks once; the same request confirmed goes straight through next time
            self.confirm_html.value = (f'<div class="mk-notice mk-warning" data-testid="mk-confirm">This run costs '
                                       f"<b>{esc(fmt_money(est.usd))}</b> on {esc(est.provider)}. "
                                       "Confirm to pay and start.</div>")
            self.confirm_button.layout.display = ""
            return
        self.clear_result()
        self.started()
        self.progress.start("submitting…")
        # the engine warns (Python warnings) when it adjusts a request; show them here, not as stderr
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = self.generator.generate(**request, max_cost=max_cost, progress=self.progress,
                                                 cancel=self.cancel_token)
            except BaseException:
                self.progress.finish("stopped", ok=False)
                raise
            finally:
                self.refresh()
        self.result = result
        self._show(result, notes=[str(w.message) for w in caught])

    def _resume(self) -> None:
        from masuka_nb import jobs

        self.progress.start("resuming unfinished jobs…")
        # several jobs at once, each on its own thread: progress goes to the table, not the bar
        resumed = list(jobs.resume_all(progress=False) or [])
        self.refresh()
        if not resumed:
            self.progress.finish("nothing to resume")
            self._say("No unfinished jobs.", "info")
            return
        done = [j for j in resumed if j.state == "completed"]
        failed = [j for j in resumed if j.error is not None]
        for job in done:
            if job.record.kind == "video":
                self._show(job.result())
        self.progress.finish(f"{len(done)} of {len(resumed)} resumed jobs finished", ok=not failed)
        text = f"{len(done)} of {len(resumed)} resumed job{'s' if len(resumed) != 1 else ''} finished"
        if failed:
            text += "; " + "; ".join(f"{j.id}: [{j.error.code}] {j.error.message}" for j in failed[:3])
        self._say(text, "warning" if failed else "ok")

    def _show(self, result: Any, *, notes: list[str] | None = None) -> None:
        path = Path(str(result.path))
        data = path.read_bytes()
        self.player.value = data
        self.player.layout.display = ""
        self.fallback.value = clip_fallback_html(path, data, getattr(result, "thumbnail", None))
        facts = [("provider", result.provider), ("model", result.model), ("provider model", result.provider_model),
                 ("seconds", result.duration_s), ("cost", fmt_money(_number(result.cost))), ("file", str(path))]
        facts += [("note", n) for n in [*(notes or []), *result.notes]]
        total = result.elapsed_s
        if total:
            facts.append(("took", fmt_duration(total)))
        self.result_info.value = _kv(facts)
        self.progress.finish(f"video ready · {path.name}")
        self._say(f"Video ready: {path.name}")

    def refresh(self) -> None:
        """Re-read the job store (other tabs, a restart or another process may have changed it)."""
        try:
            from masuka_nb import jobs
        except ImportError:
            self.jobs_html.value = '<div class="mk-empty">The hosted-jobs engine is not installed.</div>'
            return
        self.jobs_html.value = jobs_table_html(list(jobs.list()))


def _simulated(generator: Any, provider: str) -> bool:
    """True when `provider` is answered by a loopback simulator (nothing is paid): the engine's own
    rule for labelling a clip SIMULATOR."""
    from urllib.parse import urlsplit

    url = (getattr(generator, "base_urls", None) or {}).get(provider)
    if not url:
        try:
            from masuka_nb.hosted.providers import provider_class
            from masuka_nb.hosted.providers.base import base_url_for

            url = base_url_for(provider, provider_class(provider).default_base_url)
        except Exception:  # an unknown provider: treat it as paid
            return False
    return urlsplit(str(url)).hostname in ("127.0.0.1", "localhost", "::1")


def _cost_badge(est: Any) -> str:
    changes = f' · <span class="mk-muted">{esc("; ".join(est.changes))}</span>' if est.changes else ""
    return (f'<div class="mk-cost" data-testid="mk-cost"><b>{esc(fmt_money(est.usd))}</b> '
            f'<span class="mk-muted">for {esc(est.seconds)} s on {esc(est.provider)} · price of '
            f"{esc(est.price_date)}</span>{changes}</div>")


def clip_fallback_html(path: Path, data: bytes, poster: Any = None) -> str:
    """Under the player: a download link always, and where the browser cannot play the clip (the
    front end sets `data-failed` on error) the poster frame and a message. The <video> element the
    Video widget renders reports its own errors; this text is there for that case."""
    import base64

    link = (f'<a class="mk-link-button" download="{esc(path.name)}" '
            f'href="data:video/mp4;base64,{base64.b64encode(data).decode()}">⬇ Download {esc(path.name)}</a>'
            if len(data) <= 40 * 1024 * 1024 else f'<span class="mk-muted">File: {esc(path)}</span>')
    poster_html = ""
    if poster and Path(str(poster)).is_file():
        b64 = base64.b64encode(Path(str(poster)).read_bytes()).decode()
        poster_html = f'<img class="mk-poster" alt="first frame" src="data:image/jpeg;base64,{b64}">'
    return (f'<div class="mk-clip-fallback" data-testid="mk-clip">{link}'
            '<details class="mk-cannot-play"><summary class="mk-muted">The player stays black?</summary>'
            f"{poster_html}<div class=\"mk-muted\">This browser cannot decode the clip: download it and open it "
            "in a video player (VLC plays every format the providers send).</div></details></div>")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows if v not in ("", None))
    return f'<table class="mk-kv">{body}</table>'


def _estimate_html(est: Any) -> str:
    """A `CostEstimate`: the price, the route, what had to change to fit the model, the fallbacks."""
    rows: list[tuple[str, Any]] = [
        ("estimate", f"{fmt_money(est.usd)} (price of {est.price_date}: {est.price_source})"),
        ("route", f"{est.model} on {est.provider} ({est.provider_model})"),
        ("clip", f"{est.seconds} s · {est.resolution} · {est.aspect_ratio}"),
    ]
    rows += [("fallback", f"{p} ({m}) ≈ {fmt_money(u)}") for p, m, u in est.alternatives]
    if est.budget_usd is not None:
        rows.append(("session", f"{fmt_money(est.session_spent_usd)} spent of {fmt_money(est.budget_usd)}"))
    html = f'<div data-testid="mk-estimate">{_kv(rows)}</div>'
    html += "".join(f'<div class="mk-notice mk-warning"><span class="mk-code">CHANGED</span> {esc(c)}</div>'
                    for c in est.changes)
    html += "".join(f'<div class="mk-notice">{esc(n)}</div>' for n in est.notes)
    return html


def jobs_table_html(jobs: list[Any], *, limit: int = 20) -> str:
    if not jobs:
        return '<div class="mk-empty">No hosted jobs yet.</div>'
    rows = []
    for job in jobs[:limit]:
        rec = job.record
        cost = rec.cost_usd if rec.cost_usd is not None else rec.estimate_usd
        label = fmt_money(_number(cost)) + ("" if rec.cost_usd is not None else " (est.)")
        state = rec.state + (f" · {rec.status_text}" if rec.status_text and not job.done else "")
        cells = [rec.id, rec.kind, rec.provider, rec.provider_model or rec.model, state, label]
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<td><b>{h}</b></td>" for h in ("job", "kind", "provider", "model", "status", "cost"))
    more = f'<div class="mk-muted">…and {len(jobs) - limit} more</div>' if len(jobs) > limit else ""
    return f'<table class="mk-kv" data-testid="mk-jobs"><tr>{head}</tr>{"".join(rows)}</table>{more}'
