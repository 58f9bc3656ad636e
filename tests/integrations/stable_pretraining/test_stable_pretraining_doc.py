"""The Python snippets of docs/stable_pretraining.md run as written, with a reader's backbone: the drop-in
builds an spt.Module whose forward function trains MUSIC, on two views and on the multi-crop views."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

spt = pytest.importorskip(
    "stable_pretraining",
    reason="stable-pretraining is not installed: pip install music-ssl[stable-pretraining]",
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "stable_pretraining.md"


def run_snippets() -> dict:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 2, "the page's snippets changed: update this test"
    # What the page calls the reader's backbone: anything that maps images to 512-d features.
    backbone = nn.Sequential(
        nn.Conv2d(3, 512, kernel_size=8, stride=8), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    namespace = {"spt": spt, "backbone": backbone}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


def test_drop_in_snippet_builds_a_module_that_trains_music():
    namespace = run_snippets()
    backbone = namespace["backbone"]
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


def test_multi_crop_snippet_gives_global_and_local_views_the_module_trains_on():
    namespace = run_snippets()
    module, multi_crop = namespace["module"], namespace["multi_crop"]
    images = [Image.new("RGB", (48, 48), color=(10 * i, 30, 200)) for i in range(8)]
    samples = [multi_crop({"image": image, "label": i}) for i, image in enumerate(images)]
    sizes = {name: tuple(view["image"].shape) for name, view in samples[0].items()}
    assert sizes == {"global_1": (3, 32, 32), "global_2": (3, 32, 32)} | {
        f"local_{i}": (3, 16, 16) for i in range(1, 7)
    }
    batch = torch.utils.data.default_collate(samples) | {"batch_idx": 0}
    module.train()
    module.log = lambda *args, **kwargs: None  # no Trainer attached
    module.log_dict = lambda *args, **kwargs: None
    out = module.forward(batch, stage="fit")
    assert torch.isfinite(out["loss"])
    assert out["embedding"].shape == (2 * 8, 512)
