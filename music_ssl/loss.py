"""MUSICLoss: the module form of `music_loss`."""

from __future__ import annotations

from typing import Literal, overload

from torch import Tensor, nn

from music_ssl import _validation as check
from music_ssl.functional import music_loss_with
from music_ssl.options import MUSICOptions
from music_ssl.output import MUSICOutput


class MUSICLoss(nn.Module):
    """MUSIC loss (MUlti-Segmental Informational Coding) from [0].

    Every projection of dimension D is split into D / segment_dim segments; each segment becomes a
    distribution over segment_dim discrete attributes (a softmax). The loss rewards the two views for
    picking the same attribute in every segment (invariance), every attribute for being used equally
    across the batch (no collapse) and different segments for being independent (no redundancy).

    - [0] Niu & Wang, "Multi-Segmental Informational Coding for Self-Supervised Representation
      Learning", 2022, https://arxiv.org/abs/2206.06461

    Attributes:
        segment_dim: Attributes per segment (C). The projection dimension must be a multiple of it.
        temperature: Softmax temperature applied to every segment.
        diag_weight: Weight of L_diag, the negative entropy of the agreement of each segment.
        off_weight: Weight of L_off, the negative joint entropy of pairs of different segments.
        inv_weight: Weight of L_inv, the per-sample agreement of the two views.
        gather_distributed: "auto" (the default) estimates the joint distribution over the global batch
            of all ranks whenever torch.distributed is initialized with more than one process, as the
            MUSIC authors train, with gradients flowing back to every rank's inputs; a single process is
            unaffected. True gathers too (and requires torch.distributed); False keeps each rank's joint
            to its own batch, as lightly's Barlow Twins loss does by default.
        implementation: "auto" (fastest for the input's device), "reference" (plain PyTorch, holds the
            D x D joint), "chunked" (fused PyTorch, walks the joint in bands, any device) or "triton"
            (fused GPU kernel).

    Raises:
        ValueError: If an option is out of range, or gather_distributed is True while
            torch.distributed is not available; when called, if the views differ in shape, device or
            dtype, or their width is 0 or not a multiple of segment_dim.
        TypeError: If an option or a view has the wrong type (a float segment_dim, an integer tensor).
        RuntimeError: When called under forward-mode AD or a torch.func transform with a fused
            implementation, or differentiated twice through one; implementation="reference" supports both.

    Non-finite logits give a NaN loss and NaN gradients, as in torch's own losses.

    Examples:
        >>> loss_fn = MUSICLoss()
        >>> z_a, z_b = model(view_a), model(view_b)  # (N, 8192) projections
        >>> loss = loss_fn(z_a, z_b)
        >>> out = loss_fn(z_a, z_b, return_terms=True)  # loss, its three terms and diagnostics
        >>> self.log_dict(out.log_dict(prefix="train_"))
    """

    def __init__(
        self,
        segment_dim: int = 32,
        temperature: float = 1.0,
        diag_weight: float = 1.0,
        off_weight: float = 1.0,
        inv_weight: float = 1.0,
        gather_distributed: bool | str = "auto",
        implementation: str = "auto",
    ) -> None:
        super().__init__()
        self.options = MUSICOptions(
            segment_dim, temperature, diag_weight, off_weight, inv_weight, gather_distributed, implementation
        )

    segment_dim = property(lambda self: self.options.segment_dim)
    temperature = property(lambda self: self.options.temperature)
    diag_weight = property(lambda self: self.options.diag_weight)
    off_weight = property(lambda self: self.options.off_weight)
    inv_weight = property(lambda self: self.options.inv_weight)
    gather_distributed = property(lambda self: self.options.gather_distributed)
    implementation = property(lambda self: self.options.implementation)

    @overload
    def forward(self, z_a: Tensor, z_b: Tensor, return_terms: Literal[False] = False) -> Tensor: ...

    @overload
    def forward(self, z_a: Tensor, z_b: Tensor, return_terms: Literal[True]) -> MUSICOutput: ...

    @overload
    def forward(self, z_a: Tensor, z_b: Tensor, return_terms: bool = False) -> Tensor | MUSICOutput: ...

    def forward(self, z_a: Tensor, z_b: Tensor, return_terms: bool = False) -> Tensor | MUSICOutput:
        """Computes the loss of two views' projections, each of shape (N, D).

        Returns:
            The scalar loss, or a `MUSICOutput` (loss, the three terms, per-segment attribute entropy
            and confidence) when ``return_terms=True``.
        """
        return music_loss_with(z_a, z_b, self.options, check.flag("return_terms", return_terms))

    def extra_repr(self) -> str:
        return ", ".join(
            f"{name}={getattr(self.options, name)!r}" for name in MUSICOptions.__dataclass_fields__
        )
