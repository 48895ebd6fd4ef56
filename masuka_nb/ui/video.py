"""The Video tab: a form for `VideoGenerator`, a cost estimate before anything is paid, live job
progress, an inline player, and the list of hosted jobs with a resume button.

Jobs are persisted by `masuka_nb.jobs` before they are submitted, so after a runtime restart the
"Resume unfinished jobs" button picks them up instead of paying twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.ui.components import LABEL_STYLE, Panel, ProgressView, card, field_row, section, wide
from masuka_nb.ui.helpers import esc, fmt_duration, fmt_money

__all__ = ["VideoPanel", "video_models"]

# Shown when the engine's catalog cannot be read (the seed's ids; the engine maps them to routes).
FALLBACK_MODELS = ("veo3-pro", "veo3-fast", "sora-2", "sora-2-hd", "runway-gen4")
RESOLUTIONS = ("720p", "1080p")
RATIOS = ("auto", "16:9", "9:16", "1:1")


def video_models() -> list[str]:
    """Model ids from the video engine's catalog (its data), falling back to the documented seed ids."""
    try:
        from masuka_nb import video as engine
    except ImportError:
        return list(FALLBACK_MODELS)
    for name in ("list_models", "model_ids"):
        fn = getattr(engine, name, None)
        if callable(fn):
            ids = [getattr(m, "id", m) for m in fn()]
            if ids:
                return [str(i) for i in ids]
    return list(FALLBACK_MODELS)


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
        self.model = widgets.Dropdown(options=models, value="veo3-pro" if "veo3-pro" in models else models[0],
                                      description="Model", style=LABEL_STYLE, layout=wide("320px"))
        self.duration = widgets.IntSlider(value=5, min=2, max=12, description="Seconds", style=LABEL_STYLE,
                                          layout=wide("320px"))
        self.resolution = widgets.Dropdown(options=RESOLUTIONS, value="1080p", description="Resolution",
                                           style=LABEL_STYLE, layout=wide("240px"))
        self.ratio = widgets.Dropdown(options=RATIOS, value="auto", description="Aspect", style=LABEL_STYLE,
                                      layout=wide("240px"))
        self.motion = widgets.FloatSlider(value=0.7, min=0.0, max=1.0, step=0.05, description="Motion",
                                          style=LABEL_STYLE, layout=wide("320px"))
        self.image = widgets.Text(placeholder="optional: image path or https URL (image-to-video)",
                                  description="Start image", style=LABEL_STYLE, layout=wide())
        self.max_cost = widgets.BoundedFloatText(value=0.0, min=0.0, max=1000.0, step=0.5,
                                                 description="Max $ (0 = none)", style=LABEL_STYLE,
                                                 layout=wide("240px"))
        self.estimate_button = widgets.Button(description="Estimate cost", icon="calculator",
                                              layout=widgets.Layout(width="auto"))
        self.generate_button = widgets.Button(description="Generate video", button_style="primary", icon="film",
                                              layout=widgets.Layout(width="170px"))
        self.generate_button.add_class("mk-primary")
        self.cost = widgets.HTML("")
        self.progress = ProgressView()
        self.player = widgets.Video(format="mp4", autoplay=False, loop=False, controls=True,
                                    layout=widgets.Layout(width="560px", display="none"))
        self.result_info = widgets.HTML("")
        self.jobs_html = widgets.HTML("")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             layout=widgets.Layout(width="auto"))
        self.resume_button = widgets.Button(description="Resume unfinished jobs", icon="play",
                                            layout=widgets.Layout(width="auto"))
        self.estimate_button.on_click(self._on_estimate_button_click)
        self.generate_button.on_click(self._on_generate_button_click)
        self.refresh_button.on_click(self._on_refresh_button_click)
        self.resume_button.on_click(self._on_resume_button_click)
        form = card(
            section("Prompt"), self.prompt,
            section("Model & settings"), field_row(self.model, self.resolution, self.ratio),
            field_row(self.duration, self.motion), self.image, field_row(self.max_cost),
            field_row(self.estimate_button, self.generate_button, self.cancel_button), self.cost,
        )
        jobs = card(section("Hosted jobs"), field_row(self.refresh_button, self.resume_button), self.jobs_html)
        self.children = [form, self.notice, self.progress, self.player, self.result_info, jobs]
        self._busy_buttons = [self.estimate_button, self.generate_button, self.resume_button]
        self.refresh()

    @property
    def generator(self) -> Any:
        if self._generator is None:
            from masuka_nb.video import VideoGenerator

            self._generator = VideoGenerator()
        return self._generator

    def request(self) -> dict[str, Any]:
        image = self.image.value.strip() or None
        return {
            "prompt": self.prompt.value,
            "model": self.model.value,
            "duration": int(self.duration.value),
            "resolution": self.resolution.value,
            "aspect_ratio": None if self.ratio.value == "auto" else self.ratio.value,
            "motion_intensity": float(self.motion.value),
            "image": image,
        }

    # ---- handlers ---------------------------------------------------------------------------------
    def _on_estimate_button_click(self, _b: widgets.Button) -> None:
        self._run("estimate", self._estimate)

    def _on_generate_button_click(self, _b: widgets.Button) -> None:
        self._run("video", self._generate)

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self._run("refresh", self.refresh)

    def _on_resume_button_click(self, _b: widgets.Button) -> None:
        self._run("resume", self._resume)

    # ---- work ---------------------------------------------------------------------------------------
    def _estimate(self) -> None:
        est = self.generator.estimate(**self.request())
        self.estimate_result = est
        self.cost.value = _estimate_html(est)

    def _generate(self) -> None:
        max_cost = float(self.max_cost.value) or None
        self.progress.start("submitting…")
        try:
            result = self.generator.generate(**self.request(), max_cost=max_cost, progress=self.progress)
        except BaseException:
            self.progress.finish("stopped", ok=False)
            raise
        finally:
            self.refresh()
        self.result = result
        self._show(result)

    def _resume(self) -> None:
        from masuka_nb import jobs

        resumed = list(jobs.resume_all() or [])
        finished = 0
        for job in resumed:
            self.progress.start(f"resuming {getattr(job, 'id', 'job')}…")
            outcome = job.wait(progress=self.progress)
            finished += 1
            if getattr(outcome, "path", None):
                self._show(outcome)
        self.refresh()
        self._say(f"{finished} job{'s' if finished != 1 else ''} resumed" if resumed else "No unfinished jobs.",
                  "ok" if resumed else "info")

    def _show(self, result: Any) -> None:
        path = Path(str(result.path))
        self.player.value = path.read_bytes()
        self.player.layout.display = ""
        cost = getattr(result, "cost", None)
        cost_usd = getattr(cost, "usd", cost) if not isinstance(cost, (int, float)) else cost
        facts = [("provider", getattr(result, "provider", "")), ("model", getattr(result, "model", "")),
                 ("seconds", getattr(result, "seconds", "")), ("cost", fmt_money(_number(cost_usd))),
                 ("file", str(path))]
        total = (getattr(result, "timings", None) or {}).get("total_s")
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


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows if v not in ("", None))
    return f'<table class="mk-kv">{body}</table>'


