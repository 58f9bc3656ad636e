"""Runs a test's worker in two CPU processes, as a Lightning DDP run on one machine with two devices.

Each process gets the variables a launcher would set (LOCAL_RANK among them, so Lightning takes the
processes as started for it and does not start its own); Lightning then joins them in a gloo process
group, as it does on CPU. What each worker returns comes back to the test, in rank order.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from tests.process_group import free_port, leave_process_group, run_processes

WORLD_SIZE = 2


def run_on_two_processes(worker: Callable[..., Any], *args: Any) -> list[Any]:
    """``worker(rank, *args)`` on ranks 0 and 1; returns what each returned (tensors, numbers, dicts).

    The worker must be a module-level function (the processes are spawned, so it travels by name).
    """
    with tempfile.TemporaryDirectory(prefix="music-ssl-two-processes-") as out:
        run_processes(_run, args=(free_port(), out, worker, args), nprocs=WORLD_SIZE)
        return [torch.load(Path(out) / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def assert_joint_over_the_global_batch(ranks: list[dict], criterion: Callable[..., Any]) -> None:
    """Each rank's loss terms (``ranks[r]`` holds its ``z_a``, ``z_b``, ``loss``, ``diag``, ``off``) are
    those of ``criterion`` on the two ranks' batches concatenated in one process (where nothing gathers):
    the joint terms equal on every rank, the losses averaging to the global loss as DDP averages them."""
    z_a = torch.cat([rank["z_a"] for rank in ranks])
    z_b = torch.cat([rank["z_b"] for rank in ranks])
    expected = criterion.terms(z_a, z_b)
    losses = torch.stack([rank["loss"] for rank in ranks])
    torch.testing.assert_close(losses.mean(), expected.loss, rtol=1e-5, atol=1e-6)
    for rank in ranks:
        torch.testing.assert_close(rank["diag"], expected.diag, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rank["off"], expected.off, rtol=1e-5, atol=1e-6)


def global_batches(size: int, batch_size: int) -> list[list[int]]:
    """The samples of every step's global batch when Lightning's DDP trains on ``size`` samples: each
    rank's batch as its distributed sampler (shuffled, seed 0, epoch 0) gives it, the ranks' together."""
    shards = [
        list(DistributedSampler(range(size), num_replicas=WORLD_SIZE, rank=r)) for r in range(WORLD_SIZE)
    ]
    steps = len(shards[0]) // batch_size
    return [
        [i for shard in shards for i in shard[k * batch_size : (k + 1) * batch_size]] for k in range(steps)
    ]


def step_loader(dataset: Dataset, devices: int, batch_size: int) -> DataLoader:
    """What a training run on ``devices`` processes reads: on two, the plain loader whose sampler
    Lightning replaces; on one, the same global batches (`global_batches`)."""
    if devices > 1:
        return DataLoader(dataset, batch_size=batch_size)
    return DataLoader(dataset, batch_sampler=global_batches(len(dataset), batch_size))


def trainer_arguments(devices: int, steps: int, root: str) -> dict:
    """A Lightning Trainer's arguments for ``steps`` steps on ``devices`` CPU processes, quietly."""
    return {
        "accelerator": "cpu",
        "devices": devices,
        "strategy": "ddp" if devices > 1 else "auto",
        "max_steps": steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": root,
    }


def assert_same_parameters(ranks: list[dict], want: dict, label: str = "") -> None:
    """Every rank's parameters (name -> tensor) are ``want``'s, to float32 rounding."""
    for rank in ranks:
        assert rank.keys() == want.keys()
        for name, parameter in want.items():
            close = {"rtol": 1e-5, "atol": 1e-6}
            torch.testing.assert_close(
                rank[name], parameter, **close, msg=lambda m, n=name: f"{label}{n}: {m}"
            )


def _run(rank: int, port: int, out: str, worker: Callable[..., Any], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK="0", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = worker(rank, *args)
    torch.save(result, Path(out) / f"rank{rank}.pt")
    leave_process_group()
