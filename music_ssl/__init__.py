"""music-ssl: the MUSIC self-supervised loss (Niu & Wang, 2022), fused and distributed-ready."""

from music_ssl.functional import music_loss
from music_ssl.heads import MUSICProjectionHead
from music_ssl.loss import MUSICLoss
from music_ssl.output import MUSICOutput
from music_ssl.segments import segment_codes, segment_probabilities

__all__ = [
    "MUSICLoss",
    "MUSICOutput",
    "MUSICProjectionHead",
    "music_loss",
    "segment_codes",
    "segment_probabilities",
]
__version__ = "0.2.0"
