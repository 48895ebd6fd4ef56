"""Pricing and budget for every paid call (video clips and cloud LoRA training alike): cost estimates,
the per-call `max_cost` and the session budget (``settings().budget_usd``). Prices are data, in the catalog.

Every paid call is priced before it is sent. The session's spend counts each accepted job at its
estimate (providers do not return a bill per job), including a job the provider accepted, or may
have accepted, whose answer could not be read (it needs attention, but it is paid); a job that
fails at the provider is refunded, once, and only by the session that counted it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from masuka_nb.config import settings
from masuka_nb.errors import BudgetExceededError

__all__ = ["CostEstimate", "charge", "check_budget", "refund", "register_simulator", "session_spent", "simulated"]

_lock = threading.Lock()
_spent = 0.0
_by_job: dict[str, float] = {}  # what this session counted per job id: a job is charged and refunded once


@dataclass
class CostEstimate:
    """What a request will cost on its first route, what changed to fit it, and the fallbacks' prices."""

    model: str
    provider: str
    provider_model: str
    seconds: int
    resolution: str
    aspect_ratio: str
    usd: float
    price_date: str
    price_source: str
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    alternatives: list[tuple[str, str, float]] = field(default_factory=list)
    session_spent_usd: float = 0.0
    budget_usd: float | None = None

    def __str__(self) -> str:
        lines = [f"{self.model} on {self.provider} ({self.provider_model}): {self.seconds} s at {self.resolution} "
                 f"{self.aspect_ratio} ≈ ${self.usd:.2f} (price of {self.price_date}: {self.price_source})"]
        lines += [f"  changed: {c}" for c in self.changes]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  fallback: {p} ({m}) ≈ ${u:.2f}" for p, m, u in self.alternatives]
        if self.budget_usd is not None:
            lines.append(f"  session: ${self.session_spent_usd:.2f} spent of ${self.budget_usd:.2f}")
        return "\n".join(lines)


def session_spent() -> float:
    with _lock:
        return _spent


def check_budget(usd: float, *, max_cost: float | None, what: str) -> None:
    """Refuse (BUDGET_EXCEEDED) before anything is paid when `usd` breaks `max_cost` or the session budget."""
    if max_cost is not None and usd > max_cost:
        raise BudgetExceededError(f"{what} is estimated at ${usd:.2f}, above max_cost=${max_cost:.2f}.",
                                  argument="max_cost", value=max_cost,
                                  hint="Raise `max_cost`, shorten the clip or choose a cheaper model (see `.estimate(...)`).")
    budget = settings().budget_usd
    if budget is not None and session_spent() + usd > budget:
        raise BudgetExceededError(
            f"{what} (≈ ${usd:.2f}) would take this session to ${session_spent() + usd:.2f}, over its budget of ${budget:.2f}.",
            argument="budget_usd", value=budget,
            hint="Raise it with `masuka_nb.configure(budget_usd=...)` (or MASUKA_BUDGET_USD).")


def charge(usd: float | None, *, job: str | None = None) -> None:
    """Count `usd` as spent in this session (for `job`, at most once)."""
    global _spent
    with _lock:
        if job is not None:
            if job in _by_job:
                return
            _by_job[job] = usd or 0.0
        _spent += usd or 0.0


def refund(usd: float | None = None, *, job: str | None = None) -> None:
    """Take back what was counted: `usd`, or what this session charged for `job` (nothing if it did not)."""
    global _spent
    with _lock:
        if job is not None:
            usd = _by_job.pop(job, 0.0)
        _spent = max(0.0, _spent - (usd or 0.0))


def reset_session() -> None:
    """Forget this session's spend (tests; a new notebook session starts at zero anyway)."""
    global _spent
    with _lock:
        _spent = 0.0
        _by_job.clear()


_simulators: set[str] = set()


def register_simulator(base_url: str, *, active: bool = True) -> None:
    """Mark `base_url` as an offline simulator (`masuka_nb.testing.fakes.simulator()` does) or unmark it."""
    key = str(base_url).rstrip("/")
    with _lock:
        (_simulators.add if active else _simulators.discard)(key)


def simulated(base_url: str | None) -> bool:
    """The paid/free rule: True when `base_url` is a registered offline simulator, where nothing is paid, so
    its runs cost $0 and stay out of spend and budgets. Loopback fakes that stand in for a real service in
    tests are not simulators: they keep the real price so the budget rules can be tested."""
    if not base_url:
        return False
    with _lock:
        return str(base_url).rstrip("/") in _simulators
