"""What the tables, plots and run files call each method, baseline and study value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Name:
    short: str  # plots and a study's verdicts, where space is short
    package: str | None = None  # where the method's loss comes from, named in the tables

    @property
    def full(self) -> str:
        return f"{self.short} ({self.package})" if self.package else self.short


NAMES: dict[str, Name] = {
    "music": Name("MUSIC", "music-ssl"),
    "barlow_twins": Name("Barlow Twins", "lightly"),
    "vicreg": Name("VICReg", "lightly"),
    "simclr": Name("SimCLR", "lightly"),
    "lejepa": Name("LeJEPA", "lightly"),
    "visreg": Name("VISReg", "lightly"),
    "wmse": Name("W-MSE", "lightly"),
    "supervised": Name("supervised (labels)"),
    "raw_pixels": Name("raw pixels"),
    "random_init": Name("random-init backbone"),
}


def full_name(key: str) -> str:
    """The tables' name of a method or baseline; any other key as it is."""
    return NAMES[key].full if key in NAMES else key


def full_names() -> dict[str, str]:
    """Every method and baseline by its tables' name, as ``stats.compare`` takes them."""
    return {key: name.full for key, name in NAMES.items()}


def result_label(key: str) -> str:
    """A result named after a method or baseline (``music_codes_soft``, ``raw_pixels_k32``) in words: the
    tables' name, then the rest with spaces for underscores."""
    method = next((m for m in NAMES if key.startswith(m)), "")
    return full_name(method) + key[len(method) :].replace("_", " ")


def value_label(value) -> str:
    """A study's value as run file names and table rows write it."""
    if isinstance(value, dict):
        return "_".join(f"{k}{v}" for k, v in value.items())
    return str(value).replace(" ", "").replace(",", "_")
