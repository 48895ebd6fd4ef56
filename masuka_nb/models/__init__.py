"""Model registry (data) and the offline tiny models built from configs in code."""

from masuka_nb.models.registry import MODELS, ComponentSpec, ModelSpec, get_model, list_models

__all__ = ["MODELS", "ComponentSpec", "ModelSpec", "get_model", "list_models"]
