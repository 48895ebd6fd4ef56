"""The Video tab: a form for `VideoGenerator`, a cost estimate before anything is paid, live job
progress, an inline player, and the list of hosted jobs with a resume button.

Jobs are persisted by `masuka_nb.jobs` before they are submitted, so after a runtime restart the
"Resume unfinished jobs" button picks them up instead of paying twice.
"""

from __future__ import annotations

import warnings
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
    return out or [(m, m) for m in FALLBACK_MODELS]


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
        self.model = widgets.Dropdown(options=models, value="veo3-pro" if "veo3-pro" in ids else ids[0],
                                      description="Model", style=LABEL_STYLE, layout=wide("440px"))
        self.model_info = widgets.HTML("")
        self.model.observe(self._on_model_change, names="value")
        self._on_model_change({"new": self.model.value})
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
            section("Model & settings"), field_row(self.model, self.resolution, self.ratio), self.model_info,
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
    def _on_model_change(self, change: dict[str, Any]) -> None:
        title = model_title(change["new"])
        self.model_info.value = f'<div class="mk-muted">{esc(title)}</div>' if title else ""

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
        # the engine warns (Python warnings) when it adjusts a request; show them here, not as stderr
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = self.generator.generate(**self.request(), max_cost=max_cost, progress=self.progress,
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
        self.player.value = path.read_bytes()
        self.player.layout.display = ""
        facts = [("provider", result.provider), ("model", result.model), ("provider model", result.provider_model),
                 ("seconds", result.seconds), ("cost", fmt_money(_number(result.cost))), ("file", str(path))]
        facts += [("note", n) for n in [*(notes or []), *result.notes]]
        total = (result.timings or {}).get("total")
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
