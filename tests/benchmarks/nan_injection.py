"""A loss that turns non-finite after a number of calls, put in place of one method's loss."""

from __future__ import annotations

import torch
from torch import nn

import benchmarks.quality.train as train_module


class NonFiniteAfter(nn.Module):
    """The wrapped loss, until ``after`` calls have been made; NaN from then on."""

    def __init__(self, inner: nn.Module, after: int):
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = self.inner(z_a, z_b)
        return loss * float("nan") if self.calls > self.after else loss


def inject_nan(monkeypatch, method: str, after: int) -> None:
    build = train_module.build_loss

    def build_loss(name, params):
        loss = build(name, params)
        return NonFiniteAfter(loss, after) if name == method else loss

    monkeypatch.setattr(train_module, "build_loss", build_loss)
