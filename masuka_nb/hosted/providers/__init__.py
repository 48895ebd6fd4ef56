"""One module per hosted API. `get_provider(name)` builds a client for it (keys from Colab Secrets / env).

`register_provider(name, cls)` adds a route kind at run time (a local open-weight video model, a proxy
that speaks one of these contracts): the front door routes to it like any other, by the catalog's `provider`.
"""

from __future__ import annotations

import importlib

from masuka_nb.errors import InvalidRequestError

__all__ = ["PROVIDERS", "UNAVAILABLE", "get_provider", "provider_class", "register_provider"]

PROVIDERS = {
    "cometapi": "masuka_nb.hosted.providers.cometapi:CometAPIProvider",
    "runway": "masuka_nb.hosted.providers.runway:RunwayProvider",
    "kling": "masuka_nb.hosted.providers.kling:KlingProvider",
    "fal": "masuka_nb.hosted.providers.fal:FalProvider",
    "replicate": "masuka_nb.hosted.providers.replicate:ReplicateProvider",
}
UNAVAILABLE = {
    "haiper": "Haiper's model was sold in 2025 and its API shows no sign of working; MASUKA does not call it.",
}


_REGISTERED: dict[str, type] = {}


def register_provider(name: str, cls: type) -> None:
    """Route `provider: name` catalog entries to `cls` (a `Provider` subclass: submit_video, poll, downloads)."""
    _REGISTERED[name] = cls


def provider_class(name: str):
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in UNAVAILABLE:
        from masuka_nb.errors import ProviderUnavailableError

        raise ProviderUnavailableError(f"`{name}` is unavailable: {UNAVAILABLE[name]}", argument="provider", value=name,
                                       retryable=False)
    if name not in PROVIDERS:
        raise InvalidRequestError(f"No provider `{name}`.", argument="provider", value=name,
                                  hint="Providers: " + ", ".join([*PROVIDERS, *_REGISTERED]) + ".")
    module, cls = PROVIDERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_provider(name: str, *, base_url: str | None = None, key: str | None = None):
    return provider_class(name)(base_url=base_url, key=key)
