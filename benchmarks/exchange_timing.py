"""The time of one training step of the loss under each exchange, measured on real gloo processes on
this machine, beside what the counted model predicts for it.

Each world of R processes (gloo, CPU) trains the loss alone, forward and backward, on a global batch of
N samples split evenly, for each exchange ("gather", "reduce") and implementation ("reference",
"chunked"); a step's time is the slowest rank's (the ranks start each step together). Beside each
measurement, the model: the FLOPs and the bytes moved per rank that `benchmarks.exchange_scaling` counts
from the real code on a fake process group at the same shape, turned into time by two rates measured in
the same run on the same processes: matrix products (the loss's products are N x D x D) and gloo's
all_reduce. The processes share the machine's cores (threads per process: cores // R, at least one).

    python -m benchmarks.exchange_timing --out docs/results/exchange_scaling
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks import exchange_scaling
from music_ssl import implementations

WORLDS = (2, 4)
GLOBAL_BATCHES = (256, 1024, 4096)
DIM, SEGMENT_DIM = 1024, 32
EXCHANGES = ("gather", "reduce")
# Every implementation that runs compiled on the CPU (gloo's processes hold CPU tensors).
IMPLEMENTATIONS = tuple(implementations.compiled_on(torch.device("cpu")))


def _slowest(seconds: float) -> float:
    """The largest of the ranks' ``seconds``."""
    value = torch.tensor([seconds], dtype=torch.float64)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value)


def _timed(step, repeats: int) -> float:
    """The median over ``repeats`` of the slowest rank's time of ``step()``, the ranks starting together."""
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        step()
        times.append(_slowest(time.perf_counter() - start))
    return statistics.median(times)


def _rates(dim: int, local_batch: int, repeats: int) -> dict:
    """This world's matrix-product rate (FLOP/s per rank, on an N x D x D product as the loss's) and
    all_reduce rate (bytes moved per rank per second, on a D x D float32 sum), all ranks at once."""
    a, b = torch.rand(dim, local_batch), torch.rand(local_batch, dim)
    torch.mm(a, b)
    product = _timed(lambda: torch.mm(a, b), repeats)
    tensor = torch.rand(dim, dim)
    dist.all_reduce(tensor)
    reduce = _timed(lambda: dist.all_reduce(tensor), repeats)
    world = dist.get_world_size()
    moved = 2 * (world - 1) * tensor.numel() * tensor.element_size() / world
    return {"flop_per_s": 2 * dim * dim * local_batch / product, "bytes_per_s": moved / reduce}


def _rank(rank: int, world: int, store_path: str, args: argparse.Namespace, out: str) -> None:
    from music_ssl import MUSICLoss

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    rows = []
    try:
        for global_batch in args.global_batches:
            local = global_batch // world
            rates = _rates(args.dim, local, args.repeats)
            generator = torch.Generator().manual_seed(rank)
            views = [torch.randn(local, args.dim, generator=generator, requires_grad=True) for _ in range(2)]
            for implementation in IMPLEMENTATIONS:
                for exchange in EXCHANGES:
                    loss_fn = MUSICLoss(
                        segment_dim=args.segment_dim, implementation=implementation, exchange=exchange
                    )

                    def step(loss_fn=loss_fn, views=views) -> None:
                        loss_fn(views[0], views[1]).backward()
                        for view in views:
                            view.grad = None

                    step()  # first call: the layout exchange, lazy imports
                    seconds = _timed(step, args.repeats)
                    rows.append(
                        {
                            "world": world,
                            "global_batch": global_batch,
                            "dim": args.dim,
                            "segment_dim": args.segment_dim,
                            "exchange": exchange,
                            "implementation": implementation,
                            "measured_ms": 1000 * seconds,
                            "threads": torch.get_num_threads(),
                            **rates,
                        }
                    )
    finally:
        dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps(rows))


def measure(world: int, args: argparse.Namespace) -> list[dict]:
    """The rows of one world of ``world`` gloo processes."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "rows.json")
        mp.start_processes(
            _rank, args=(world, os.path.join(folder, "store"), args, out), nprocs=world, start_method="spawn"
        )
        return json.loads(Path(out).read_text())


def with_model(row: dict) -> dict:
    """``row`` with the counted FLOPs and bytes moved per rank (the reference's code on a fake process
    group; the chunked implementation does the same products and moves the same tensors) and the time
    they predict at the rates measured beside it."""
    counted = exchange_scaling.one_rank(
        row["world"], row["global_batch"], row["exchange"], "reference", row["dim"], row["segment_dim"]
    )
    flops, moved = counted["tflop"] * 1e12, counted["moved_gib"] * 2**30
    compute_ms, exchange_ms = 1000 * flops / row["flop_per_s"], 1000 * moved / row["bytes_per_s"]
    return {
        **row,
        "counted_gflop": flops / 1e9,
        "counted_moved_mib": moved / 2**20,
        "model_ms": compute_ms + exchange_ms,
        "model_exchange_ms": exchange_ms,
    }


def table(rows: list[dict]) -> str:
    """Markdown: one line per (world, global batch), each exchange's measured and modelled time."""
    head = (
        "| R | N | counted per rank, gather: GFLOP / MiB moved | reduce | "
        + " | ".join(f"{i}: gather / reduce, ms measured" for i in IMPLEMENTATIONS)
        + " | model: gather / reduce, ms |"
    )
    lines = [head, "|---|---|---|---|" + "---|" * (len(IMPLEMENTATIONS) + 1)]
    index = {(r["world"], r["global_batch"], r["exchange"], r["implementation"]): r for r in rows}
    for world in dict.fromkeys(r["world"] for r in rows):
        for n in dict.fromkeys(r["global_batch"] for r in rows):
            mine = {key[2:]: row for key, row in index.items() if key[:2] == (world, n)}
            if not mine:
                continue
            ref = {exchange: mine[(exchange, "reference")] for exchange in EXCHANGES}
            counted = [
                f"{ref[e]['counted_gflop']:.3g} / {ref[e]['counted_moved_mib']:.3g}" for e in EXCHANGES
            ]
            measured = [
                " / ".join(f"{mine[(e, i)]['measured_ms']:.1f}" for e in EXCHANGES) for i in IMPLEMENTATIONS
            ]
            model = " / ".join(f"{ref[e]['model_ms']:.1f}" for e in EXCHANGES)
            lines.append(f"| {world} | {n} | " + " | ".join([*counted, *measured, model]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for timing.json and timing.md")
    parser.add_argument("--worlds", type=lambda s: [int(x) for x in s.split(",")], default=list(WORLDS))
    parser.add_argument(
        "--global-batches", type=lambda s: [int(x) for x in s.split(",")], default=list(GLOBAL_BATCHES)
    )
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--segment-dim", type=int, default=SEGMENT_DIM)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per measurement (median)")
    args = parser.parse_args(argv)
    for n in args.global_batches:
        for world in args.worlds:
            if n % world:
                parser.error(f"--global-batches: {n} is not a multiple of the world size {world}")
    if args.dim % args.segment_dim:
        parser.error(f"--dim {args.dim} is not a multiple of --segment-dim {args.segment_dim}")
    rows = []
    for world in args.worlds:
        for row in measure(world, args):
            rows.append(with_model(row))
            print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "timing.json").write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=1))
    (args.out / "timing.md").write_text(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
