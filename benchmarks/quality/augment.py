"""Augmentations applied to whole batches of tensors on the training device.

One ``affine_grid`` + ``grid_sample`` call does random-resized-crop and horizontal flip for the whole
batch, and the colour operations are per-sample broadcasts, so augmenting a batch costs about as much as
one small convolution on CPU and next to nothing on a GPU: the loader never becomes the bottleneck.

Multi-crop's local views (`BatchAugment.local`) are the same augmentation with a smaller crop area,
resampled to a smaller side in the same ``grid_sample`` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2  # RGB only
    grayscale_p: float = 0.2  # RGB only
    blur_p: float = 0.0
    solarize_p: float = 0.0


def _uniform(n: int, low: float, high: float, device, generator=None) -> torch.Tensor:
    return torch.rand(n, device=device, generator=generator) * (high - low) + low


def random_resized_crop_flip(
    x: torch.Tensor, cfg: AugmentConfig, generator=None, size: int | None = None
) -> torch.Tensor:
    """Random resized crop (area ``crop_scale``, aspect ``crop_ratio``) and flip, resampled to ``size`` x
    ``size`` pixels (default: the input's size)."""
    n, device = x.shape[0], x.device
    area = _uniform(n, *cfg.crop_scale, device, generator)
    log_ratio = _uniform(n, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), device, generator)
    ratio = log_ratio.exp()
    # Width and height of the crop as fractions of the image side, clipped to the image.
    w = (area * ratio).sqrt().clamp(max=1.0)
    h = (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, device=device, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, device=device, generator=generator) * 2 - 1) * (1 - h)
    flip = torch.rand(n, device=device, generator=generator) < cfg.flip_p
    sx = torch.where(flip, -w, w)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = sx, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    shape = list(x.shape) if size is None else [n, x.shape[1], size, size]
    grid = F.affine_grid(theta, shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def color_jitter(x: torch.Tensor, cfg: AugmentConfig, generator=None) -> torch.Tensor:
    n, device = x.shape[0], x.device
    apply = (torch.rand(n, device=device, generator=generator) < cfg.jitter_p).to(x.dtype).view(n, 1, 1, 1)

    def factor(strength: float) -> torch.Tensor:
        f = _uniform(n, 1 - strength, 1 + strength, device, generator).to(x.dtype).view(n, 1, 1, 1)
        return 1 + apply * (f - 1)

    # Random order of brightness/contrast/saturation is not worth a per-sample permutation here.
    x = x * factor(cfg.brightness)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor(cfg.contrast) + mean
    if x.shape[1] == 3 and cfg.saturation > 0:
        g = _gray(x)
        x = (x - g) * factor(cfg.saturation) + g
    x = x.clamp(0, 1)
    if x.shape[1] == 3 and cfg.grayscale_p > 0:
        to_gray = (torch.rand(n, device=device, generator=generator) < cfg.grayscale_p).view(n, 1, 1, 1)
        x = torch.where(to_gray, _gray(x).expand_as(x), x)
    return x


def gaussian_blur(x: torch.Tensor, p: float, generator=None) -> torch.Tensor:
    """Blur a random subset with a per-sample sigma in [0.1, 2.0] (in pixels of a 32-px image)."""
    n, c, h, _ = x.shape
    if p <= 0:
        return x
    apply = torch.rand(n, device=x.device, generator=generator) < p
    sigma = _uniform(n, 0.1, 2.0, x.device, generator) * h / 32
    radius = max(1, int(math.ceil(2.0 * h / 32 * 2)))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).to(x.dtype) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (n, k)
    # Depthwise separable conv with one kernel per (sample, channel): fold the batch into channels.
    k = kernel.repeat_interleave(c, dim=0)
    y = x.reshape(1, n * c, h, -1)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.view(n * c, 1, -1, 1), groups=n * c)
    return torch.where(apply.view(n, 1, 1, 1), y.view_as(x), x)


def solarize(x: torch.Tensor, p: float, generator=None) -> torch.Tensor:
    if p <= 0:
        return x
    apply = (torch.rand(x.shape[0], device=x.device, generator=generator) < p).view(-1, 1, 1, 1)
    return torch.where(apply & (x >= 0.5), 1 - x, x)


class BatchAugment:
    """``uint8 (N, C, H, W)`` batch -> augmented, normalized float batch on the same device."""

    def __init__(self, cfg: AugmentConfig, mean: list[float], std: list[float]):
        self.cfg = cfg
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __call__(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """One global view of every image, at the images' size."""
        return self._view(images, self.cfg, generator)

    def local(
        self,
        images: torch.Tensor,
        count: int,
        size: int,
        crop_scale: tuple[float, float],
        generator=None,
    ) -> torch.Tensor:
        """``count`` local views of every image in one batch, view by view (the first ``len(images)`` rows
        are the first view): crops of ``crop_scale`` of the image area resampled to ``size`` x ``size``
        pixels, with the flip and the colour operations of the global views."""
        cfg = replace(self.cfg, crop_scale=tuple(crop_scale))
        return self._view(images.repeat(count, *([1] * (images.ndim - 1))), cfg, generator, size)

    def _view(self, images: torch.Tensor, cfg: AugmentConfig, generator, size: int | None = None):
        x = images.float().div_(255)
        x = random_resized_crop_flip(x, cfg, generator, size)
        x = color_jitter(x, cfg, generator)
        x = gaussian_blur(x, cfg.blur_p, generator)
        x = solarize(x, cfg.solarize_p, generator)
        return self.normalize(x)

    def plain(self, images: torch.Tensor) -> torch.Tensor:
        """No augmentation: the evaluation view."""
        return self.normalize(images.float().div_(255))
