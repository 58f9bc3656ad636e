"""Starting the processes of the multi-process tests, and joining and leaving their gloo process group."""

from __future__ import annotations

import datetime
import os
import socket
import sys
from collections.abc import Callable

import torch.distributed as dist
import torch.multiprocessing as mp

# Forked where the platform forks: a forked process has torch imported already, so a world of 2 to 4
# processes starts in a fraction of a second instead of the seconds that each spawned one spends
# importing torch again (most of a distributed test's time). The tests' processes compute on CPU tensors
# only, so forking a parent that has used torch is safe, as for a DataLoader's workers.
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def run_processes(worker: Callable[..., None], args: tuple, nprocs: int) -> None:
    """Runs ``worker(rank, *args)`` in ``nprocs`` new processes and waits for them (as `mp.spawn`); an
    error in any of them is raised here."""
    mp.start_processes(worker, args=args, nprocs=nprocs, join=True, start_method=START_METHOD)


def free_port() -> int:
    """A loopback port free now, for the group's store on rank 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_process_group(rank: int, world_size: int, port: int, wait_seconds: float | None = None) -> None:
    """``wait_seconds``: how long a collective waits for the other ranks before it fails (default: torch's
    30 minutes), so that a test of a would-be hang fails in seconds."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    timeout = {} if wait_seconds is None else {"timeout": datetime.timedelta(seconds=wait_seconds)}
    dist.init_process_group("gloo", rank=rank, world_size=world_size, **timeout)


def leave_process_group() -> None:
    """Waits until every rank is done with the group, then ends this process at once, with exit status 0.

    The barrier keeps rank 0, which holds the group's store, from leaving while another rank still uses
    it. The group is not destroyed: on torch 2.4, gloo can deadlock in `destroy_process_group` (and at
    interpreter exit), where the main thread joins gloo's worker thread while holding the GIL and the
    worker thread, freeing a finished collective's tensors, waits for the GIL. Exiting skips every
    destructor; the caller has written its results and closed its files by then.
    """
    if dist.is_initialized():
        dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
