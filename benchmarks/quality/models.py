"""The backbones, and the model every method trains (a backbone and the shared projection head), saved
for the studies of the representation."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Four 3x3 conv layers (32-64-128-256, strides 2-2-2-1: 28 px -> 4 px), global average pooling: 256-d.

    Sized so the CPU profile pretrains three methods and evaluates them in under 20 minutes on 2 cores.
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        strides = (2, 2, 2, 1)
        layers, cin = [], in_channels
        for cout, stride in zip(widths, strides, strict=True):
            layers.append(_conv_bn_relu(cin, cout, stride))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def resnet18_cifar(in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool): 512-d features."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    model.out_dim = 512
    return model


def build_backbone(name: str, in_channels: int) -> nn.Module:
    if name == "small_cnn":
        return SmallCNN(in_channels)
    if name == "resnet18":
        return resnet18_cifar(in_channels)
    raise ValueError(f"backbone={name!r}; expected 'small_cnn' or 'resnet18'")


class SSLModel(nn.Module):
    """A backbone and a projection head (``train.build_model`` gives every method MUSIC's head)."""

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


def save_model(model: nn.Module, path: Path) -> None:
    """The trained backbone and projector as a state dict on the CPU, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, path.with_suffix(".partial"))
    path.with_suffix(".partial").replace(path)
