"""How the app runs long work so that Stop can reach it, in every front end.

Two ways, chosen per front end (decision 2 in the architecture notes):

- **worker** (JupyterLab, Voila, VS Code, any Jupyter): one worker thread per app runs the runs one after
  another, in the order they were asked for; what waits is listed in the app's queue strip (each with ✕).
  A click callback only queues and returns, so the kernel is free to deliver a Stop click while the work
  runs: the engine sees the cancel token before its model's next block and the app says "Stopped".
- **inline** (Colab): Colab does not show widget updates made from a background thread
  (googlecolab/colabtools#3373), so the work runs inside the click callback, progress streams from there,
  and the way to stop is Colab's own ■ beside the cell (a KeyboardInterrupt, cleaned up by the engine). No
  Stop button is shown there: it could not be clicked while the kernel is busy.

Nothing here knows about a particular tab: a `Run` is a label, a function and a cancel token.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken
from masuka_nb.ui.helpers import esc

__all__ = ["RUN_MODES", "Run", "RunQueue", "default_mode"]

log = get_logger(__name__)
RUN_MODES = ("worker", "inline")


def default_mode() -> str:
    """"inline" in Colab (updates from threads do not render there), "worker" in every other front end."""
    from masuka_nb.runtime import in_colab

    return "inline" if in_colab() else "worker"


@dataclass(eq=False)
class Run:
    """One piece of long work asked for by a tab: `fn()` runs with `token` set; `owner` says whose it is."""

    label: str
    fn: Callable[[], Any]
    owner: Any = None
    token: CancelToken = field(default_factory=CancelToken)
    state: str = "waiting"  # waiting → running → done | stopped | failed; or removed (✕ while waiting)
    asked_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    stop_asked_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def stop(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Ask the run to stop (inside the step in flight, before its model's next block; a waiting run simply
        never starts)."""
        if self.stop_asked_at is None:
            self.stop_asked_at = clock()
        self.token.cancel("stopped from the app")


class RunQueue(widgets.HBox):
    """The app's runs: one worker thread and a visible queue ("Running: … · Waiting: … ✕", shown while a
    run waits), or inline.

    `submit(run)` returns at once in worker mode; in inline mode it returns when the run has ended.
    `on_start(run)` and `on_end(run, error)` are the owner's hooks (called on the thread that runs it).
    """

    def __init__(self, *, mode: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.mode = mode or default_mode()
        if self.mode not in RUN_MODES:
            raise ValueError(f"mode must be one of {RUN_MODES}, not {mode!r}")
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: collections.deque[Run] = collections.deque()
        self._wake = threading.Condition(self._lock)
        self.current: Run | None = None
        self.history: list[Run] = []  # every run of this app, in the order they ended (tests, the feed)
        self._thread: threading.Thread | None = None
        self.label = widgets.HTML("")
        super().__init__([self.label], layout=widgets.Layout(display="none", flex_flow="row wrap",
                                                             align_items="center", grid_gap="6px"))
        self.add_class("mk-queue")

    # ---- asking --------------------------------------------------------------------------------------
    def submit(self, run: Run) -> Run:
        run.asked_at = self._clock()
        if self.mode == "inline":
            self._execute(run)
            self._settled(run)
            return run
        with self._lock:
            self._waiting.append(run)
            self._ensure_worker()
            self._wake.notify()
        self._render()
        return run

    def remove(self, run: Run) -> bool:
        """Take a waiting run out of the queue (its ✕); False when it has already started."""
        with self._lock:
            if run not in self._waiting:
                return False
            self._waiting.remove(run)
        run.state = "removed"
        run.token.cancel("removed from the queue")
        run.done.set()
        owner_end = getattr(run.owner, "_run_removed", None)
        if owner_end is not None:
            owner_end(run)
        self._render()
        return True

    def waiting(self, owner: Any = None) -> list[Run]:
        with self._lock:
            return [r for r in self._waiting if owner is None or r.owner is owner]

    def ahead_of(self, run: Run) -> int:
        """How many runs start before `run` (the running one included)."""
        with self._lock:
            queue = list(self._waiting)
            running = 1 if self.current is not None else 0
        return running + (queue.index(run) if run in queue else 0)

    def idle(self) -> bool:
        with self._lock:
            return self.current is None and not self._waiting

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued run has ended (scripts and tests); True if it did in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.idle():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # ---- running -------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="masuka-app-worker", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting:
                    if not self._wake.wait(timeout=60):  # an idle app keeps no thread around
                        self._thread = None
                        return
                run = self._waiting.popleft()
                self.current = run
            self._render()
            try:
                self._execute(run)
            finally:
                with self._lock:
                    self.current = None
                self._render()
                self._settled(run)

    @staticmethod
    def _settled(run: Run) -> None:
        """The owner's last word on a run, once the queue strip is drawn again (nothing above the tab moves
        after it: what the run made can be brought into view)."""
        settle = getattr(run.owner, "_run_settled", None)
        if settle is None:
            return
        try:
            settle(run)
        except Exception as exc:  # never kill the worker
            log.error("ui.run_settle_failed", run=run.label, error=repr(exc), exc_info=exc)

    def _execute(self, run: Run) -> None:
        run.state, run.started_at = "running", self._clock()
        owner = run.owner
        error: BaseException | None = None
        try:
            if owner is not None:
                owner._run_started(run)
            run.fn()
        except KeyboardInterrupt as exc:  # Colab's ■: the engine has cleaned up already
            error = exc
        except Exception as exc:  # a thread or a click handler would swallow it: the owner shows it
            error = exc
        finally:
            run.ended_at = self._clock()
            from masuka_nb.errors import CancelledError

            if error is None:
                run.state = "done"
            elif isinstance(error, (KeyboardInterrupt, CancelledError)) or run.token.cancelled:
                run.state = "stopped"
            else:
                run.state = "failed"
            self.history.append(run)
            try:
                if owner is not None:
                    owner._run_ended(run, error)
            except Exception as exc:  # showing the end must never kill the worker
                log.error("ui.run_end_failed", run=run.label, error=repr(exc), exc_info=exc)
            run.done.set()

    # ---- the visible queue ----------------------------------------------------------------------------
    def _render(self) -> None:
        with self._lock:
            current, waiting = self.current, list(self._waiting)
        # Shown only while something waits: a strip that came and went with every run would move the whole
        # app down and up again (the running run shows its own progress in its tab).
        if self.mode == "inline" or not waiting:
            self.layout.display = "none"
            self.children = [self.label]
            return
        parts = []
        if current is not None:
            parts.append(f'<span class="mk-queue-now">Running: {esc(_title(current))}</span>')
        if waiting:
            parts.append(f'<span class="mk-muted">Waiting ({len(waiting)}):</span>')
        self.label.value = " ".join(parts)
        chips = []
        for run in waiting[:6]:
            chip = widgets.Button(description=f"{_title(run)}  ✕", tooltip="Remove from the queue",
                                  layout=widgets.Layout(width="auto"))
            chip.add_class("mk-queue-chip")
            chip.on_click(lambda _b, run=run: self.remove(run))
            chips.append(chip)
        self.children = [self.label, *chips]
        self.layout.display = ""


def _title(run: Run) -> str:
    owner = getattr(run.owner, "title", "")
    return f"{owner} · {run.label}" if owner else run.label
