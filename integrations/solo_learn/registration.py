"""Makes ``method=music`` known to solo-learn without editing solo-learn."""

from __future__ import annotations

METHOD_NAME = "music"


def register() -> None:
    """Adds MUSIC to ``solo.methods.METHODS`` under the name ``"music"``.

    solo-learn's scripts look methods up in that dict (``main_pretrain.py`` imports it at module
    top), so adding the entry to the same dict object is enough. Calling it again is a no-op.

    Raises:
        ValueError: if ``"music"`` is already taken by another class.
    """

    from solo.methods import METHODS

    from music_ssl.integrations.solo_learn.music import MUSIC

    registered = METHODS.get(METHOD_NAME)
    # compared by name, not identity: a reloaded music module may re-register its new class
    same = registered is not None and (registered.__module__, registered.__qualname__) == (
        MUSIC.__module__,
        MUSIC.__qualname__,
    )
    if registered is not None and not same:
        raise ValueError(
            f"solo.methods.METHODS[{METHOD_NAME!r}] is already {registered!r}; music-ssl would replace it "
            f"with {MUSIC!r}. Remove the other registration or register MUSIC under another name."
        )
    METHODS[METHOD_NAME] = MUSIC