def _estimate_html(est: Any) -> str:
    usd = None
    for name in ("usd", "total_usd", "cost_usd", "amount", "cost"):
        usd = _number(getattr(est, name, None))
        if usd is not None:
            break
    rows: list[tuple[str, Any]] = [("estimate", fmt_money(usd))]
    for name in ("provider", "model", "seconds", "resolution"):
        value = getattr(est, name, None)
        if value not in (None, ""):
            rows.append((name, value))
    notes = []
    for name in ("notes", "warnings", "changes", "adjustments"):
        value = getattr(est, name, None)
        if value:
            notes += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    html = _kv(rows)
    if notes:
        html += "".join(f'<div class="mk-notice mk-warning">{esc(n)}</div>' for n in notes)
    return html


def jobs_table_html(jobs: list[Any], *, limit: int = 20) -> str:
    if not jobs:
        return '<div class="mk-empty">No hosted jobs yet.</div>'
    rows = []
    for job in jobs[:limit]:
        cost = getattr(job, "cost_usd", None)
        if cost is None:
            cost = getattr(getattr(job, "estimate", None), "usd", None)
        cells = [getattr(job, "id", ""), getattr(job, "kind", "video"), getattr(job, "provider", ""),
                 getattr(job, "model", ""), getattr(job, "status", getattr(job, "state", "")),
                 fmt_money(_number(cost))]
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<td><b>{h}</b></td>" for h in ("job", "kind", "provider", "model", "status", "cost"))
    more = f'<div class="mk-muted">…and {len(jobs) - limit} more</div>' if len(jobs) > limit else ""
    return f'<table class="mk-kv" data-testid="mk-jobs"><tr>{head}</tr>{"".join(rows)}</table>{more}'
