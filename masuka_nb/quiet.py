"""Third-party noise, filtered at our boundary: only around the calls MASUKA makes, never globally.

Notices that say nothing a user can act on — transformers' "requires torchvision … falling back",
diffusers' `torch_dtype` FutureWarning raised by our own call, CLIP's "sequence was truncated", the
libraries' own loading bars (MASUKA's one bar per task covers loading) — are dropped while one of
our loads or runs is inside `quiet_third_party()`. Everything else passes through untouched, and
the libraries' logging levels and bars are put back as they were when the block ends.

A few notices are printed once, while a library is first imported, and that import happens inside
whichever call first touches diffusers (even `import diffusers` imports bitsandbytes when it is installed).
No block can be sure to surround it, so `hush_import_notices()` (called when masuka_nb is imported) puts a
filter on the one logger that prints each, dropping only that message: bitsandbytes' "Failed to load CPU
gemm_4bit_forward from kernels-community" (it then uses its own CPU kernel; the `kernels` package and the
Hub kernel it names are optional, and on a GPU the CPU kernel is unused).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

__all__ = ["IMPORT_NOTICES", "NOISE", "NoiseFilter", "hush_import_notices", "quiet_third_party"]

# Messages (regular expressions, searched) that carry nothing for a MASUKA user.
NOISE: tuple[str, ...] = (
    r"requires? (the )?torchvision",
    r"torchvision.*(not (installed|available)|falling back)",
    r"falling back to .*(pil|slow)",
    r"`torch_dtype` is deprecated",
    r"torch_dtype.*deprecated",
    r"truncated because CLIP can only handle",
    r"sequence length is longer than the specified maximum sequence length",
    r"Token indices sequence length is longer",
    r"use_fast",
    r"slow image processor",
    r"Keyword arguments .* are not expected by .* and will be ignored",
    r"No LoRA keys associated to \w+ found with the prefix",
    # bitsandbytes ≥ 0.48 on CPUs with AVX512-BF16, when its optional CPU kernel cannot be fetched from the
    # kernels hub (Colab, the demo): 4-bit still works through its built-in CPU path.
    r"Failed to load CPU gemm_4bit_forward",
)
# Printed while a library is imported: logger name -> the message (a regular expression, searched).
IMPORT_NOTICES: dict[str, str] = {
    # bitsandbytes >= 0.49 on a CPU with AVX512-BF16: bitsandbytes/backends/cpu/ops.py, at import
    "bitsandbytes.backends.cpu.ops": r"Failed to load CPU gemm_4bit_forward from kernels-community",
}
_PATTERN = re.compile("|".join(f"(?:{p})" for p in NOISE), re.IGNORECASE | re.DOTALL)
# bitsandbytes' CPU backend logs through its own module logger with no handler (Python's last-resort
# stderr handler prints it), so the filter goes on that logger itself.
_LOGGERS = ("transformers", "diffusers", "huggingface_hub", "bitsandbytes.backends.cpu.ops")


class NoiseFilter(logging.Filter):
    """Drops third-party log records whose message is known noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return True
        return not _PATTERN.search(text)


class _ImportNoticeFilter(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern, re.IGNORECASE | re.DOTALL)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not self.pattern.search(record.getMessage())
        except Exception:
            return True


def hush_import_notices() -> None:
    """Drop IMPORT_NOTICES at the loggers that print them (idempotent; costs no import).

    A filter on the emitting logger itself: records reach Python's last-resort stderr handler or a
    notebook's root handlers from there, and a filter on a parent logger would never see them.
    """
    for name, pattern in IMPORT_NOTICES.items():
        logger = logging.getLogger(name)  # made now if the library is not imported yet; it picks this one up
        if not any(isinstance(f, _ImportNoticeFilter) for f in logger.filters):
            logger.addFilter(_ImportNoticeFilter(pattern))


def _library_loggers_ready() -> None:
    """transformers and diffusers add their stderr handler when their logging module is first imported;
    a record emitted by an import inside the block would otherwise find no filter on it."""
    import importlib

    for module in ("transformers.utils.logging", "diffusers.utils.logging"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue


def _bars_off() -> list:
    """Turn the libraries' own progress bars off; return how to put each back."""
    undo = []
    for module, enabled, disable, enable in (
        ("transformers.utils.logging", "is_progress_bar_enabled", "disable_progress_bar", "enable_progress_bar"),
        ("diffusers.utils.logging", "is_progress_bar_enabled", "disable_progress_bar", "enable_progress_bar"),
    ):
        try:
            mod = __import__(module, fromlist=[disable])
        except ImportError:
            continue
        if getattr(mod, enabled)():
            getattr(mod, disable)()
            undo.append(getattr(mod, enable))
    return undo


@contextlib.contextmanager
def quiet_third_party(*, bars: bool = True) -> Iterator[None]:
    """Inside the block: known third-party noise is dropped (warnings and log records); with `bars`,
    the libraries' loading bars are off. Nothing else changes, and everything is restored after."""
    noise = NoiseFilter()
    _library_loggers_ready()  # their handlers exist before the filter goes on them
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    with warnings.catch_warnings():
        for pattern in NOISE:
            warnings.filterwarnings("ignore", message=f"(?is).*{pattern}")
        for logger in loggers:
            logger.addFilter(noise)
            for handler in logger.handlers:
                handler.addFilter(noise)
        undo = _bars_off() if bars else []
        try:
            yield
        finally:
            for enable in undo:
                enable()
            for logger in loggers:
                logger.removeFilter(noise)
                for handler in logger.handlers:
                    handler.removeFilter(noise)
