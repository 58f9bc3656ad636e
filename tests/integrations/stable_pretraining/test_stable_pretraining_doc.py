"""The Python snippet of docs/stable_pretraining.md runs as written, with a reader's backbone, and builds
an spt.Module whose forward function trains MUSIC."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

spt = pytest.importorskip(
    "stable_pretraining",
    reason="stable-pretraining is not installed: pip install music-ssl[stable-pretraining]",
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "stable_pretraining.md"


def test_drop_in_snippet_builds_a_module_that_trains_music():
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    # What the page calls the reader's backbone: anything that maps images to 512-d features.
    backbone = nn.Sequential(
        nn.Conv2d(3, 512, kernel_size=8, stride=8), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    namespace = {"spt": spt, "backbone": backbone}
    exec(compile(block, str(DOC), "exec"), namespace)
    module = namespace["module"]
    assert isinstance(module, spt.Module)
    module.train()
    views = [{"image": torch.randn(8, 3, 32, 32), "label": torch.arange(8)} for _ in range(2)]
    module.log = lambda *args, **kwargs: None  # no Trainer attached
    module.log_dict = lambda *args, **kwargs: None
    out = module.forward({"views": views}, stage="fit")
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert backbone[0].weight.grad is not None
