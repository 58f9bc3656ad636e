"""The backbone a profile names (both live in ``integrations.backbones``), and the model every method
trains (a backbone and the shared projection head), saved for the studies of the representation."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from integrations.backbones import SmallCNN, resnet18_cifar

# The 4-conv at twice the channels (64-128-256-512, 512-d features): the second backbone the temperature
# studies train, cheap enough for the CPU profile.
WIDE_CNN_WIDTHS = (64, 128, 256, 512)
BACKBONES = ("small_cnn", "small_cnn_wide", "resnet18")


def build_backbone(name: str, in_channels: int) -> nn.Module:
    if name == "small_cnn":
        return SmallCNN(in_channels)
    if name == "small_cnn_wide":
        return SmallCNN(in_channels, widths=WIDE_CNN_WIDTHS)
    if name == "resnet18":
        return resnet18_cifar(in_channels)
    raise ValueError(f"backbone={name!r}; expected one of {BACKBONES}")


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
