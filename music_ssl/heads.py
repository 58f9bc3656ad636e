"""Projection heads whose output is read as segments of attributes."""

from __future__ import annotations

from torch import Tensor, nn

from music_ssl import checks
from music_ssl.loss import MUSICLoss
from music_ssl.segments import segment_codes, segment_probabilities


class ProjectionHead(nn.Module):
    """A stack of blocks ``(in_dim, out_dim, batch_norm, activation)``, as lightly builds its heads; the
    base of `MUSICProjectionHead` (not exported at the top level: lightly has its own).

    A block is Linear (without bias when BatchNorm follows), then BatchNorm1d and the activation if given.
    """

    def __init__(self, blocks: list[tuple[int, int, nn.Module | None, nn.Module | None]]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for in_dim, out_dim, batch_norm, activation in blocks:
            layers.append(nn.Linear(in_dim, out_dim, bias=batch_norm is None))
            if batch_norm is not None:
                layers.append(batch_norm)
            if activation is not None:
                layers.append(activation)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class MUSICProjectionHead(ProjectionHead):
    """Projection head for MUSIC: hidden Linear + BatchNorm + ReLU blocks, then a Linear without bias.

    The output is a flat (N, output_dim) projection, read by `MUSICLoss` as output_dim / segment_dim
    segments of segment_dim attributes. Defaults follow lightly's Barlow Twins head width; the MUSIC
    authors' widths and segment sizes are in `music_ssl.integrations.recipes` (`IMAGENET`, `CIFAR10`).

    Attributes:
        input_dim: Backbone feature dimension.
        hidden_dim: Width of the hidden layers.
        output_dim: Projection dimension; a multiple of segment_dim.
        num_layers: Number of Linear layers (>= 1); all but the last are followed by BatchNorm and ReLU.
        segment_dim: Attributes per segment, as in `MUSICLoss`.
        batch_norm: Whether hidden layers use BatchNorm1d.

    Examples:
        >>> head = MUSICProjectionHead(input_dim=512, hidden_dim=1024, output_dim=1024, segment_dim=32)
        >>> loss_fn = head.loss()  # MUSICLoss with the head's segment_dim
        >>> z = head(backbone(x))  # (N, 1024)
        >>> codes = head.codes(z)  # (N, 32): the attribute each segment picks
    """

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 8192,
        output_dim: int = 8192,
        num_layers: int = 2,
        segment_dim: int = 32,
        batch_norm: bool = True,
    ) -> None:
        checks.segment_dim(segment_dim)
        for name, value in (("input_dim", input_dim), ("hidden_dim", hidden_dim), ("output_dim", output_dim)):
            checks.positive_int(name, value)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int):
            raise TypeError(
                f"num_layers must be an int >= 1 (number of Linear layers), got {num_layers!r} of type "
                f"{type(num_layers).__name__}."
            )
        if num_layers < 1:
            raise ValueError(f"num_layers must be an int >= 1 (number of Linear layers), got {num_layers}.")
        checks.flag("batch_norm", batch_norm)
        checks.output_dim(output_dim, segment_dim)
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        super().__init__(
            [
                (d_in, d_out, nn.BatchNorm1d(d_out) if batch_norm else None, nn.ReLU())
                for d_in, d_out in zip(dims[:-1], dims[1:], strict=True)
            ]
        )
        # The last Linear has no bias: a per-attribute offset is absorbed by every segment's softmax.
        self.layers.append(nn.Linear(dims[-1], output_dim, bias=False))
        self.segment_dim = segment_dim
        self.output_dim = output_dim

    @property
    def num_segments(self) -> int:
        return self.output_dim // self.segment_dim

    def segment_probabilities(self, z: Tensor, temperature: float = 0.25) -> Tensor:
        """(N, output_dim) projection -> (N, S, C) attribute probabilities of every segment, as
        `music_ssl.segment_probabilities` with this head's segment_dim."""
        return segment_probabilities(self._projection(z), self.segment_dim, temperature)

    def attribute_probabilities(self, z: Tensor, temperature: float = 0.25) -> Tensor:
        """`segment_probabilities` under its former name; kept as an alias."""
        return self.segment_probabilities(z, temperature)

    def codes(self, z: Tensor) -> Tensor:
        """(N, output_dim) projection -> (N, S) index of the most likely attribute of every segment."""
        return segment_codes(self._projection(z), self.segment_dim)

    def loss(self, **options) -> MUSICLoss:
        """The `MUSICLoss` that reads this head's output as it is segmented: its segment_dim, with
        ``options`` (temperature, weights, ...) as `MUSICLoss` takes them."""
        if "segment_dim" in options and options["segment_dim"] != self.segment_dim:
            raise ValueError(
                f"segment_dim={options['segment_dim']!r} differs from this head's segment_dim "
                f"({self.segment_dim}); the loss built from a head reads its segments."
            )
        loss = MUSICLoss(**{**options, "segment_dim": self.segment_dim})
        loss.options.check_width(self.output_dim)  # a single segment with off_weight > 0 fails here
        return loss

    def _projection(self, z: object) -> Tensor:
        checks.projection("z", z)
        assert isinstance(z, Tensor)
        if z.shape[1] != self.output_dim:
            raise ValueError(
                f"z has width {z.shape[1]} (shape {tuple(z.shape)}), but this head's projections are "
                f"{self.output_dim} wide; pass the head's output, head(features), not the features."
            )
        return z
