"""A training step (MUSICProjectionHead + MUSICLoss, forward and backward) eager and under torch.compile.

    python -m benchmarks.compile_step --out results/compile_step

Both steps are built from the same initial weights and timed alternately, repeat by repeat, so that a
change in machine load hits both alike; the table gives the median time of each and their ratio, and
the largest difference of loss and gradients between the two (the compiled step must match eager).
The fused loss is one custom operator, so `fullgraph=True` holds: the head's layers are compiled around
it and the loss runs as it does in eager mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from music_ssl import MUSICLoss, MUSICProjectionHead, registry


def _step_function(head: torch.nn.Module, loss_fn: MUSICLoss):
    def step(x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        return loss_fn(head(x_a), head(x_b))

    return step


def _run(step, head, x_a, x_b) -> tuple[float, torch.Tensor, list[torch.Tensor]]:
    head.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss = step(x_a, x_b)
    loss.backward()
    seconds = time.perf_counter() - start
    return seconds, loss.detach(), [p.grad for p in head.parameters()]


def measure(
    batch_size: int,
    input_dim: int,
    hidden_dim: int,
    output_dim: int,
    segment_dim: int,
    implementation: str,
    repeats: int,
    backend: str,
) -> dict:
    torch.manual_seed(0)
    heads = {}
    for mode in ("eager", "compiled"):
        torch.manual_seed(0)
        heads[mode] = MUSICProjectionHead(input_dim, hidden_dim, output_dim, segment_dim=segment_dim)
    loss_fn = MUSICLoss(segment_dim=segment_dim, implementation=implementation)
    steps = {
        "eager": _step_function(heads["eager"], loss_fn),
        "compiled": torch.compile(
            _step_function(heads["compiled"], loss_fn), fullgraph=True, backend=backend
        ),
    }
    x_a, x_b = torch.randn(2, batch_size, input_dim)

    start = time.perf_counter()
    _run(steps["compiled"], heads["compiled"], x_a, x_b)
    compile_seconds = time.perf_counter() - start
    _run(steps["eager"], heads["eager"], x_a, x_b)

    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    results = {}
    for _ in range(repeats):
        for mode in ("eager", "compiled"):
            seconds, loss, grads = _run(steps[mode], heads[mode], x_a, x_b)
            times[mode].append(seconds)
            results[mode] = (loss, grads)
    (loss_e, grads_e), (loss_c, grads_c) = results["eager"], results["compiled"]
    grad_diff = max(
        ((g_c - g_e).abs().max() / g_e.abs().max()).item() for g_e, g_c in zip(grads_e, grads_c, strict=True)
    )
    eager_ms = 1000 * statistics.median(times["eager"])
    compiled_ms = 1000 * statistics.median(times["compiled"])
    return {
        "shape": {
            "batch_size": batch_size,
            "head": [input_dim, hidden_dim, output_dim],
            "segment_dim": segment_dim,
        },
        "implementation": implementation,
        "backend": backend,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "first_compiled_step_s": compile_seconds,
        "eager_ms": eager_ms,
        "compiled_ms": compiled_ms,
        "compiled_over_eager": compiled_ms / eager_ms,
        "loss_difference": abs(loss_c - loss_e).item(),
        "relative_gradient_difference": grad_diff,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| N | head | C | implementation | eager ms | compiled ms | compiled / eager "
        "| first compiled step s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        head = "-".join(map(str, row["shape"]["head"]))
        lines.append(
            f"| {row['shape']['batch_size']} | {head} | {row['shape']['segment_dim']} "
            f"| {row['implementation']} "
            f"| {row['eager_ms']:.1f} | {row['compiled_ms']:.1f} | {row['compiled_over_eager']:.2f} "
            f"| {row['first_compiled_step_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text}")
    return value


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for compile_step.json and .md")
    parser.add_argument("--batch-size", type=_positive, default=256)
    parser.add_argument("--head", default="512,2048,2048", help="input,hidden,output dims of the head")
    parser.add_argument("--segment-dim", type=_positive, default=32)
    parser.add_argument("--implementations", default="chunked,reference")
    parser.add_argument("--repeats", type=_positive, default=20)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--threads", type=_positive, default=None)
    args = parser.parse_args(argv)
    dims = [int(part) for part in args.head.split(",")]
    if len(dims) != 3 or min(dims) < 1:
        parser.error(f"--head must be three positive ints 'input,hidden,output', got {args.head!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for implementation in args.implementations.split(","):
        if implementation not in registry.choices():
            parser.error(f"unknown implementation {implementation!r}: expected some of {registry.choices()}")
        torch._dynamo.reset()
        rows.append(
            measure(args.batch_size, *dims, args.segment_dim, implementation, args.repeats, args.backend)
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile_step.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "compile_step.md").write_text(table(rows))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
