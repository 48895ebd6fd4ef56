"""The Video tab: a short list of video models grouped by who runs them, each with its price per clip;
a form that offers only the controls the chosen model has; every check before the price is confirmed; a
player for the clip in the result pane, this session's clips in the feed; and the hosted jobs with Resume.

Aliases and retired models stay reachable from code (`VideoGenerator().generate(model="sora-2")`) but
are not listed. The paid/free rule is the engine's (a clip from the offline simulator costs $0); the tab
asks to confirm only what the engine would charge, after `VideoGenerator.check` has passed. Jobs are
persisted by `masuka_nb.jobs` before they are submitted, so after a runtime restart Resume picks them up
instead of paying twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import InvalidRequestError
from masuka_nb.ui.components import (
    LABEL_STYLE,
    Notice,
    Panel,
    button,
    card,
    field_row,
    section,
    show,
    split,
    wide,
)
from masuka_nb.ui.helpers import FIX_RESUME, engine_api, esc, fmt_duration, fmt_money, fmt_number, plain
from masuka_nb.ui.results import FeedItem, FeedRun, ResultPane, thumb_png

__all__ = ["ModelControls", "VideoPanel", "model_controls", "video_models"]

RATIOS = ("16:9", "9:16", "1:1")
PROVIDER_NAMES = {"cometapi": "CometAPI", "runway": "Runway", "kling": "Kling", "fal": "fal", "replicate": "Replicate",
                  "local": "This machine"}


def video_models() -> list[tuple[str, str]]:
    """(label, id) of the models worth offering: grouped by who runs them (this machine first: it is free),
    each labelled with its price per clip at its own defaults; aliases, retired and unavailable models
    are left out (they still work from code)."""
    from masuka_nb.hosted.catalog import catalog, resolve_model

    rows: list[tuple[int, str, str, str]] = []
    for spec in local_video_models():
        title = _short_title(spec.title)
        if "random weights" in spec.title:  # an offline test model: say that it makes noise, not a video
            title += " (test model: makes noise)"
        rows.append((0, "local", f"This machine · {title} · free", spec.id))
    for mid, entry in catalog()["models"].items():
        if "alias_of" in entry or "unavailable" in entry or "retired" in entry:
            continue
        try:
            _, routes, _ = resolve_model(mid)
        except Exception:  # a model the catalog refuses is not offered
            continue
        first = routes[0]
        d = entry.get("defaults") or {}
        seconds = int(d.get("seconds", first.durations[0]))
        resolution = d.get("resolution") or next(iter(first.sizes))
        try:
            usd = first.cost(seconds, resolution)
        except KeyError:
            continue
        name = PROVIDER_NAMES.get(first.provider, first.provider)
        title = _short_title(entry.get("title", mid))
        if title.lower().endswith(f" on {name.lower()}"):  # "fal · Kling 2.5 Turbo on fal": the group says it
            title = title[: -len(f" on {name}")]
        rows.append((1, name, f"{name} · {title} · {fmt_money(usd)} per {seconds} s clip", mid))
    rows.sort(key=lambda r: (r[0], r[1].lower(), r[2]))
    return [(label, mid) for _, _, label, mid in rows]


def _short_title(title: str) -> str:
    """ "Google Veo 3.1 Fast (8 s, 720p/1080p, …)" → "Google Veo 3.1 Fast"."""
    return title.split(" (")[0].strip()


def local_video_models() -> list[Any]:
    """The registry's open-weight video models (Wan; tiny-wan everywhere), run on this machine at $0. The
    tiny ones are offered only where there is no GPU (where they are the only ones that can run)."""
    from masuka_nb.models.registry import list_models

    return [*list_models(task="text-to-video"), *list_models(task="image-to-video")]


class ModelControls:
    """What a video model takes, from the catalog or the registry: durations, resolutions, ratios, image
    modes, a motion control, steps (local models)."""

    def __init__(self, durations: tuple[int, ...], resolutions: tuple[str, ...], ratios: tuple[str, ...],
                 text: bool, image: bool, *, motion: bool = False, steps: int | None = None,
                 local: bool = False) -> None:
        self.durations, self.resolutions, self.ratios = durations, resolutions, ratios
        self.text, self.image, self.motion, self.steps, self.local = text, image, motion, steps, local


def model_controls(model_id: str) -> ModelControls:
    local = {spec.id: spec for spec in local_video_models()}.get(model_id)
    if local is not None:  # seconds become frames at the model's rate, up to its most frames
        longest = max(1, local.max_frames // max(1, local.fps))
        sides = sorted({f"{min(size)}p" for size in local.sizes}, key=lambda x: int(x[:-1]))
        ratios = tuple(sorted({"16:9" if w > h else "9:16" if w < h else "1:1" for w, h in local.sizes}))
        return ModelControls(tuple(range(1, longest + 1)), tuple(sides), ratios, local.task == "text-to-video",
                             local.task == "image-to-video" or "i2v" in local.id or "ti2v" in local.id,
                             steps=local.default_steps, local=True)
    from masuka_nb.hosted.catalog import resolve_model

    _, routes, _ = resolve_model(model_id)
    first = routes[0]  # the route an estimate picks: offer what it takes, so nothing is silently changed
    durations = sorted(first.durations)
    resolutions = sorted(first.sizes, key=lambda x: (len(x), x))
    ratios = sorted({ratio for table in first.sizes.values() for ratio in table})
    modes = set(first.modes)
    return ModelControls(tuple(durations), tuple(resolutions), tuple(ratios), "t2v" in modes, "i2v" in modes,
                         motion="motion_intensity" in (first.controls or {}))


class VideoPanel(Panel):
    title = "Video"

    def __init__(self, *, generator: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._generator = generator
        self.result: Any = None
        self.estimate_result: Any = None
        self._controls: ModelControls | None = None
        models = video_models()
        ids = [mid for _, mid in models]
        from masuka_nb.hosted.catalog import DEFAULT_VIDEO_MODEL

        self.prompt = widgets.Textarea(placeholder="A slow dolly shot through a neon-lit market in the rain…",
                                       layout=widgets.Layout(width="100%", height="84px"))
        self.model = widgets.Dropdown(options=models, value=DEFAULT_VIDEO_MODEL if DEFAULT_VIDEO_MODEL in ids
                                      else ids[0], description="Model", style=LABEL_STYLE, layout=wide("100%"))
        self.model_info = widgets.HTML("")
        self.duration = widgets.Dropdown(options=[("5 s", 5)], value=5, description="Length", style=LABEL_STYLE,
                                         layout=wide("200px"))
        self.resolution = widgets.Dropdown(options=["720p"], value="720p", description="Resolution",
                                           style=LABEL_STYLE, layout=wide("220px"))
        self.ratio = widgets.Dropdown(options=RATIOS, value="16:9", description="Aspect", style=LABEL_STYLE,
                                      layout=wide("200px"))
        self.motion = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="Motion",
                                          style=LABEL_STYLE, layout=wide("320px"))
        self.steps = widgets.IntText(value=3, description="Steps", style=LABEL_STYLE, layout=wide("200px"))
        self.image = widgets.Text(placeholder="optional: image path or https URL", description="Start image",
                                  style=LABEL_STYLE, layout=wide())
        self.image_thumb = widgets.Image(format="png", layout=widgets.Layout(width="120px", height="auto",
                                                                             display="none"))
        self.image_thumb.add_class("mk-thumb")
        self.max_cost = widgets.FloatText(value=0.0, step=0.5, description="Max cost $", style=LABEL_STYLE,
                                          layout=wide("220px"))
        self.max_cost_note = widgets.HTML('<span class="mk-muted">0 = no limit per clip</span>')
        self.generate_button = widgets.Button(description="Generate video", button_style="primary", icon="film",
                                              layout=widgets.Layout(width="auto"))
        self.generate_button.add_class("mk-primary")
        self.confirm_html = widgets.HTML("")
        self.confirm_button = button("Confirm and pay", "check", style="warning")
        show(self.confirm_button, False)
        self.cost_badge = widgets.HTML("")
        self.form_notice = Notice()
        self.pane = ResultPane(stop=self.stop_button, notice=self.notice, empty="Your clips appear here.",
                               reveal_with=self.reveal)
        self.progress = self.pane.progress
        self.feed = self.pane.feed
        self.jobs_html = widgets.HTML("")
        self.refresh_button = button("Refresh", "refresh")
        self.resume_button = button("Resume unfinished jobs", "play")
        self.fields = {"prompt": self.prompt, "model": self.model, "seconds": self.duration, "duration": self.duration,
                       "resolution": self.resolution, "aspect_ratio": self.ratio, "image": self.image,
                       "max_cost": self.max_cost, "steps": self.steps, "motion_intensity": self.motion}
        self.labels = {"prompt": "The prompt", "seconds": "Length", "duration": "Length", "resolution": "Resolution",
                       "aspect_ratio": "Aspect", "image": "Start image", "max_cost": "Max cost", "steps": "Steps",
                       "budget_usd": "The session budget", "model": "Model"}
        self.defaults = {"max_cost": 0.0}
        self._confirmed: tuple[Any, ...] | None = None  # the paid request the user said yes to
        self.model.observe(self._on_model_change, names="value")
        for box in (self.duration, self.resolution, self.ratio, self.image, self.max_cost, self.steps):
            box.observe(self._on_form_change, names="value")
        self.image.observe(self._on_image_change, names="value")
        self.prompt.observe(self._on_prompt_change, names="value")
        self.generate_button.on_click(self._on_generate_button_click)
        self.confirm_button.on_click(self._on_confirm_button_click)
        self.refresh_button.on_click(self._on_refresh_button_click)
        self.resume_button.on_click(self._on_resume_button_click)
        form = widgets.VBox([
            card(section("Prompt"), self.prompt, self.cost_badge, field_row(self.generate_button),
                 self.confirm_html, field_row(self.confirm_button), self.form_notice),
            card(section("Model & settings"), self.model, self.model_info,
                 field_row(self.duration, self.resolution, self.ratio), field_row(self.steps), self.motion,
                 self.image, self.image_thumb, field_row(self.max_cost, self.max_cost_note)),
            card(section("Hosted jobs", "paid jobs survive a restart"), field_row(self.refresh_button,
                                                                                    self.resume_button),
                 self.jobs_html),
        ], layout=widgets.Layout(width="100%"))
        self.split_box = split(form, self.pane)
        self.children = [self.split_box]
        self._busy_buttons = [self.resume_button, self.confirm_button]
        # The cost badge and the jobs table fill in when the tab is first opened or the form changes
        self._live = False
        self._on_model_change({"new": self.model.value})
        self._live = True

    def opened(self) -> None:
        """The tab came into view: show the current cost and the job store (once, then they follow the form);
        models answered by the offline simulator here are listed as free (the engine's rule)."""
        self._label_simulated()
        if not self.cost_badge.value:
            self._on_form_change({})
        self.refresh()

    def _label_simulated(self) -> None:
        """A model whose provider is the offline simulator here costs nothing: its label says so."""
        from masuka_nb.hosted.catalog import resolve_model

        options, changed = [], False
        for label, mid in self.model.options:
            parts = label.split(" · ")
            if len(parts) == 3 and "$" in parts[2]:
                try:
                    provider = resolve_model(mid)[1][0].provider
                except Exception:  # not a hosted model: keep its label
                    provider = ""
                if provider and self._simulated_provider(provider):
                    label, changed = f"{parts[0]} simulator · {parts[1]} · free here", True
            options.append((label, mid))
        if changed:
            keep = self.model.value
            self._live = False
            self.model.options = options
            self.model.value = keep
            self._live = True

    def _simulated_provider(self, provider: str) -> bool:
        try:
            return bool(self.generator.simulated(provider))
        except Exception:  # an engine without the rule: treat as paid
            return False

    @property
    def generator(self) -> Any:
        if self._generator is None:
            from masuka_nb.video import VideoGenerator

            self._generator = VideoGenerator()
        return self._generator

    @property
    def player(self) -> widgets.Video:
        return self.pane.video

    # ---- reading the form ---------------------------------------------------------------------------
    def request(self) -> dict[str, Any]:
        c = self._controls or model_controls(self.model.value)
        image = self.image.value.strip() or None
        if image is None and not c.text:
            raise InvalidRequestError("This model makes video from a start image: give one first.",
                                      argument="image", value=None, hint="A path or an https URL of a picture.")
        if image is not None and not image.startswith(("http://", "https://")) and not Path(image).expanduser().is_file():
            raise InvalidRequestError(f"There is no image at {image}.", argument="image", value=image,
                                      hint="Give the path of a picture, an https URL, or clear the field.")
        req = {"prompt": self.prompt.value, "model": self.model.value, "seconds": int(self.duration.value),
               "resolution": self.resolution.value, "aspect_ratio": self.ratio.value if len(c.ratios) > 1 else None,
               "image": image if c.image else None}
        if c.motion:
            req["motion_intensity"] = float(self.motion.value)
        return req

    def _max_cost(self) -> float | None:
        value = float(self.max_cost.value)
        if not 0 <= value <= 1000:
            raise InvalidRequestError(f"Max cost ${value:g} is out of range: 0 (no limit) to $1000.",
                                      argument="max_cost", value=value, hint="Type 0 for no limit, or an amount.")
        return value or None

    def _check(self) -> dict[str, Any]:
        """Every check the engine makes before paying, in the order a person fixes things: the prompt first,
        then the model's limits, the price against Max cost and the budget, and a key to pay with."""
        if not self.prompt.value.strip():
            raise InvalidRequestError("Type a prompt first: what should the clip show?", argument="prompt",
                                      value="", hint="e.g. waves at night, slow pan")
        request = self.request()
        max_cost = self._max_cost()
        c = self._controls or model_controls(self.model.value)
        if c.local:
            steps = int(self.steps.value)
            if not 1 <= steps <= 100:
                raise InvalidRequestError(f"Steps {steps} is out of range: 1 to 100.", argument="steps",
                                          value=steps, hint="More steps: slower, finer.")
            est = self.generator.estimate(**request)
            return {"request": request, "max_cost": None, "estimate": est, "steps": steps, "local": True}
        est = self.generator.check(**request, max_cost=max_cost)
        return {"request": request, "max_cost": max_cost, "estimate": est, "local": False}

    # ---- handlers ---------------------------------------------------------------------------------
    def _on_model_change(self, change: dict[str, Any]) -> None:
        c = self._controls = model_controls(change["new"])
        keep = self.duration.value
        self.duration.options = [(f"{d} s", d) for d in c.durations]
        self.duration.value = keep if keep in c.durations else c.durations[len(c.durations) // 2]
        keep = self.resolution.value
        self.resolution.options = list(c.resolutions)
        self.resolution.value = keep if keep in c.resolutions else c.resolutions[-1]
        keep = self.ratio.value
        self.ratio.options = list(c.ratios) or ["16:9"]
        self.ratio.value = keep if keep in self.ratio.options else self.ratio.options[0]
        # a control the model does not have is not shown (one fixed value is said in the chips instead)
        show(self.duration, len(c.durations) > 1)
        show(self.resolution, len(c.resolutions) > 1)
        show(self.ratio, len(c.ratios) > 1)
        show(self.motion, c.motion)
        show(self.steps, c.steps is not None)
        if c.steps is not None:
            self.steps.value = c.steps
        show(self.image, c.image)
        show(self.image_thumb, c.image and bool(self.image_thumb.value))
        self.image.placeholder = ("required: a start image (path or https URL)" if not c.text else
                                  "optional: a start image (path or https URL) to animate")
        show(self.max_cost, not c.local)
        show(self.max_cost_note, not c.local)
        chips = []
        if len(c.durations) == 1:
            chips.append(f"{c.durations[0]} s clips")
        if len(c.resolutions) == 1:
            chips.append(c.resolutions[0])
        chips.append("text or image to video" if c.text and c.image else "image to video" if c.image
                     else "text to video")
        if c.local:
            chips.append("runs here, free")
        self.model_info.value = "".join(f'<span class="mk-chip">{esc(x)}</span>' for x in chips)
        self._on_form_change({})

    def _on_image_change(self, change: dict[str, Any]) -> None:
        text = str(change["new"]).strip()
        path = Path(text).expanduser() if text and not text.startswith(("http://", "https://")) else None
        if path is not None and path.is_file():
            try:
                from PIL import Image

                with Image.open(path) as im:
                    self.image_thumb.value = thumb_png(im.convert("RGB"), 120)
                show(self.image_thumb)
                return
            except OSError:
                pass
        self.image_thumb.value = b""
        show(self.image_thumb, False)

    def _on_prompt_change(self, _change: dict[str, Any]) -> None:
        """A changed request needs a new yes (the price does not depend on the words)."""
        self._forget_confirm()

    def _forget_confirm(self) -> None:
        self._confirmed = None
        show(self.confirm_button, False)
        self.confirm_html.value = ""

    def _on_form_change(self, _change: dict[str, Any]) -> None:
        """The cost follows the form: a quick local estimate (no network), shown next to the prompt."""
        self._forget_confirm()
        if not self._live:
            return
        try:
            est = self.generator.estimate(**{**self.request(), "prompt": self.prompt.value or "a clip"})
        except Exception:  # a form mid-edit must not fail on the estimate
            self.cost_badge.value = ""
            return
        self.estimate_result = est
        self.cost_badge.value = cost_badge(est, simulated=self._simulated(est), steps=self.steps.value)

    def _on_generate_button_click(self, _b: widgets.Button) -> None:
        self.form_notice.clear()
        try:
            plan = self._check()
        except Exception as exc:  # every check first: nothing is offered for payment that would then fail
            self._check_failed("video", exc)
            return
        est = plan["estimate"]
        self.estimate_result = est
        if est.usd > 0 and self._confirmed != self._key(plan):  # a paid run asks once, with its price
            self.confirm_html.value = (f'<div class="mk-notice mk-warning" data-testid="mk-confirm">This clip costs '
                                       f"<b>{esc(fmt_money(est.usd))}</b> on {esc(PROVIDER_NAMES.get(est.provider, est.provider))}"
                                       f"{esc(_budget_words(est))}. Confirm to pay and start.</div>")
            show(self.confirm_button)
            self._pending = plan
            return
        self._run("video", self._generate, check=lambda: plan)

    def _on_confirm_button_click(self, _b: widgets.Button) -> None:
        plan = getattr(self, "_pending", None)
        self._forget_confirm()
        if plan is None:
            return
        self._confirmed = self._key(plan)
        self._run("video", self._generate, check=self._check)

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self.refresh()

    def _on_resume_button_click(self, _b: widgets.Button) -> None:
        self._run("resume", self._resume)

    def _check_failed(self, what: str, exc: BaseException) -> None:
        keep, self.notice = self.notice, self.form_notice
        try:
            self._fail(what, exc)
        finally:
            self.notice = keep

    # ---- work ---------------------------------------------------------------------------------------
    @staticmethod
    def _key(plan: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted((k, str(v)) for k, v in plan["request"].items()))

    def _simulated(self, est: Any) -> bool:
        try:
            return bool(self.generator.simulated(est.provider))
        except Exception:  # an older generator without the rule: treat as paid
            return False

    def _generate(self, plan: dict[str, Any]) -> None:
        self.started()
        self.progress.start("submitting…" if not plan["local"] else "loading the model…")
        self.pane.reveal()
        request = plan["request"]
        try:
            if plan["local"]:
                front = engine_api("masuka_nb.video.local", "generate_from_front_door")
                result = front(request["prompt"], model=request["model"], duration=request["seconds"],
                               resolution=request["resolution"], image=request.get("image"),
                               aspect_ratio=request.get("aspect_ratio"), steps=plan["steps"],
                               progress=self.progress, cancel=self.cancel_token)
            else:
                result = self.generator.generate(**request, max_cost=plan["max_cost"], progress=self.progress,
                                                 cancel=self.cancel_token)
        finally:
            if not plan["local"]:
                self.refresh()
        self.result = result
        self.present(result)

    def _resume(self) -> None:
        from masuka_nb import jobs

        self.progress.start("resuming unfinished jobs…")
        resumed = list(jobs.resume_all(progress=False, cancel=self.cancel_token) or [])
        self.refresh()
        if not resumed:
            self.progress.finish("nothing to resume")
            self.notice.show("No unfinished jobs.", "info")
            return
        done = [j for j in resumed if j.state == "completed"]
        failed = [j for j in resumed if j.error is not None]
        for job in done:
            if job.record.kind == "video":
                self.present(job.result())
        self.progress.finish(f"{len(done)} of {len(resumed)} resumed jobs finished", ok=not failed)
        text = f"{len(done)} of {len(resumed)} resumed job{'s' if len(resumed) != 1 else ''} finished"
        if failed:
            from masuka_nb.ui.helpers import error_info

            text += "; " + "; ".join(error_info(_stored(j)).message for j in failed[:3])
        self._say(text, "warning" if failed else "ok")

    def present(self, result: Any) -> None:
        """The clip on the stage (with Download), its facts under it, and in the feed."""
        import time as _time

        path = Path(str(result.path))
        data = path.read_bytes()
        cost = 0.0 if result.provider == "local" else (result.cost or 0.0)
        simulated = not cost and any(str(n).startswith("SIMULATOR") for n in result.notes)  # free: the engine's rule
        total = result.elapsed_s
        # the caption says the length of the file received (a provider or the simulator may send a shorter
        # clip than was asked for); what was asked for goes beside it when they differ
        length = clip_seconds(data)
        if length is None:
            length = float(result.duration_s)
        asked = float(result.duration_s or 0)
        said = f"{fmt_number(round(length, 1))} s"
        bits = [result.model, said, "free" if not cost else fmt_money(cost),
                PROVIDER_NAMES.get(result.provider, result.provider)]
        if total:
            bits.append(fmt_duration(total))
        caption = " · ".join(str(b) for b in bits if b)
        notes = _clip_notes(result.notes)
        facts = [("model", result.model), ("made by", PROVIDER_NAMES.get(result.provider, result.provider)),
                 ("provider model", result.provider_model), ("length", said + (f" (asked for {fmt_number(asked)} s)"
                                                               if asked and abs(asked - length) >= 0.5 else "")),
                 ("cost", "$0 (offline simulator)" if simulated else "$0 (this machine)" if result.provider == "local"
                  else fmt_money(cost)), ("file", str(path))]
        thumb = getattr(result, "thumbnail", None)
        picture = None
        if thumb and Path(str(thumb)).is_file():
            from PIL import Image

            with Image.open(thumb) as im:
                picture = im.convert("RGB")
        self.pane.show_video(data, caption=caption, name=path.name, details=_details(facts),
                             size=picture.size if picture is not None else None)
        self.pane.set_notes(notes)
        if picture is None:
            from PIL import Image

            picture = Image.new("RGB", (160, 90), (30, 32, 40))
        item = FeedItem(thumb_png(picture, 120), caption, pick=lambda r=result: self.present(r), key=str(path))
        if self.feed.find(str(path)) is None:
            self.feed.add(FeedRun(f"{_time.strftime('%H:%M')} · {caption}", [item]))
        self.progress.finish("clip ready")
        self.pane.reveal()
        self.notice.show(f"Clip ready: {said} from {result.model}" + (
            f" (you asked for {fmt_number(asked)} s)." if asked and abs(asked - length) >= 0.5 else "."), "ok")

    def refresh(self) -> None:
        """Re-read the job store (other tabs, a restart or another process may have changed it)."""
        try:
            from masuka_nb import jobs
        except ImportError:
            self.jobs_html.value = '<div class="mk-empty">The hosted-jobs engine is not installed.</div>'
            return
        self.jobs_html.value = jobs_cards_html(list(jobs.list()))

    # ---- outcomes -----------------------------------------------------------------------------------
    def _on_stopped(self, run: Any) -> None:
        self.progress.finish("stopped", ok=False)

    def _on_failed(self, info: Any) -> None:
        if self.progress.layout.display != "none" and self.progress.bar.bar_style != "success":
            self.progress.finish("did not finish", ok=False)

    def _fixes(self, info: Any) -> dict[str, Any]:
        out = super()._fixes(info)
        if FIX_RESUME in info.fixes:
            out["Resume"] = lambda: self._run("resume", self._resume)
        if info.code == "MODEL_RETIRED":
            live = self.model.options[0][1] if self.model.options else None
            if live:
                out["Use a live model"] = lambda: setattr(self.model, "value", live)
        return out


def _stored(job: Any) -> Any:
    try:
        return job._stored_error()
    except Exception as exc:  # an old record: a plain error is enough to say it failed
        return exc


def _budget_words(est: Any) -> str:
    if est.budget_usd is None:
        return ""
    return f" (this session: {fmt_money(est.session_spent_usd)} of your {fmt_money(est.budget_usd)} budget spent)"


def cost_badge(est: Any, *, simulated: bool = False, steps: int | None = None) -> str:
    """The price of what the form describes, next to the prompt: "$0.80 for 8 s on CometAPI"; a local run
    says its steps too (they set its time, as seconds set a hosted one's price)."""
    where = PROVIDER_NAMES.get(est.provider, est.provider)
    if est.provider == "local":
        price, rest = "Free", f"runs on this machine · {est.seconds} s clip" + (f" · {steps} steps" if steps else "")
    elif simulated:
        price, rest = "$0", f"offline {where} simulator · {est.seconds} s test clip"
    else:
        price, rest = fmt_money(est.usd), f"for {est.seconds} s on {where} · price of {est.price_date}"
    changes = [plain(c)[0] for c in est.changes]
    more = f'<div class="mk-muted">{esc("; ".join(c for c in changes if c))}</div>' if any(changes) else ""
    return (f'<div class="mk-cost" data-testid="mk-cost"><b>{esc(price)}</b> <span class="mk-muted">{esc(rest)}'
            f"</span>{more}</div>")


def clip_seconds(data: bytes) -> float | None:
    """The length of an MP4 clip from its movie header (`moov/mvhd`: duration / timescale), or None when the
    file has none that can be read."""
    import struct

    from masuka_nb.video.media import mp4_boxes

    where = mp4_boxes(data).get("moov/mvhd")
    if where is None:
        return None
    at, size = where
    try:
        version = data[at]
        if version == 1:
            scale, duration = struct.unpack(">IQ", data[at + 20:at + 32])
        else:
            scale, duration = struct.unpack(">II", data[at + 12:at + 20])
    except (IndexError, struct.error):
        return None
    return duration / scale if scale and size >= 20 else None


def _clip_notes(notes: list[str]) -> list[str]:
    """The engine's own notes about a clip, in plain words (the simulator's note said once, plainly)."""
    out = []
    for note in notes:
        if str(note).startswith("SIMULATOR"):
            out.append("Made by a simulator on this machine: a test pattern, not a real clip.")
            continue
        text = plain(str(note))[0]
        if text:
            out.append(text)
    return out


def _details(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows if v not in ("", None))
    return (f'<details class="mk-recipe-box"><summary>About this clip</summary>'
            f'<table class="mk-kv" data-testid="mk-clip-facts">{body}</table></details>')


def jobs_cards_html(jobs: list[Any], *, limit: int = 12) -> str:
    """The hosted jobs as small cards (a table breaks into letter columns on a phone)."""
    if not jobs:
        return '<div class="mk-empty">No hosted jobs yet.</div>'
    cards = []
    for job in jobs[:limit]:
        rec = job.record
        cost = rec.cost_usd if rec.cost_usd is not None else rec.estimate_usd
        simulated = not cost and any(str(n).startswith("SIMULATOR") for n in rec.notes or [])
        money = ("free (simulator)" if simulated else fmt_money(cost) + ("" if rec.cost_usd is not None else " est."))
        state = {"completed": "done", "failed": "failed", "cancelled": "stopped"}.get(rec.state, rec.state)
        cards.append(
            f'<div class="mk-job" data-job-id="{esc(job.id)}" title="job {esc(job.id)}">'
            f'<div class="mk-job-top"><b>{esc(rec.model)}</b>'
            f'<span class="mk-chip mk-state-{esc(rec.state)}">{esc(state)}</span></div>'
            f'<div class="mk-muted">{esc(rec.kind)} · {esc(PROVIDER_NAMES.get(rec.provider, rec.provider))} · '
            f'{esc(money)}</div><div class="mk-job-prompt">{esc((rec.prompt or "")[:80])}</div></div>')
    more = f'<div class="mk-muted">…and {len(jobs) - limit} more</div>' if len(jobs) > limit else ""
    return f'<div class="mk-jobs" data-testid="mk-jobs">{"".join(cards)}</div>{more}'


jobs_table_html = jobs_cards_html  # the Dashboard's name for it
