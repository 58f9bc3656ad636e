"""MUSICLoss and its functional forms, `music_loss` (the loss) and `music_loss_terms` (its parts).

One call reads top to bottom: the views are checked (`checks.views`), the registry picks the
implementation (`implementations.choose`), and the implementation computes the loss on the batch the
distributed policy names (`distributed.global_batch`; the fused ones exchange it inside their one custom
operator, `music_ssl.fused`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

from torch import Tensor, nn

from music_ssl import checks, implementations
from music_ssl.options import MUSICOptions, ProcessGroup
from music_ssl.output import MUSICOutput


def _evaluate(
    z_a: Tensor | Sequence[Tensor],
    z_b: Tensor | None,
    num_global: int | None,
    options: MUSICOptions,
    terms: bool,
) -> Tensor | MUSICOutput:
    """The loss of the views (its `MUSICOutput` with ``terms``), for options already checked."""
    views, num_global = checks.views(
        z_a, z_b, num_global, options.segment_dim, options.temperature, options.off_weight
    )
    implementation = implementations.choose(
        options.implementation, views[0].device, views[0].dtype, options.exchange
    )
    return implementation.loss(views, num_global, options, terms)  # type: ignore[return-value]


def _terms_requested(return_terms: object, replacement: str) -> bool:
    """The deprecated ``return_terms`` flag, checked; True warns that ``replacement`` is its successor."""
    if isinstance(return_terms, Tensor):
        raise TypeError(
            "return_terms got a tensor: more than two views go in one list, with how many of them (the "
            "first ones) are global, e.g. loss([z_1, z_2, z_3, z_4], num_global=2)."
        )
    if not isinstance(return_terms, bool):
        raise TypeError(
            f"return_terms must be a bool, got {return_terms!r} of type {type(return_terms).__name__}."
        )
    if return_terms:
        warnings.warn(
            f"return_terms=True is deprecated and will be removed in music-ssl 0.5; call {replacement} "
            "instead, which returns the MUSICOutput.",
            FutureWarning,
            stacklevel=3,
        )
    return return_terms


def music_loss(
    z_a: Tensor | Sequence[Tensor],
    z_b: Tensor | None = None,
    segment_dim: int = 32,
    temperature: float = 0.25,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    gather_distributed: bool | str = "auto",
    implementation: str = "auto",
    return_terms: bool = False,
    process_group: ProcessGroup | None = None,
    *,
    num_global: int | None = None,
    exchange: str = "auto",
) -> Tensor:
    """MUSIC loss of two views' projections, each (N, D), or of a list of views with ``z_b`` omitted; see
    `MUSICLoss` for the arguments.

    Returns:
        The scalar loss (float32, or float64 for float64 inputs). ``return_terms=True`` (deprecated: use
        `music_loss_terms`) returns its `MUSICOutput` instead.
    """
    weights = (diag_weight, off_weight, inv_weight)
    execution = (gather_distributed, implementation, process_group)  # where and how it runs
    options = MUSICOptions(segment_dim, temperature, *weights, *execution, exchange)
    terms = _terms_requested(return_terms, "music_loss_terms")
    return _evaluate(z_a, z_b, num_global, options, terms)  # type: ignore[return-value]


def music_loss_terms(
    z_a: Tensor | Sequence[Tensor],
    z_b: Tensor | None = None,
    segment_dim: int = 32,
    temperature: float = 0.25,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    gather_distributed: bool | str = "auto",
    implementation: str = "auto",
    process_group: ProcessGroup | None = None,
    *,
    num_global: int | None = None,
    exchange: str = "auto",
) -> MUSICOutput:
    """`music_loss` and its parts from one evaluation: a `MUSICOutput` (the loss, its three terms and the
    per-segment diagnostics, attribute entropy, confidence and code entropy, which only this form
    computes)."""
    weights = (diag_weight, off_weight, inv_weight)
    execution = (gather_distributed, implementation, process_group)  # where and how it runs
    options = MUSICOptions(segment_dim, temperature, *weights, *execution, exchange)
    return _evaluate(z_a, z_b, num_global, options, True)  # type: ignore[return-value]


def _option(name: str) -> property:
    def get(self: MUSICLoss):
        return getattr(self.options, name)

    def set(self: MUSICLoss, value) -> None:
        self.options = dataclasses.replace(self.options, **{name: value})

    return property(get, set, doc=f"The loss's {name}; setting it checks the new value.")


# The options MUSICLoss takes one by one, in its order, and their defaults.
_OPTION_NAMES = tuple(field.name for field in dataclasses.fields(MUSICOptions) if field.init)
_DEFAULTS = MUSICOptions()


class MUSICLoss(nn.Module):
    """MUSIC loss (MUlti-Segmental Informational Coding) from [0].

    Every projection of dimension D is split into D / segment_dim segments; each segment becomes a
    distribution over segment_dim discrete attributes (a softmax). The loss rewards the two views for
    picking the same attribute in every segment (invariance), every attribute for being used equally
    across the batch (no collapse) and different segments for being independent (no redundancy).

    More than two views (multi-crop: a few global views, then smaller local ones) go in one list with
    ``num_global``, how many of them, the first ones, are global: the loss is the mean of the two-view
    loss over every pair of views with at least one global view (global-global and global-local, never
    local-local), which for two views is the two-view loss itself. Each view's softmax is computed once.

    - [0] Niu & Wang, "Multi-Segmental Informational Coding for Self-Supervised Representation
      Learning", 2022, https://arxiv.org/abs/2206.06461

    Attributes:
        segment_dim: Attributes per segment (C). The projection dimension must be a multiple of it.
        temperature: Softmax temperature applied to every segment. The default, 0.25, is the value this
            project measured best (docs/choosing_settings.md); the MUSIC authors trained at 1.0, which
            their recipes (`music_ssl.integrations.recipes`) keep.
        diag_weight: Weight of L_diag, the negative entropy of the agreement of each segment.
        off_weight: Weight of L_off, the negative joint entropy of pairs of different segments.
        inv_weight: Weight of L_inv, the per-sample agreement of the two views.
        gather_distributed: "auto" (the default) estimates the joint distribution over the global batch
            of the process group's ranks whenever the group has more than one process and torch's grad
            mode is on, as the MUSIC authors train, with gradients flowing back to every rank's inputs; a
            call under no_grad or inference_mode (evaluation, logging, possibly on one rank alone) uses
            this rank's batch and runs no collective, so it cannot wait on ranks that do not call. True
            gathers on every call (every rank of the group must call, also under no_grad); False keeps
            each rank's joint to its own batch, as lightly's Barlow Twins loss does by default. Every rank
            must pass the same value.
        implementation: "auto" (the fastest proven implementation for the input's device) or the name
            of an entry of `music_ssl.implementations.REGISTRY`: built in, "reference" (plain PyTorch,
            holds the D x D joint), "chunked" (fused PyTorch, walks the joint in chunks, any device) and
            "triton" (fused GPU kernel); docs/implementation.md has the table.
        process_group: The data-parallel group whose ranks' batches make up the global batch (None: the
            default group): the group DDP averages gradients over, where data parallelism is combined with
            tensor or pipeline parallelism. Every rank of it must call the loss when it gathers.
        exchange: What the ranks exchange to estimate the joint over the global batch: "gather" (every
            rank receives every rank's projections and computes the whole joint), "reduce" (every rank
            sums the joint over its own samples and one all_reduce per pair of views adds the ranks'
            D x D sums: a rank's work falls as ranks are added) or "auto" (the default: the reduce where
            it moves no more bytes than the gather, N_global x views >= 2 x pairs x D, which a global
            batch past about 8k samples at D = 8192 reaches). Same value and gradients either way; every
            built-in implementation computes both (docs/implementation.md). Every rank must pass the
            same value.
        options: All of the above as one `MUSICOptions`; ``MUSICLoss(options)`` builds the loss from it.

    Setting an option on a built loss checks it as construction does, so a schedule is one line per step:
    ``loss_fn.temperature = schedule(step)``.

    Under data parallelism, a call that gathers returns this rank's share of the loss: the mean of the
    ranks' values is the global batch's loss, also for unequal per-rank batches, as DDP's mean of the
    gradients is the global batch's gradient. Log it averaged over ranks (``sync_dist=True`` in
    Lightning) to see the global value; the other parts of `MUSICOutput` but ``inv`` are the global
    batch's on every rank.

    Raises:
        ValueError: If an option is out of range, or gather_distributed is True while
            torch.distributed is not available; when called, if the views differ in shape, device or
            dtype, their width is 0 or not a multiple of segment_dim, fewer than two views are given, or
            num_global is not from 1 to the number of views (or missing with more than two views).
        TypeError: If an option or a view has the wrong type (a float segment_dim, an integer tensor).
        RuntimeError: When called under forward-mode AD or a torch.func transform with a fused
            implementation, or differentiated twice through one; implementation="reference" supports both.

    Non-finite logits give a NaN loss and NaN gradients, as in torch's own losses.

    Examples:
        >>> loss_fn = MUSICLoss()
        >>> z_a, z_b = model(view_a), model(view_b)  # (N, 8192) projections
        >>> loss = loss_fn(z_a, z_b)  # the loss alone
        >>> # Or, to log its terms too, one evaluation that returns the loss with them:
        >>> out = loss_fn.terms(z_a, z_b)
        >>> out.loss.backward()
        >>> self.log_dict(out.log_dict(prefix="train_"))
        >>> # Multi-crop: two global views, then six local ones.
        >>> loss = loss_fn([model(view) for view in views], num_global=2)
    """

    def __init__(
        self,
        segment_dim: int | MUSICOptions = 32,
        temperature: float = 0.25,
        diag_weight: float = 1.0,
        off_weight: float = 1.0,
        inv_weight: float = 1.0,
        gather_distributed: bool | str = "auto",
        implementation: str = "auto",
        process_group: ProcessGroup | None = None,
        exchange: str = "auto",
    ) -> None:
        super().__init__()
        given = (temperature, diag_weight, off_weight, inv_weight, gather_distributed, implementation)
        if isinstance(segment_dim, MUSICOptions):
            defaults = tuple(getattr(_DEFAULTS, name) for name in _OPTION_NAMES[1:-2])
            if any(a is not b and a != b for a, b in zip(given, defaults, strict=True)) or (
                process_group is not None or exchange != _DEFAULTS.exchange
            ):
                raise TypeError(
                    "MUSICLoss takes either a MUSICOptions or the options one by one, not both; got "
                    f"{segment_dim!r} and other options. Use dataclasses.replace(options, ...) to change one."
                )
            self.options = segment_dim
        else:
            self.options = MUSICOptions(segment_dim, *given, process_group, exchange)

    # Each option reads from `options`; setting one (a temperature schedule: loss_fn.temperature = t)
    # builds new options, checked as at construction.
    segment_dim = _option("segment_dim")
    temperature = _option("temperature")
    diag_weight = _option("diag_weight")
    off_weight = _option("off_weight")
    inv_weight = _option("inv_weight")
    gather_distributed = _option("gather_distributed")
    implementation = _option("implementation")
    process_group = _option("process_group")
    exchange = _option("exchange")

    def forward(
        self,
        z_a: Tensor | Sequence[Tensor],
        z_b: Tensor | None = None,
        return_terms: bool = False,
        *,
        num_global: int | None = None,
    ) -> Tensor:
        """The loss of two views' projections, each of shape (N, D), or of a list of V >= 2 views (``z_b``
        omitted) whose first ``num_global`` are the global ones: a scalar tensor.

        ``return_terms=True`` (deprecated: use `terms`) returns the `MUSICOutput` instead."""
        terms = _terms_requested(return_terms, "MUSICLoss.terms")
        return _evaluate(z_a, z_b, num_global, self.options, terms)  # type: ignore[return-value]

    def terms(
        self, z_a: Tensor | Sequence[Tensor], z_b: Tensor | None = None, *, num_global: int | None = None
    ) -> MUSICOutput:
        """The loss and its parts from one evaluation: a `MUSICOutput` with the loss (differentiable), its
        three terms and the per-segment diagnostics (attribute entropy, confidence and code entropy), which
        only this method computes. Takes the views as `forward` does."""
        return _evaluate(z_a, z_b, num_global, self.options, True)  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self.options, name)!r}" for name in _OPTION_NAMES)
