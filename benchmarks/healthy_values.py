"""What MUSIC's logged values do in a short real training run, beside the values every C implies.

    python -m benchmarks.healthy_values                 # C = 16, 60 steps on Fashion-MNIST, 2 threads
    python -m benchmarks.healthy_values --segment-dim 32 --steps 100

Trains the quality benchmark's small CNN with MUSIC's head (1024 wide) on the first 4096 Fashion-MNIST
training images, batch 256, and prints every key of `MUSICOutput.log_dict` at the first step and at the
last, next to three reference points that follow from the math for any C: uniform outputs (every segment
the uniform distribution: what an untrained network approaches), the global minimum (hard, view-consistent,
uniformly used and pairwise independent codes) and complete collapse (every image the same one-hot code).
docs/monitoring.md holds the table; tests/benchmarks/test_healthy_values.py runs this at 40 steps and
checks the directions.
"""

from __future__ import annotations

import argparse
import math

import torch

from benchmarks.quality.augment import AugmentConfig, BatchAugment
from benchmarks.quality.data import DEBIAN_FASHION_MNIST, load_dataset
from integrations.backbones import SmallCNN
from music_ssl import MUSICProjectionHead

KEYS = (
    "music_loss",
    "music_inv",
    "music_diag",
    "music_off",
    "music_attribute_entropy",
    "music_attribute_entropy_min",
    "music_confidence",
    "music_code_entropy",
    "music_code_entropy_min",
)


def reference_points(segment_dim: int) -> dict[str, dict[str, float | None]]:
    """Every logged key at uniform outputs, at the minimum and at complete collapse, for C attributes."""
    log_c = math.log(segment_dim)
    # At exactly uniform outputs every attribute ties and each sample's code is the first attribute, a
    # tie-break rather than a code: the hard codes' entropy has no reference value there (None).
    uniform: dict[str, float | None] = {
        "music_inv": log_c,
        "music_diag": -2 * log_c / segment_dim,
        "music_off": -2 * log_c,
        "music_attribute_entropy": log_c,
        "music_attribute_entropy_min": log_c,
        "music_confidence": 1 / segment_dim,
        "music_code_entropy": None,
        "music_code_entropy_min": None,
    }
    minimum = {
        "music_inv": 0.0,
        "music_diag": -log_c,
        "music_off": -2 * log_c,
        "music_attribute_entropy": log_c,
        "music_attribute_entropy_min": log_c,
        "music_confidence": 1.0,
        "music_code_entropy": log_c,
        "music_code_entropy_min": log_c,
    }
    collapse = dict.fromkeys(KEYS[1:4], 0.0) | {
        "music_attribute_entropy": 0.0,
        "music_attribute_entropy_min": 0.0,
        "music_confidence": 1.0,
        "music_code_entropy": 0.0,
        "music_code_entropy_min": 0.0,
    }
    points: dict[str, dict[str, float | None]] = {
        "uniform outputs": uniform,
        "global minimum": minimum,
        "complete collapse": collapse,
    }
    for values in points.values():
        values["music_loss"] = sum(values[k] for k in KEYS[1:4])  # type: ignore[misc]
    return points  # type: ignore[return-value]


def train(
    segment_dim: int = 16,
    steps: int = 60,
    seed: int = 0,
    images: int = 4096,
    temperature: float | None = None,
) -> dict[str, dict[str, float]]:
    """Every logged key at the first and at the last step of a short training run, at the loss's default
    temperature unless ``temperature`` is given."""
    torch.manual_seed(seed)
    data = load_dataset("fashion_mnist", DEBIAN_FASHION_MNIST).head(images, 16)
    augment = BatchAugment(AugmentConfig(crop_scale=(0.25, 1.0)), *data.channel_stats())
    backbone = SmallCNN(data.channels)
    head = MUSICProjectionHead(backbone.out_dim, 1024, 1024, num_layers=2, segment_dim=segment_dim)
    model = torch.nn.Sequential(backbone, head)
    loss_fn = head.loss() if temperature is None else head.loss(temperature=temperature)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    seen = {}
    for step in range(steps):
        batch = data.train_images[torch.randint(0, len(data.train_labels), (256,), generator=generator)]
        out = loss_fn.terms(model(augment(batch, generator)), model(augment(batch, generator)))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if step in (0, steps - 1):
            seen["first step" if step == 0 else f"step {steps}"] = {
                k: float(v) for k, v in out.log_dict().items()
            }
    return seen


def table(columns: dict[str, dict[str, float | None]]) -> str:
    lines = ["| key | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for key in KEYS:
        cells = ["–" if values[key] is None else f"{values[key]:.3f}" for values in columns.values()]
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.healthy_values",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--segment-dim", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=None, help="default: the loss's")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    points = reference_points(args.segment_dim)
    columns = {**train(args.segment_dim, args.steps, temperature=args.temperature), **points}
    temperature = "the default temperature" if args.temperature is None else f"temperature {args.temperature}"
    print(f"C = {args.segment_dim} ({1024 // args.segment_dim} segments), batch 256, {temperature}\n")
    print(table(columns))
    return columns


if __name__ == "__main__":
    main()
