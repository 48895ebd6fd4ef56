"""The one place where foreign errors from a generation become MASUKA errors.

torch's out-of-memory (CUDA, and the CPU allocator's RuntimeError), huggingface_hub's errors (via
`masuka_nb.hub.hub_error`), KeyboardInterrupt (Colab's stop button) and anything else a pipeline raises.
"""

from __future__ import annotations

from masuka_nb.errors import (
    CancelledError,
    DependencyMissingError,
    GenerationFailedError,
    MasukaError,
    OutOfMemoryError,
)

__all__ = ["is_out_of_memory", "translate"]


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MasukaError):
        return isinstance(exc, OutOfMemoryError)
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:
        pass
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def translate(exc: BaseException, *, model: str, stage: str, plan_label: str = "") -> MasukaError:
    """`exc` as a MasukaError (returned, for `raise translate(...) from exc`)."""
    if isinstance(exc, MasukaError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return CancelledError(f"{stage} of {model} was interrupted.", argument="cancel", value="KeyboardInterrupt")
    if is_out_of_memory(exc):
        return OutOfMemoryError(
            f"{model} ran out of memory during {stage}" + (f" with {plan_label}" if plan_label else "") + ".",
            argument="plan", value=plan_label or None,
            hint="Use a smaller size or fewer images, or a lighter plan: "
            "`masuka_nb.plan(model, offload=\"model\")` / `quantization=\"nf4\"`.",
        )
    try:
        from huggingface_hub import errors as hf

        if isinstance(exc, (hf.HfHubHTTPError, hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled,
                            hf.EntryNotFoundError)):
            from masuka_nb.hub import hub_error
            from masuka_nb.models.registry import get_model

            return hub_error(exc, repo=get_model(model).repo or model, model=model)
    except ImportError:
        pass
    if isinstance(exc, OSError) and exc.errno is not None:  # the disk, not the model: no "likely a bug"
        from masuka_nb.storage import storage_error

        return storage_error(exc, path=exc.filename or "MASUKA's home", what=f"the output of {stage}")
    if isinstance(exc, ImportError):
        return DependencyMissingError(f"{stage} of {model} needs a package that is missing: {exc}.",
                                      argument="model", value=model,
                                      hint="Run setup_colab.py, or `pip install \"masuka-nb[colab]\"`.")
    return GenerationFailedError(
        f"{stage} of {model} failed: {type(exc).__name__}: {exc}",
        argument="model", value=model,
        hint="This is likely a bug or an unsupported combination; the history holds the full recipe.",
    )
