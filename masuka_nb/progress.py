"""One progress protocol for every engine: `ProgressEvent`s to a callback, and a `CancelToken`.

Engines call ``reporter.update(step)``; a sink turns events into a tqdm bar (notebooks), a widget
(the app) or a list (tests). Engines never know which. A cancel token is checked at each step;
`KeyboardInterrupt` (Colab's stop button) is treated the same way by the engines.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import CancelledError

__all__ = [
    "CancelToken",
    "LineSink",
    "ProgressCallback",
    "ProgressEvent",
    "ProgressReporter",
    "TqdmSink",
    "collect_events",
    "stop_between_blocks",
]


@dataclass(frozen=True)
class ProgressEvent:
    """One moment of a long task. `preview` is a small PIL image when the engine was asked for one."""

    stage: str
    step: int
    total: int
    message: str = ""
    elapsed_s: float = 0.0
    eta_s: float | None = None
    preview: Any = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Thread-safe flag an engine checks between steps (and, through `stop_between_blocks`, between a model's
    blocks). `cancel()` from a button or another thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled by the user") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def reset(self) -> None:
        self._event.clear()
        self.reason = ""

    def raise_if_cancelled(self, what: str = "the task") -> None:
        if self._event.is_set():
            raise CancelledError(f"{what} was cancelled: {self.reason}.", argument="cancel", value=self.reason)


@contextlib.contextmanager
def stop_between_blocks(models: Iterable[Any], cancel: CancelToken | None, what: str) -> Iterator[None]:
    """Let a cancel stop `models` inside a step: the token is checked before each block of their block lists.

    A step is the unit the progress line counts, but on a T4 one FLUX denoising step takes seconds and one QLoRA
    training step several; one of its transformer blocks takes tens of milliseconds. So Stop acts within the
    block in flight rather than at the end of the step. The check raises the same `CancelledError` as the check
    between steps, and the hooks are removed on the way out (a model's hooks stay its own). With gradient
    checkpointing the blocks run again during backward, so a training step stops there too. No torch here:
    any module with `.modules()` and `register_forward_pre_hook` (a `torch.nn.Module`) will do.
    """
    if cancel is None:
        yield
        return

    def check(_module: Any, _args: Any) -> None:
        cancel.raise_if_cancelled(what)

    # The blocks are the entries of the model's ModuleLists (transformer_blocks, single_transformer_blocks,
    # layers, blocks...): granular enough, and few enough that the check costs nothing next to a block.
    handles = [block.register_forward_pre_hook(check) for model in models for module in model.modules()
               if type(module).__name__ == "ModuleList" for block in module]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class TqdmSink:
    """Shows a task's events as one `tqdm.auto` bar (a widget bar in notebooks, text in a terminal).

    One bar per task: a new stage (loading, then denoising) renames the same bar instead of opening
    another, and the closing `done` event of a finished stage does not open a fresh one. The bar shows
    counts, elapsed time and ETA, never a rate (a few-ms step reads as "559240 it/s").
    """

    BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"

    def __init__(self, *, leave: bool = False, **tqdm_kwargs: Any) -> None:
        self._bar = None
        self._stage = None
        self._finished: tuple[str, int] | None = None
        self._leave = leave
        self._kwargs = {"bar_format": self.BAR_FORMAT, "mininterval": 0.2, **tqdm_kwargs}

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm.auto import tqdm

        if self._bar is None and self._finished == (event.stage, event.total) and event.step >= event.total:
            return  # the finished stage's closing event: already shown as complete
        if self._bar is None:
            self._bar = tqdm(total=event.total, desc=event.stage, leave=self._leave, **self._kwargs)
        elif event.stage != self._stage or event.total != self._bar.total:
            self._bar.reset(total=event.total)
            self._bar.set_description_str(event.stage, refresh=False)
        self._stage = event.stage
        self._bar.n = event.step
        if event.message:
            self._bar.set_postfix_str(event.message, refresh=False)
        self._bar.refresh()
        if event.step >= event.total:
            self._finished = (event.stage, event.total)
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LineSink:
    """Progress as whole lines, for logs and pipes (no TTY, no notebook): a line when a stage starts,
    at each quarter, and when it ends, each newline-terminated, with counts and seconds (no rates)."""

    def __init__(self, stream: Any = None, *, quarters: int = 4) -> None:
        self._stream = stream
        self._quarters = max(1, quarters)
        self._key: tuple[str, int] | None = None
        self._shown = -1

    def __call__(self, event: ProgressEvent) -> None:
        import sys

        key = (event.stage, event.total)
        if key != self._key:
            self._key, self._shown = key, -1
        mark = self._quarters if event.step >= event.total else int(event.fraction * self._quarters)
        if mark <= self._shown:
            return
        self._shown = mark
        text = f"{event.stage}: {min(event.step, event.total)}/{event.total} ({event.elapsed_s:.1f} s)"
        if event.message:
            text += f" {event.message}"
        stream = self._stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()


def _draws_bars() -> bool:
    """True where a tqdm bar renders well (a notebook widget bar, a terminal); False into a pipe or a log file."""
    import sys

    from tqdm.auto import tqdm

    if any(cls.__name__ == "tqdm_notebook" for cls in tqdm.__mro__):
        return True  # a notebook (widget) bar
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def collect_events() -> tuple[list[ProgressEvent], ProgressCallback]:
    """A list and a callback that appends to it (for tests and for the app's history)."""
    events: list[ProgressEvent] = []
    return events, events.append


def _default_sink() -> ProgressCallback | None:
    mode = settings().progress
    if mode == "off":
        return None
    return TqdmSink() if mode == "tqdm" or _draws_bars() else LineSink()


class ProgressReporter:
    """What an engine holds: computes elapsed time and ETA, forwards events, checks cancellation.

    ``progress`` may be a callback, None (the default sink from settings: a tqdm bar unless
    MASUKA_PROGRESS=off) or False (silent).
    """

    def __init__(
        self,
        stage: str,
        total: int,
        *,
        progress: ProgressCallback | bool | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        if progress is not None and not isinstance(progress, bool) and not callable(progress):
            from masuka_nb.errors import InvalidRequestError

            raise InvalidRequestError(f"`progress` must be True, False, None or a callable, not {type(progress).__name__}.",
                                      argument="progress", value=progress, hint="e.g. progress=print, or a list's append")
        if cancel is not None and not callable(getattr(cancel, "raise_if_cancelled", None)):
            from masuka_nb.errors import InvalidRequestError

            raise InvalidRequestError(f"`cancel` must be a CancelToken, not {type(cancel).__name__}.", argument="cancel",
                                      value=cancel, hint="e.g. token = masuka_nb.CancelToken(); cancel=token")
        if progress is None or progress is True:
            self._sink = _default_sink()
        elif progress is False:
            self._sink = None
        else:
            self._sink = progress
        self.stage = stage
        self.total = max(0, int(total))
        self.cancel = cancel
        self._start = time.perf_counter()
        self.step = 0

    def check(self, what: str | None = None) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled(what or self.stage)

    def update(self, step: int, *, message: str = "", preview: Any = None, **data: Any) -> None:
        self.step = step
        elapsed = time.perf_counter() - self._start
        eta = (elapsed / step) * (self.total - step) if step > 0 and self.total else None
        if self._sink is not None:
            self._sink(ProgressEvent(self.stage, step, self.total, message, elapsed, eta, preview, data))

    def restage(self, stage: str, total: int) -> None:
        """Start a new stage (e.g. 'download' then 'denoise') with the same sink and token."""
        self.stage = stage
        self.total = max(0, int(total))
        self.step = 0
        self._start = time.perf_counter()

    def done(self, message: str = "done") -> None:
        self.update(self.total, message=message)
