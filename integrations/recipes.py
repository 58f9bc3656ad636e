"""The MUSIC authors' training recipes (Niu & Wang 2022; docs/math.md) as plain data.

Every adapter reads its recipe here: lightly's ImageNet benchmark method, the stable-pretraining CIFAR-10
script, and the tests that check the packaged solo-learn configs (YAML files, which cannot import) against
it. The module imports no SSL framework, so any adapter can import it without importing another.

A recipe's learning rate is given per 256 images of the global batch (every process's batch together) and
grows linearly with it, as the authors and solo-learn scale it: `learning_rate`.

Examples:
    >>> from music_ssl.integrations.recipes import CIFAR10, IMAGENET
    >>> IMAGENET.num_segments, IMAGENET.learning_rate(batch_size_per_device=256, world_size=8)
    (102, 4.8)
    >>> CIFAR10.learning_rate(batch_size_per_device=CIFAR10.batch_size)
    0.2
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# The global batch at which a recipe's base learning rate applies.
REFERENCE_BATCH_SIZE = 256


def learning_rate(base_learning_rate: float, batch_size_per_device: int, world_size: int = 1) -> float:
    """``base_learning_rate x global batch / 256``, the global batch being ``batch_size_per_device x
    world_size``.

    Args:
        base_learning_rate: learning rate at a global batch of 256.
        batch_size_per_device: batch size of every process.
        world_size: number of processes training together (devices x nodes).

    Raises:
        ValueError: if a batch size or the world size is not a positive int.
    """
    for name, value in (("batch_size_per_device", batch_size_per_device), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return base_learning_rate * batch_size_per_device * world_size / REFERENCE_BATCH_SIZE


@dataclass(frozen=True)
class View:
    """The augmentations of one view, in torchvision's terms; every probability is in [0, 1].

    Color jitter draws brightness, contrast, saturation and hue with probability ``color_jitter``; the
    crop is a RandomResizedCrop to ``crop_size`` pixels over ``crop_scale`` of the image's area.
    """

    crop_size: int
    crop_scale: tuple[float, float]
    horizontal_flip: float
    color_jitter: float
    brightness: float
    contrast: float
    saturation: float
    hue: float
    grayscale: float
    gaussian_blur: float
    blur_sigma: tuple[float, float]
    solarization: float


@dataclass(frozen=True)
class Recipe:
    """One pre-training recipe: backbone, projector, loss, optimizer, schedule, batch and views.

    The projector is ``MUSICProjectionHead(feature_dim, hidden_dim, output_dim, num_layers, segment_dim)``
    (``num_layers`` counts Linear layers). ``batch_size`` is the global batch; ``exclude_bias_and_norm``
    keeps BatchNorm and bias parameters out of weight decay (and, with LARS, out of its trust ratio).
    ``mean`` and ``std`` normalise the images; None leaves the host's ImageNet statistics.
    """

    backbone: str
    feature_dim: int
    hidden_dim: int
    output_dim: int
    num_layers: int
    segment_dim: int
    temperature: float
    diag_weight: float
    off_weight: float
    inv_weight: float
    optimizer: str
    base_learning_rate: float
    momentum: float
    weight_decay: float
    exclude_bias_and_norm: bool
    lars_trust_coefficient: float | None
    warmup_epochs: int
    epochs: int
    batch_size: int
    views: tuple[View, View]
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    @property
    def num_segments(self) -> int:
        return self.output_dim // self.segment_dim

    def learning_rate(self, batch_size_per_device: int, world_size: int = 1) -> float:
        """The recipe's learning rate for a global batch of ``batch_size_per_device x world_size``."""
        return learning_rate(self.base_learning_rate, batch_size_per_device, world_size)


@dataclass(frozen=True)
class LinearProbe:
    """Linear evaluation of a frozen backbone: the optimizer, its learning rate and the epochs."""

    optimizer: str
    learning_rate: float
    epochs: int


# VICReg's asymmetric views: the first always blurred and never solarized, the second the other way round.
_VICREG_VIEW = View(
    crop_size=224,
    crop_scale=(0.08, 1.0),
    horizontal_flip=0.5,
    color_jitter=0.8,
    brightness=0.4,
    contrast=0.4,
    saturation=0.2,
    hue=0.1,
    grayscale=0.2,
    gaussian_blur=1.0,
    blur_sigma=(0.1, 2.0),
    solarization=0.0,
)

IMAGENET = Recipe(
    backbone="resnet50",
    feature_dim=2048,
    hidden_dim=8192,
    output_dim=8160,
    num_layers=2,
    segment_dim=80,
    temperature=1.0,
    diag_weight=1.0,
    off_weight=1.0,
    inv_weight=1.0,
    optimizer="lars",
    base_learning_rate=0.6,
    momentum=0.9,
    weight_decay=1e-6,
    exclude_bias_and_norm=True,
    lars_trust_coefficient=0.001,
    warmup_epochs=10,
    epochs=100,
    batch_size=2048,
    views=(_VICREG_VIEW, replace(_VICREG_VIEW, gaussian_blur=0.1, solarization=0.2)),
)

# The same augmentations for both views; no blur, no solarization.
_CIFAR10_VIEW = View(
    crop_size=32,
    crop_scale=(0.2, 1.0),
    horizontal_flip=0.5,
    color_jitter=0.8,
    brightness=0.4,
    contrast=0.4,
    saturation=0.4,
    hue=0.1,
    grayscale=0.2,
    gaussian_blur=0.0,
    blur_sigma=(0.1, 2.0),
    solarization=0.0,
)

CIFAR10 = Recipe(
    backbone="resnet18",  # with the CIFAR stem: a 3x3 first convolution and no max pooling
    feature_dim=512,
    hidden_dim=1024,
    output_dim=1024,
    num_layers=3,
    segment_dim=32,
    temperature=1.0,
    diag_weight=1.0,
    off_weight=1.0,
    inv_weight=1.0,
    optimizer="sgd",
    base_learning_rate=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    exclude_bias_and_norm=False,
    lars_trust_coefficient=None,
    warmup_epochs=10,
    epochs=800,
    batch_size=512,
    views=(_CIFAR10_VIEW, _CIFAR10_VIEW),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
)

CIFAR10_LINEAR_PROBE = LinearProbe(optimizer="sgd", learning_rate=30.0, epochs=100)

# The authors give no ImageNet-100 recipe: theirs for ImageNet with a ResNet-18, at solo-learn's usual
# ImageNet-100 batch and budget.
IMAGENET100 = replace(IMAGENET, backbone="resnet18", feature_dim=512, batch_size=256, epochs=400)
