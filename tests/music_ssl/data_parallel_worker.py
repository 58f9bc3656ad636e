"""One rank of a data-parallel training run as a user launches it with torchrun: a BatchNorm-free head
and `MUSICLoss`, a few SGD steps on this rank's shard of fixed batches, wrapped by DDP or by FSDP2's
``fully_shard``. Writes this rank's losses and full parameters to ``<out>/rank<global rank>.pt``.

Run as a script (``torchrun ... data_parallel_worker.py --wrap ddp --out DIR``): it imports only torch
and music_ssl, so the installed package is the one tested.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from music_ssl import MUSICLoss

STEPS = 3
SHARDS = (3, 7)  # per-rank batch sizes: uneven on purpose
FEATURES, WIDTH, SEGMENT_DIM = 12, 32, 8


def head() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH))


def batches() -> list[torch.Tensor]:
    """Every step's (2, N_global, FEATURES) views of the global batch."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(2, sum(SHARDS), FEATURES, generator=generator) for _ in range(STEPS)]


def train(model: nn.Module, loss_fn: MUSICLoss, rows: slice) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for x_a, x_b in batches():
        optimizer.zero_grad()
        loss = loss_fn(model(x_a[rows]), model(x_b[rows]))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _wrapped(model: nn.Module, wrap: str) -> nn.Module:
    if wrap == "ddp":
        return nn.parallel.DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    return model


def _full(parameter: torch.Tensor) -> torch.Tensor:
    """The whole parameter (FSDP2 holds a shard of it as a DTensor on each rank)."""
    full_tensor = getattr(parameter, "full_tensor", None)
    return (full_tensor() if full_tensor is not None else parameter).detach().clone()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wrap", choices=("ddp", "fsdp2"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    if dist.get_world_size() != len(SHARDS):
        sys.exit(f"expected {len(SHARDS)} ranks, got {dist.get_world_size()}")
    model = _wrapped(head(), args.wrap)
    start = sum(SHARDS[:rank])
    losses = train(model, MUSICLoss(segment_dim=SEGMENT_DIM), slice(start, start + SHARDS[rank]))
    parameters = [_full(p) for p in model.parameters()]
    torch.save({"losses": losses, "parameters": parameters}, args.out / f"rank{rank}.pt")
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)  # no group teardown: see tests/process_group.py


if __name__ == "__main__":
    main()
