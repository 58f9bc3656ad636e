"""music-ssl: the MUSIC self-supervised loss (Niu & Wang, 2022), fused and distributed-ready."""

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
