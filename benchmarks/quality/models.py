"""Backbones and the projector shared by every method."""

from __future__ import annotations

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


class Projector(nn.Module):
    """``num_layers - 1`` blocks of Linear + BatchNorm + ReLU, then Linear without bias.

    The MUSIC reference configuration's projector; every method gets this exact module, so only the loss
    differs between methods.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int = 2):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers={num_layers}; expected >= 1")
        layers: list[nn.Module] = []
        dim = input_dim
        for _ in range(num_layers - 1):
            layers += [
                nn.Linear(dim, hidden_dim, bias=False),
                nn.BatchNorm1d(hidden_dim),
                nn.ReLU(inplace=True),
            ]
            dim = hidden_dim
        layers.append(nn.Linear(dim, output_dim, bias=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SSLModel(nn.Module):
    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))
