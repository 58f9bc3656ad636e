"""Release numbers of triton and numpy, as the availability checks compare them."""

from __future__ import annotations

import itertools


def release(version: str) -> tuple[int, ...]:
    """(3, 6) from "3.6.0", "3.6.0+git1234" or "3.6"."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)
