"""The loss functions the speed and memory benchmarks compare, and one forward + backward of each (the
self-supervised methods the quality benchmark trains are `benchmarks.quality.ssl_methods`).

`METHODS` is the one table of methods for the loss benchmark (`benchmarks/loss_benchmark.py`) and the GPU
check (`benchmarks/gpu_check.py`); `build_step` turns a name from it into a function that runs one
forward + backward pass on given projections.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from music_ssl import implementations


@dataclass(frozen=True)
class Method:
    description: str
    # torch.set_float32_matmul_precision for the method's float32 products ("high": TF32 tensor cores,
    # for torch's matmuls and the Triton kernel alike); None keeps the current setting.
    matmul_precision: str | None = None
    # The package the method needs beyond music_ssl and torch, if any.
    requires: str | None = None


METHODS: dict[str, Method] = {
    "matmul_floor": Method("the three N x D x D products (P, two input gradients) every exact method pays"),
    "plain": Method("MUSIC as research code writes it: eager PyTorch, D x D joint and masks (plain_music)"),
    "plain+tf32": Method("plain with float32 matmuls on TF32 tensor cores", matmul_precision="high"),
    # Every registered implementation, as MUSICLoss(implementation=name) computes it.
    **{name: Method(f'MUSICLoss(implementation="{name}")') for name in implementations.REGISTRY},
    "chunked+tf32": Method("chunked with float32 matmuls on TF32 tensor cores", matmul_precision="high"),
    "chunked+terms": Method(
        'MUSICLoss(implementation="chunked").terms: the loss with its per-segment diagnostics, as every call '
        "computed them before 0.3"
    ),
    "triton+tf32": Method("triton with its products on TF32 tensor cores", matmul_precision="high"),
    "triton_joint_only": Method("the Triton joint kernels alone on ready probabilities, input gradients too"),
    "triton_joint_nograd": Method("the Triton joint kernel alone on ready probabilities, the P pass only"),
    "chunked_pairs": Method(
        "chunked called once per pair of views (each view's softmax again in every pair it is in); the "
        "same as chunked for two views"
    ),
    "barlow_twins": Method(
        "lightly's BarlowTwinsLoss (several views: its mean over the pairs)", requires="lightly"
    ),
    "vicreg": Method("lightly's VICRegLoss (several views: its mean over the pairs)", requires="lightly"),
    "lejepa": Method(
        "lightly's LeJEPALoss, which takes every view at once (global and local)", requires="lightly"
    ),
    "visreg": Method(
        "lightly's VISRegLoss, which takes every view at once (global and local)", requires="lightly"
    ),
}
# The methods that compute every view at once; every other loss of several views is the mean of its
# two-view loss over the pairs MUSIC compares (`music_ssl.segments.view_pairs`).
NATIVE_MULTI_VIEW = (*implementations.REGISTRY, "chunked+terms", "lejepa", "visreg")
# The methods that time products or kernels alone, not a loss.
NOT_LOSSES = ("matmul_floor", "triton_joint_only", "triton_joint_nograd")
# Inputs of the GPU check, by name.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PLAIN_BASELINE = "benchmarks.plain_music"


def check_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {tuple(METHODS)}")
    return METHODS[name]


def missing_requirement(name: str) -> str:
    """Why `name` cannot run here (a package it needs does not import), or "" when it can."""
    package = check_method(name).requires
    if package is None:
        return ""
    try:
        lightly_loss(LIGHTLY_LOSSES[name]) if package == "lightly" else __import__(package)
    except ImportError as error:
        return f"{package} not importable ({error})"
    return ""


# The lightly losses of the table, by method.
LIGHTLY_LOSSES = {
    "barlow_twins": ("barlow_twins_loss", "BarlowTwinsLoss"),
    "vicreg": ("vicreg_loss", "VICRegLoss"),
    "lejepa": ("lejepa_loss", "LeJEPALoss"),
    "visreg": ("visreg_loss", "VISRegLoss"),
}


def lightly_loss(module_and_class: tuple[str, str]) -> type:
    """One of lightly's loss classes. Where ``lightly.loss`` cannot be imported because a package its
    ``__init__`` needs for other losses is missing (torchvision, on a GPU machine that has torch alone and
    lightly carried as pure Python: benchmarks/gpu_check.sh), the loss's own module is loaded without
    that ``__init__``."""
    module_name, class_name = module_and_class
    loaded = sys.modules.get("lightly.loss")
    if loaded is None or not getattr(loaded, "without_init", False):
        try:
            return getattr(importlib.import_module("lightly.loss"), class_name)
        except ModuleNotFoundError as error:
            if error.name is None or error.name.split(".")[0] == "lightly":
                raise
        spec = importlib.util.find_spec("lightly")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("lightly is not installed", name="lightly")
        package = types.ModuleType("lightly.loss")
        package.__path__ = [str(Path(spec.submodule_search_locations[0]) / "loss")]
        package.without_init = True  # type: ignore[attr-defined]
        sys.modules["lightly.loss"] = package  # its __init__ (which failed) is skipped
    return getattr(importlib.import_module(f"lightly.loss.{module_name}"), class_name)


def loss_function(name: str, segment_dim: int) -> Callable[[Tensor, Tensor], Tensor]:
    """fn(z_a, z_b) -> scalar loss for a method that is a loss (every one but the floor and the kernels
    alone)."""
    views_loss = views_loss_function(name, segment_dim, num_global=2)
    return lambda z_a, z_b: views_loss([z_a, z_b])


def views_loss_function(name: str, segment_dim: int, num_global: int) -> Callable[[list[Tensor]], Tensor]:
    """fn(views) -> scalar loss of a list of (N, D) views, the first ``num_global`` global, for a method
    that is a loss."""
    from music_ssl.segments import view_pairs

    check_method(name)
    if name in NOT_LOSSES:
        raise ValueError(f"method {name!r} is not a loss function; build_step runs it")
    base = name.removesuffix("+tf32")
    if base in NATIVE_MULTI_VIEW:
        native = _native_multi_view(base, segment_dim)
        return lambda views: native(views, num_global)
    pair_loss = _two_view_loss(base, segment_dim)

    def mean_over_pairs(views: list[Tensor]) -> Tensor:
        pairs = view_pairs(len(views), num_global)
        return sum(pair_loss(views[i], views[j]) for i, j in pairs) / len(pairs)

    return mean_over_pairs


def _native_multi_view(name: str, segment_dim: int) -> Callable[[list[Tensor], int], Tensor]:
    if name in ("lejepa", "visreg"):
        loss = lightly_loss(LIGHTLY_LOSSES[name])()

        def global_and_local(views: list[Tensor], num_global: int) -> Tensor:
            global_proj = torch.stack(views[:num_global])
            # Without local views LeJEPA (which needs one) gets the global ones as local too, as the
            # quality benchmark's field study passes them; VISReg gets none.
            if len(views) > num_global:
                local_proj = torch.stack(views[num_global:])
            else:
                local_proj = global_proj if name == "lejepa" else global_proj[:0]
            return loss(global_proj=global_proj, local_proj=local_proj)

        return global_and_local
    from music_ssl import MUSICLoss

    implementation = "chunked" if name == "chunked+terms" else name
    music = MUSICLoss(segment_dim=segment_dim, implementation=implementation)
    if name == "chunked+terms":
        return lambda views, num_global: music.terms(views, num_global=num_global).loss
    return lambda views, num_global: music(views, num_global=num_global)


def _two_view_loss(name: str, segment_dim: int) -> Callable[[Tensor, Tensor], Tensor]:
    if name == "plain":
        from benchmarks.plain_music import plain_music_loss

        return lambda z_a, z_b: plain_music_loss(z_a, z_b, segment_dim)
    if name == "chunked_pairs":
        from music_ssl import MUSICLoss

        return MUSICLoss(segment_dim=segment_dim, implementation="chunked")
    if name in ("barlow_twins", "vicreg"):
        return lightly_loss(LIGHTLY_LOSSES[name])()
    raise ValueError(f"method {name!r} is not a loss function; build_step runs it")


def _matmul_floor(z_a: Tensor, z_b: Tensor, dtype: torch.dtype) -> Callable[[], object]:
    """The three N x D x D products any exact implementation pays: P and the two input gradients."""
    d = z_a.shape[1]
    a, b = z_a.detach().to(dtype), z_b.detach().to(dtype)
    grad_joint = torch.randn(d, d, device=a.device, dtype=dtype)

    def floor():
        return a.T @ b, b @ grad_joint.T, a @ grad_joint

    return floor


def _joint_kernels(z_a: Tensor, z_b: Tensor, segment_dim: int, compute_grad: bool) -> Callable[[], object]:
    """The Triton joint kernels alone, on ready float32 probabilities (no softmax, no autograd): the
    registry entry's kernel, `music_ssl.implementations.JointKernel`'s contract."""
    from music_ssl.implementations import REGISTRY

    kernel = REGISTRY["triton"].kernel

    shape = (z_a.shape[0], -1, segment_dim)
    p_a = torch.softmax(z_a.detach().float().view(shape), -1).view_as(z_a).contiguous()
    p_b = torch.softmax(z_b.detach().float().view(shape), -1).view_as(z_b).contiguous()
    rows = (0, z_a.shape[0])
    return lambda: kernel(p_a, p_b, rows, segment_dim, 1.0, 1.0, 1.0, compute_grad)


def build_step(
    name: str, z_a: Tensor, z_b: Tensor, segment_dim: int, floor_dtype: torch.dtype | None = None
) -> Callable[[], object]:
    """fn() running one forward + backward of method `name` on z_a, z_b (which require grad).

    The floor's products run in `floor_dtype`, by default the inputs' dtype. The caller sets the method's
    float32 matmul precision (`matmul_precision`) around both the build and the calls.
    """
    return build_views_step(name, [z_a, z_b], 2, segment_dim, floor_dtype)


def build_views_step(
    name: str,
    views: list[Tensor],
    num_global: int,
    segment_dim: int,
    floor_dtype: torch.dtype | None = None,
) -> Callable[[], object]:
    """`build_step` for a list of views (which require grad), the first ``num_global`` global: the floor
    and the pair-wise losses run once per pair of `music_ssl.segments.view_pairs`."""
    from music_ssl.segments import view_pairs

    check_method(name)
    pairs = view_pairs(len(views), num_global)
    if name == "matmul_floor":
        floors = [_matmul_floor(views[i], views[j], floor_dtype or views[0].dtype) for i, j in pairs]
        return lambda: [product for floor in floors for product in floor()]
    if name in ("triton_joint_only", "triton_joint_nograd"):
        if len(views) != 2:
            raise ValueError(f"method {name!r} times the joint kernel of two views; got {len(views)} views")
        return _joint_kernels(views[0], views[1], segment_dim, compute_grad=name == "triton_joint_only")
    loss_fn = views_loss_function(name, segment_dim, num_global)

    def step():
        for view in views:
            view.grad = None
        loss_fn(views).backward()

    return step


@contextlib.contextmanager
def matmul_precision(precision: str | None) -> Iterator[None]:
    """torch.set_float32_matmul_precision(precision) inside the block, unless None; restored after."""
    saved = torch.get_float32_matmul_precision()
    if precision is not None:
        torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)


def make_views(
    n: int, d: int, dtype: torch.dtype, device: str = "cuda", seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Two correlated (N, D) projections in `dtype`: z_b is z_a plus as much independent noise."""
    generator = torch.Generator(device=device).manual_seed(seed)
    z_a = torch.randn(n, d, device=device, generator=generator).to(dtype)
    z_b = (z_a.float() + torch.randn(n, d, device=device, generator=generator)).to(dtype)
    return z_a, z_b


def release_memory() -> None:
    """Frees what the last method left behind, so that the next one's peak memory is its own."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
