"""The Python snippets of docs/integrations.md's lightly section run as written, in order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("lightly", reason="pip install 'music-ssl[lightly]'")

DOC = Path(__file__).resolve().parents[3] / "docs" / "integrations.md"


def python_blocks(title: str) -> list[str]:
    """The ```python blocks of a level-2 section of the page."""
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


def test_lightly_snippets_run_in_order():
    blocks = python_blocks("lightly")
    assert len(blocks) == 4, "the lightly section's snippets changed: update this test's stand-ins"
    # What the page calls the model's backbone, a batch's two views and a multi-crop batch's views (two
    # global, six local), small enough for a CPU.
    backbone = nn.Sequential(nn.Conv2d(3, 512, kernel_size=8, stride=8), nn.AdaptiveAvgPool2d(1))
    views = [torch.randn(8, 3, 32, 32) for _ in range(2)] + [torch.randn(8, 3, 16, 16) for _ in range(6)]
    namespace = {
        "backbone": backbone,
        "x0": torch.randn(8, 3, 32, 32),
        "x1": torch.randn(8, 3, 32, 32),
        "views": views,
    }
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert torch.isfinite(namespace["out"].loss)
    assert backbone[0].weight.grad is not None
    assert set(namespace["logs"]) >= {"train_music_loss", "train_music_attribute_entropy_min"}
    assert [view.shape for view in namespace["transform"](_image())] == [(3, 32, 32), (3, 32, 32)]
    multi_crop_views = namespace["multi_crop"](_image())
    assert [view.shape for view in multi_crop_views] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 6
    assert len(namespace["z"]) == 8 and torch.isfinite(namespace["loss"])


def _image():
    from PIL import Image

    return Image.new("RGB", (48, 48), color=(120, 30, 200))
