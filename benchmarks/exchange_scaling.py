"""What one rank's loss costs as ranks are added, for each way the ranks exchange (`exchange=`): counted
from the real code on simulated worlds of 8 to 1024 ranks, without a GPU and without the ranks.

Every configuration runs one training step of the loss (forward and backward) as one rank of a world of
R ranks: torch's fake process group answers every collective at once, and the projections live on the
meta device, which holds shapes and no data. What the real code then does is counted, not estimated:
floating-point operations (torch's FlopCounterMode), the peak of the bytes its tensors hold at once
(every tensor an operation makes, counted until it is freed), and the bytes its collectives move per
rank (an all_gather receives the other ranks' parts; a ring all_reduce sends and receives about twice
its tensor). Every rank holds N / R samples; the other ranks' layout is taken equal to this rank's.

    python -m benchmarks.exchange_scaling --out docs/results/exchange_scaling
"""

from __future__ import annotations

import argparse
import json
import weakref
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

# The authors' ImageNet layout: D = 8160 (102 segments of 80 attributes), two views.
DIM, SEGMENT_DIM = 8160, 80
WORLDS = (8, 16, 32, 64, 128, 256, 512, 1024)
GLOBAL_BATCHES = (2048, 8192, 32768, 65536)
# (exchange, implementation): both with the reference, which computes both, in plain torch operations the
# counters see. (A fused implementation is one custom operator, opaque to them; its gather does the same
# three N x D x D products as the reference's and holds O(N D) values instead of D x D.)
WAYS = (("gather", "reference"), ("reduce", "reference"))


class PeakBytes(TorchDispatchMode):
    """The most bytes that the tensors made inside the mode held at once (each storage counted once,
    from the operation that made it until it is freed)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage._cdata
                if key not in self._sizes:
                    self._sizes[key] = storage.nbytes()
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key)


class CollectiveBytes:
    """Counts the bytes a rank's collectives move while installed (`with`): an all_gather receives the
    other R - 1 ranks' parts, a ring all_reduce sends and receives 2 (R - 1) / R of its tensor."""

    def __init__(self, world: int) -> None:
        self.world, self.bytes = world, 0

    def __enter__(self) -> CollectiveBytes:
        self._saved = dist.all_gather, dist.all_reduce
        all_gather, all_reduce = self._saved

        def gather(parts, tensor, *args, **kwargs):
            self.bytes += (self.world - 1) * tensor.numel() * tensor.element_size()
            return all_gather(parts, tensor, *args, **kwargs)

        def reduce(tensor, *args, **kwargs):
            self.bytes += 2 * (self.world - 1) * tensor.numel() * tensor.element_size() // self.world
            return all_reduce(tensor, *args, **kwargs)

        dist.all_gather, dist.all_reduce = gather, reduce
        return self

    def __exit__(self, *exc) -> None:
        dist.all_gather, dist.all_reduce = self._saved


def one_rank(
    world: int,
    global_batch: int,
    exchange: str,
    implementation: str,
    dim: int | None = None,
    segment_dim: int | None = None,
) -> dict:
    """A row: what one rank of ``world`` ranks counts for one training step of the loss at
    ``global_batch`` samples in all, of width ``dim`` in segments of ``segment_dim`` (default: the
    authors' layout, `DIM` and `SEGMENT_DIM`)."""
    dim = DIM if dim is None else dim
    segment_dim = SEGMENT_DIM if segment_dim is None else segment_dim
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from music_ssl import MUSICLoss, distributed

    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    # The layout exchange reads the ranks' batch sizes, which meta tensors do not hold: every rank's is
    # this rank's (equal ranks).
    rows_per_rank = distributed._rows_per_rank
    distributed._rows_per_rank = lambda x, layout, group: [x.shape[0]] * dist.get_world_size(group)
    local = max(1, global_batch // world)
    views = [torch.empty(local, dim, device="meta", requires_grad=True) for _ in range(2)]
    loss_fn = MUSICLoss(segment_dim=segment_dim, implementation=implementation, exchange=exchange)
    try:
        with CollectiveBytes(world) as moved, FlopCounterMode(display=False) as flops, PeakBytes() as memory:
            loss_fn(views[0], views[1]).backward()
    finally:
        distributed._rows_per_rank = rows_per_rank
        dist.destroy_process_group()
    return {
        "world": world,
        "global_batch": global_batch,
        "local_batch": local,
        "exchange": exchange,
        "implementation": implementation,
        "tflop": flops.get_total_flops() / 1e12,
        "peak_gib": memory.peak / 2**30,
        "moved_gib": moved.bytes / 2**30,
    }


def table(rows: list[dict]) -> str:
    """The rows as Markdown: one line per (global batch, world), each way's counts side by side."""
    ways = [f"{exchange} ({implementation})" for exchange, implementation in WAYS]
    head = "| N | R | " + " | ".join(f"{way}: TFLOP / GiB held / GiB moved" for way in ways) + " |"
    lines = [head, "|---|---|" + "---|" * len(ways)]
    index = {(r["global_batch"], r["world"], r["exchange"], r["implementation"]): r for r in rows}
    for n in dict.fromkeys(r["global_batch"] for r in rows):
        for world in dict.fromkeys(r["world"] for r in rows):
            cells = []
            for exchange, implementation in WAYS:
                row = index.get((n, world, exchange, implementation))
                cells.append(
                    ""
                    if row is None
                    else f"{row['tflop']:.3g} / {row['peak_gib']:.3g} / {row['moved_gib']:.3g}"
                )
            lines.append(f"| {n} | {world} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Per-rank TFLOP and peak GiB against the number of ranks, a line per way and global batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (exchange, implementation), style in zip(WAYS, ("-", "--"), strict=True):
        for n, colour in zip(
            dict.fromkeys(r["global_batch"] for r in rows), plt.cm.viridis.colors[::64], strict=False
        ):
            mine = [
                r
                for r in rows
                if (r["exchange"], r["implementation"], r["global_batch"]) == (exchange, implementation, n)
            ]
            worlds = [r["world"] for r in mine]
            label = f"{exchange} ({implementation}), N={n}"
            axes[0].plot(worlds, [r["tflop"] for r in mine], style, color=colour, label=label)
            axes[1].plot(worlds, [r["peak_gib"] for r in mine], style, color=colour, label=label)
    for axis, name in zip(axes, ("TFLOP per rank and step", "peak GiB per rank"), strict=True):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("ranks R")
        axis.set_ylabel(name)
        axis.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=6, ncol=1, loc="upper right")
    figure.suptitle(f"The loss's cost per rank, D = {DIM}, C = {SEGMENT_DIM}, two views")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for results.json, table.md, scaling.png"
    )
    parser.add_argument("--worlds", type=lambda s: [int(x) for x in s.split(",")], default=list(WORLDS))
    parser.add_argument(
        "--global-batches", type=lambda s: [int(x) for x in s.split(",")], default=list(GLOBAL_BATCHES)
    )
    args = parser.parse_args(argv)
    rows = []
    for n in args.global_batches:
        for world in args.worlds:
            for exchange, implementation in WAYS:
                rows.append(one_rank(world, n, exchange, implementation))
                print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"dim": DIM, "segment_dim": SEGMENT_DIM, "rows": rows}, indent=1)
    )
    (args.out / "table.md").write_text(table(rows))
    plot(rows, args.out / "scaling.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
