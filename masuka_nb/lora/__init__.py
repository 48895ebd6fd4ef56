"""LoRA studio (minimal placeholder made by the hosted-APIs room: the LoRA room owns this file).

Names resolve on first use so `import masuka_nb.lora` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CloudTrainingJob", "train_cloud"]

_LAZY = {"CloudTrainingJob": "masuka_nb.lora.cloud", "train_cloud": "masuka_nb.lora.cloud"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'masuka_nb.lora' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
