"""The small backbones the project trains with: one small CNN and one ResNet-18 with the CIFAR stem.

The quality benchmark, the healthy-values run and the stable-pretraining recipe take them from here, so
each exists once. Both expose ``out_dim``, the width of the (N, out_dim) features they return.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """3x3 Conv-BN-ReLU stages, one per entry of ``widths`` with its stride, then global average pooling.

    The default (32-64-128-256, strides 2-2-2-1: 28 px -> 4 px, 256-d) is the quality benchmark's, sized so
    its CPU profile pretrains three methods and evaluates them in under 20 minutes on 2 cores.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        strides: tuple[int, ...] = (2, 2, 2, 1),
    ):
        super().__init__()
        if len(widths) != len(strides) or not widths:
            raise ValueError(
                f"widths={widths} and strides={strides}: expected one stride per width, at least one of each"
            )
        layers, cin = [], in_channels
        for cout, stride in zip(widths, strides, strict=True):
            layers.append(_conv_bn_relu(cin, cout, stride))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def resnet18_cifar(in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool): 512-d features."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    model.out_dim = 512
    return model
