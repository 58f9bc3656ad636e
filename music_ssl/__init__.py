"""music-ssl: the MUSIC self-supervised loss (Niu & Wang, 2022), fused and distributed-ready."""

import importlib.abc
import importlib.util
import sys
from pathlib import Path

from music_ssl.codes import (
    bits_per_attribute,
    cluster_sizes,
    code_agreement,
    pack_codes,
    segment_clusterings,
    soft_agreement,
    unpack_codes,
)
from music_ssl.heads import MUSICProjectionHead
from music_ssl.loss import MUSICLoss, music_loss, music_loss_terms
from music_ssl.options import MUSICOptions
from music_ssl.output import MUSICOutput
from music_ssl.segments import segment_codes, segment_probabilities

__all__ = [
    "MUSICLoss",
    "MUSICOptions",
    "MUSICOutput",
    "MUSICProjectionHead",
    "bits_per_attribute",
    "cluster_sizes",
    "code_agreement",
    "music_loss",
    "music_loss_terms",
    "pack_codes",
    "segment_clusterings",
    "segment_codes",
    "segment_probabilities",
    "soft_agreement",
    "unpack_codes",
]
__version__ = "0.4.0"


class _CheckoutAdapters(importlib.abc.MetaPathFinder):
    """Finds ``music_ssl.integrations`` in a source checkout, where the adapters are the folder
    ``integrations/`` beside this package (an install places them at ``music_ssl/integrations``): Python
    started in the checkout imports this package from it, ahead of any installed one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, name, path=None, target=None):
        if name != "music_ssl.integrations":
            return None
        return importlib.util.spec_from_file_location(
            name, self.folder / "__init__.py", submodule_search_locations=[str(self.folder)]
        )


def _find_adapters_in_a_checkout() -> None:
    here = Path(__file__).resolve().parent
    adapters = here.parent / "integrations"
    checkout = (here.parent / "pyproject.toml").is_file() and (adapters / "__init__.py").is_file()
    if checkout and not (here / "integrations").exists():
        sys.meta_path.insert(0, _CheckoutAdapters(adapters))


_find_adapters_in_a_checkout()
