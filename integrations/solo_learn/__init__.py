"""MUSIC for solo-learn: the method, its loss function, registration and packaged configs.

Importing this package does not import solo-learn; ``MUSIC``, ``music_loss_func`` and
``music_loss_terms_func`` are loaded on
first access, so the configs, the Hydra plugin and the console script work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from music_ssl.integrations.solo_learn.registration import METHOD_NAME, register

if TYPE_CHECKING:
    from music_ssl.integrations.solo_learn.losses import music_loss_func, music_loss_terms_func
    from music_ssl.integrations.solo_learn.music import MUSIC

CONFIG_MODULE = "music_ssl.integrations.solo_learn.configs"

__all__ = ["CONFIG_MODULE", "METHOD_NAME", "MUSIC", "music_loss_func", "music_loss_terms_func", "register"]


def __getattr__(name: str) -> Any:
    if name == "MUSIC":
        from music_ssl.integrations.solo_learn.music import MUSIC

        return MUSIC
    if name in ("music_loss_func", "music_loss_terms_func"):
        from music_ssl.integrations.solo_learn import losses

        return getattr(losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
