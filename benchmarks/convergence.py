"""Convergence check: one training run, step by step, with an implementation and with the reference.

The quality benchmark's CPU profile model (its 4-conv backbone and MUSIC's head, 1024 wide, one hidden
layer, segments of 32 attributes) trains with SGD on two augmented views of the same images, from the
same seed, once per implementation; the losses of every step are compared with the reference's. A kernel
whose values or gradients were wrong would leave the reference's curve within a few steps; rounding alone
keeps the curves together to a stated tolerance (`TOLERANCE`, relative to the loss's scale). The images
are fixed and synthetic (smooth random blobs, seeded), so the check needs no dataset: a GPU machine
without network runs it as it is (benchmarks/gpu_check.sh), and CI runs it on the CPU.

    python -m benchmarks.convergence --implementations chunked --steps 200 --device cpu
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import torch
import torch.nn.functional as F

from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import CPU
from benchmarks.quality.models import SSLModel, build_backbone
from music_ssl import MUSICProjectionHead

SEGMENT_DIM = 32
# Steps per window of the windowed comparison.
WINDOW = 20
# How far a curve may lie from the reference's, relative to the scale of the reference's losses. In float64
# every step must agree (rounding stays far below it over hundreds of steps). In float32 and under bf16
# autocast, rounding differences grow through training as any two runs' would (a single step may differ
# by a percent after a hundred steps), so the mean loss of every window of WINDOW steps is compared.
TOLERANCE = {"float64": 1e-6, "float32": 1e-2, "bfloat16": 3e-2}


def synthetic_images(count: int, seed: int = 0) -> torch.Tensor:
    """(count, 1, 28, 28) uint8 images: random 7 x 7 fields upsampled, so crops see shapes, not noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 1, 7, 7, generator=generator)
    return (F.interpolate(coarse, size=28, mode="bilinear", align_corners=False) * 255).to(torch.uint8)


def loss_curve(
    implementation: str,
    device: str = "cpu",
    steps: int = 200,
    batch_size: int = 128,
    autocast: str = "float32",
    seed: int = 0,
    width: int = CPU.projector_output_dim,
) -> list[float]:
    """The loss of every step of one run with ``implementation``. ``autocast``: "float64" trains the
    model in float64 (the CPU's exact check), "float32" plainly, "bfloat16" under bf16 autocast (on CUDA,
    as the GPU profile trains; the loss computes in float32). ``width``: the head's hidden and output
    width (the profile's 1024; a rehearsal in Triton's interpreter takes less)."""
    torch.manual_seed(seed)
    backbone = build_backbone(CPU.backbone, in_channels=1)
    head = MUSICProjectionHead(
        backbone.out_dim,
        width,
        width,
        num_layers=CPU.projector_num_layers,
        segment_dim=SEGMENT_DIM,
    )
    model = SSLModel(backbone, head).to(device, torch.float64 if autocast == "float64" else torch.float32)
    loss_fn = head.loss(implementation=implementation)
    lr = CPU.lr * batch_size / 256
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=CPU.momentum, weight_decay=CPU.weight_decay
    )
    augment = BatchAugment(CPU.augment, mean=[0.5], std=[0.25])
    images = synthetic_images(8 * batch_size, seed).to(device)
    generator = torch.Generator(device).manual_seed(seed)
    region = (
        torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
        if autocast == "bfloat16"
        else contextlib.nullcontext()
    )
    losses = []
    for step in range(steps):
        first = (step * batch_size) % len(images)
        batch = images[first : first + batch_size]
        views = [augment(batch, generator).to(next(model.parameters()).dtype) for _ in range(2)]
        with region:
            z_a, z_b = (model(view) for view in views)
        loss = loss_fn(z_a, z_b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def compare(curve: list[float], reference: list[float], autocast: str = "float32") -> dict:
    """The largest step-wise and window-mean differences from the reference's curve over its scale, and
    the verdict on the one `TOLERANCE` holds for ``autocast`` (step-wise in float64, else windows)."""
    scale = max(abs(value) for value in reference)
    steps = torch.tensor(curve, dtype=torch.float64)
    want = torch.tensor(reference, dtype=torch.float64)
    step_wise = ((steps - want).abs().max() / scale).item()
    windows = len(curve) // WINDOW
    if windows:
        means = steps[: windows * WINDOW].view(windows, WINDOW).mean(1)
        want_means = want[: windows * WINDOW].view(windows, WINDOW).mean(1)
        window_wise = ((means - want_means).abs().max() / scale).item()
    else:
        window_wise = step_wise
    judged = step_wise if autocast == "float64" else window_wise
    return {
        "max_step_difference": step_wise,
        "max_window_difference": window_wise,
        "tolerance": TOLERANCE[autocast],
        "ok": judged <= TOLERANCE[autocast],
    }


def run(
    implementations: list[str],
    device: str,
    steps: int,
    autocast: str,
    batch_size: int = 128,
    width: int = CPU.projector_output_dim,
) -> list[dict]:
    """A row per implementation: its curve's comparison with the reference's, first and last losses."""
    reference = loss_curve("reference", device, steps, batch_size, autocast, width=width)
    rows = []
    for implementation in implementations:
        curve = loss_curve(implementation, device, steps, batch_size, autocast, width=width)
        row = {"implementation": implementation, "device": device, "steps": steps, "autocast": autocast}
        row |= {"first_loss": curve[0], "last_loss": curve[-1], "reference_last_loss": reference[-1]}
        rows.append(row | compare(curve, reference, autocast))
    return rows


def row_key(row: dict) -> str:
    """A row's name in the GPU check's plan and report: implementation, precision."""
    return f"{row['implementation']} {row['autocast']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--implementations", type=lambda s: s.split(","), default=["chunked"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--autocast", choices=tuple(TOLERANCE), default="float32")
    args = parser.parse_args(argv)
    rows = run(args.implementations, args.device, args.steps, args.autocast, args.batch_size)
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
